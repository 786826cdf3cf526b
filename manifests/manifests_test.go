package manifests

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// kustomization is the part of kustomize's Kustomization these manifests use;
// decoded strictly, so a typo in a key fails.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors,omitempty"`
	} `json:"labels,omitempty"`
}

// object is one decoded manifest document.
type object struct {
	file string
	kind string
	name string
	obj  any
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// decodeStrict decodes every document of a manifest file into its k8s.io/api
// type, failing on unknown fields, unknown kinds and duplicate keys.
func decodeStrict(file string, data []byte) ([]object, error) {
	var out []object
	for i, doc := range docSep.Split(string(data), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return nil, fmt.Errorf("%s doc %d: %w", file, i, err)
		}
		var obj any
		switch tm.APIVersion + "/" + tm.Kind {
		case "v1/Pod":
			obj = &corev1.Pod{}
		case "v1/ConfigMap":
			obj = &corev1.ConfigMap{}
		case "v1/Service":
			obj = &corev1.Service{}
		case "v1/ServiceAccount":
			obj = &corev1.ServiceAccount{}
		case "apps/v1/Deployment":
			obj = &appsv1.Deployment{}
		case "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
			obj = &rbacv1.ClusterRoleBinding{}
		case "rbac.authorization.k8s.io/v1/ClusterRole":
			obj = &rbacv1.ClusterRole{}
		case "v1/Namespace":
			obj = &corev1.Namespace{}
		case "admissionregistration.k8s.io/v1/MutatingWebhookConfiguration":
			obj = &admissionregistrationv1.MutatingWebhookConfiguration{}
		case "kustomize.config.k8s.io/v1beta1/Kustomization":
			obj = &kustomization{}
		default:
			return nil, fmt.Errorf("%s doc %d: unexpected kind %s/%s", file, i, tm.APIVersion, tm.Kind)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			return nil, fmt.Errorf("%s doc %d (%s): %w", file, i, tm.Kind, err)
		}
		name := ""
		if m, ok := obj.(metav1.Object); ok {
			name = m.GetName()
		}
		out = append(out, object{file: file, kind: tm.Kind, name: name, obj: obj})
	}
	return out, nil
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func loadAll(t *testing.T) map[string][]object {
	t.Helper()
	files := map[string][]object{}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		objs, err := decodeStrict(p, b)
		if err != nil {
			t.Errorf("%v", err)
			return nil
		}
		files[p] = objs
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 10 {
		t.Fatalf("found only %d manifest files", len(files))
	}
	return files
}

// build follows a kustomization's resources (files and directories) and
// returns every object it includes.
func build(t *testing.T, files map[string][]object, dir string) []object {
	t.Helper()
	objs, ok := files[filepath.Join(dir, "kustomization.yaml")]
	if !ok || len(objs) != 1 {
		t.Fatalf("%s: no kustomization.yaml", dir)
	}
	k := objs[0].obj.(*kustomization)
	var out []object
	for _, r := range k.Resources {
		p := filepath.Clean(filepath.Join(dir, r))
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			out = append(out, build(t, files, p)...)
			continue
		}
		o, ok := files[p]
		if !ok {
			t.Errorf("%s: resource %s does not exist or did not decode", dir, r)
		}
		out = append(out, o...)
	}
	return out
}

func TestEveryManifestDecodesStrictly(t *testing.T) {
	files := loadAll(t)
	// Every kustomize directory lists every manifest beside it.
	for p := range files {
		if filepath.Base(p) != "kustomization.yaml" {
			continue
		}
		dir := filepath.Dir(p)
		k := files[p][0].obj.(*kustomization)
		listed := map[string]bool{}
		for _, r := range k.Resources {
			listed[filepath.Clean(filepath.Join(dir, r))] = true
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			f := filepath.Join(dir, e.Name())
			if strings.HasSuffix(f, ".yaml") && e.Name() != "kustomization.yaml" && !listed[f] {
				t.Errorf("%s is not listed in %s", f, p)
			}
		}
	}
}

// The decoder is strict: an unknown field anywhere fails.
func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  - name: a\n    image: b\n    readOnlyRootFileSystem: true\n",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 2\n",
		"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresource: [a.yaml]\n",
		"apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n",
	} {
		if _, err := decodeStrict("inline", []byte(doc)); err == nil {
			t.Errorf("accepted:\n%s", doc)
		}
	}
}

func TestFullPodNativeSidecars(t *testing.T) {
	files := loadAll(t)
	objs := build(t, files, "native")
	spec := podSpecOf(t, objs, "Deployment")
	checkPod(t, "native", spec, objs)
	if len(spec.InitContainers) == 0 || spec.InitContainers[0].Name != "initnet" || spec.InitContainers[0].RestartPolicy != nil {
		t.Errorf("native: initnet must be the first init container, run to completion")
	}
	sidecars := 0
	for _, c := range spec.InitContainers[1:] {
		if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			t.Errorf("native: init container %s after initnet is not a native sidecar (restartPolicy: Always)", c.Name)
			continue
		}
		sidecars++
		if c.StartupProbe == nil {
			t.Errorf("native: sidecar %s has no startupProbe: the app would start before it is ready", c.Name)
		}
	}
	if sidecars != 4 {
		t.Errorf("native: %d helper sidecars, want proxy, ambassador, configsync, adapter", sidecars)
	}
	if len(spec.Containers) != 1 || spec.Containers[0].Name != "app" {
		t.Errorf("native: containers must be just the app")
	}
}

func TestFullPodLegacyPostStartWait(t *testing.T) {
	files := loadAll(t)
	objs := build(t, files, "legacy")
	spec := podSpecOf(t, objs, "Deployment")
	checkPod(t, "legacy", spec, objs)
	for _, c := range spec.InitContainers {
		if c.RestartPolicy != nil {
			t.Errorf("legacy: init container %s uses restartPolicy (needs 1.29)", c.Name)
		}
	}
	n := len(spec.Containers)
	if n != 5 || spec.Containers[n-1].Name != "app" {
		t.Fatalf("legacy: want 4 helpers then the app last, got %d containers", n)
	}
	for _, c := range spec.Containers[:n-1] {
		ps := c.Lifecycle
		if ps == nil || ps.PostStart == nil || ps.PostStart.Exec == nil || len(ps.PostStart.Exec.Command) < 2 || ps.PostStart.Exec.Command[1] != "wait" {
			t.Errorf("legacy: helper %s has no postStart `wait` hook holding the next container", c.Name)
		}
	}
}

func TestSnippets(t *testing.T) {
	files := loadAll(t)
	for _, h := range []string{"proxy", "ambassador", "configsync", "adapter"} {
		p := filepath.Join("snippets", h+".yaml")
		objs, ok := files[p]
		if !ok {
			t.Errorf("missing snippet %s", p)
			continue
		}
		spec := podSpecOf(t, objs, "Pod")
		checkPod(t, p, spec, objs)
		found := false
		for _, c := range spec.InitContainers {
			if c.Name == h {
				found = true
				if c.RestartPolicy == nil || c.StartupProbe == nil {
					t.Errorf("%s: %s must be a native sidecar with a startupProbe", p, h)
				}
			}
		}
		if !found {
			t.Errorf("%s: no %s container", p, h)
		}
	}
}

func podSpecOf(t *testing.T, objs []object, kind string) *corev1.PodSpec {
	t.Helper()
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *appsv1.Deployment:
			if kind == "Deployment" {
				return &v.Spec.Template.Spec
			}
		case *corev1.Pod:
			if kind == "Pod" {
				return &v.Spec
			}
		}
	}
	t.Fatalf("no %s", kind)
	return nil
}

// appPorts are the ports probes may use: the app's own. The proxy's
// listeners and admin ports are never probe targets.
var proxyPorts = map[int]bool{15000: true, 15001: true, 15006: true, 15090: true}

// checkPod enforces the rules every sidecarkit pod follows.
func checkPod(t testing.TB, where string, spec *corev1.PodSpec, objs []object) {
	t.Helper()
	configMaps := map[string]*corev1.ConfigMap{}
	serviceAccounts := map[string]bool{}
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *corev1.ConfigMap:
			configMaps[v.Name] = v
		case *corev1.ServiceAccount:
			serviceAccounts[v.Name] = true
		}
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
		if v.ConfigMap != nil && configMaps[v.ConfigMap.Name] == nil && len(configMaps) > 0 {
			t.Errorf("%s: volume %s uses ConfigMap %s that the kustomization does not define", where, v.Name, v.ConfigMap.Name)
		}
	}
	if spec.ServiceAccountName != "" && len(serviceAccounts) > 0 && !serviceAccounts[spec.ServiceAccountName] {
		t.Errorf("%s: ServiceAccount %s is not defined", where, spec.ServiceAccountName)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken must be false (the ambassador gets a projected, audience-bound token)", where)
	}

	all := append(append([]corev1.Container(nil), spec.InitContainers...), spec.Containers...)
	signals := false
	for _, c := range all {
		cw := where + ": container " + c.Name
		checkResources(t, cw, c.Resources)
		checkSecurity(t, cw, spec.SecurityContext, c)
		text := strings.Join(append(append([]string(nil), c.Command...), c.Args...), " ")
		for _, m := range c.VolumeMounts {
			if v, ok := volumes[m.Name]; ok && v.ConfigMap != nil {
				if cm := configMaps[v.ConfigMap.Name]; cm != nil {
					for _, d := range cm.Data {
						text += " " + d
						var kv map[string]any
						if err := yaml.Unmarshal([]byte(d), &kv); err != nil {
							t.Errorf("%s: ConfigMap %s is not a YAML map: %v", cw, cm.Name, err)
						}
					}
				}
			} else if !ok {
				t.Errorf("%s: mounts undefined volume %s", cw, m.Name)
			}
		}
		if strings.Contains(text, "notify-process") || strings.Contains(text, "notify-pidfile") {
			signals = true
		}
		if c.Name == "app" {
			checkApp(t, cw, c, volumes, capturedInbound(spec))
		}
	}
	if signals && (spec.ShareProcessNamespace == nil || !*spec.ShareProcessNamespace) {
		t.Errorf("%s: a helper signals the app (notify-process) but shareProcessNamespace is not true", where)
	}
	if !signals && spec.ShareProcessNamespace != nil && *spec.ShareProcessNamespace {
		t.Errorf("%s: shareProcessNamespace without a helper that signals", where)
	}
}

func checkResources(t testing.TB, where string, r corev1.ResourceRequirements) {
	t.Helper()
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okr := r.Requests[name]
		lim, okl := r.Limits[name]
		if !okr || !okl {
			t.Errorf("%s: needs %s request and limit", where, name)
			continue
		}
		if req.Cmp(lim) > 0 {
			t.Errorf("%s: %s request %s above limit %s", where, name, req.String(), lim.String())
		}
		if lim.Cmp(resource.MustParse("0")) <= 0 {
			t.Errorf("%s: %s limit must be positive", where, name)
		}
	}
}

func checkSecurity(t testing.TB, where string, pod *corev1.PodSecurityContext, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Errorf("%s: no securityContext", where)
		return
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: readOnlyRootFilesystem must be true", where)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation must be false", where)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("%s: privileged", where)
	}
	var drop, add []string
	if sc.Capabilities != nil {
		for _, d := range sc.Capabilities.Drop {
			drop = append(drop, string(d))
		}
		for _, a := range sc.Capabilities.Add {
			add = append(add, string(a))
		}
	}
	sort.Strings(add)
	if len(drop) != 1 || drop[0] != "ALL" {
		t.Errorf("%s: capabilities must drop ALL, got %v", where, drop)
	}
	isInitnet := c.Name == "initnet"
	switch {
	case isInitnet && strings.Join(add, ",") != "NET_ADMIN,NET_RAW":
		t.Errorf("%s: initnet must add exactly NET_ADMIN and NET_RAW, got %v", where, add)
	case !isInitnet && len(add) > 0:
		t.Errorf("%s: adds capabilities %v; only initnet may", where, add)
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil && pod != nil {
		nonRoot = pod.RunAsNonRoot
	}
	uid := sc.RunAsUser
	if uid == nil && pod != nil {
		uid = pod.RunAsUser
	}
	if isInitnet {
		if uid == nil || *uid != 0 {
			t.Errorf("%s: initnet runs as root (runAsUser: 0) with only its two capabilities", where)
		}
		return
	}
	if nonRoot == nil || !*nonRoot {
		t.Errorf("%s: runAsNonRoot must be true", where)
	}
	if uid != nil && *uid == 0 {
		t.Errorf("%s: runs as UID 0", where)
	}
	if c.Name == "proxy" && (uid == nil || *uid != 1337) {
		t.Errorf("%s: the proxy must run as UID 1337, the UID initnet exempts", where)
	}
}

// capturedInbound returns whether initnet in this pod captures an inbound
// port, from its --istio-inbound-ports (default "*") and
// --istio-local-exclude-ports flags; without initnet nothing is captured.
func capturedInbound(spec *corev1.PodSpec) func(port int) bool {
	for _, c := range spec.InitContainers {
		if c.Name != "initnet" {
			continue
		}
		include, exclude := []string{"*"}, map[string]bool{}
		for _, a := range c.Args {
			k, v, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			switch k {
			case "istio-inbound-ports", "b":
				include = strings.Split(v, ",")
			case "istio-local-exclude-ports", "d":
				for _, p := range strings.Split(v, ",") {
					exclude[p] = true
				}
			}
		}
		return func(port int) bool {
			p := fmt.Sprint(port)
			if exclude[p] {
				return false
			}
			for _, i := range include {
				if i == "*" || i == p {
					return true
				}
			}
			return false
		}
	}
	return func(int) bool { return false }
}

func checkApp(t testing.TB, where string, c corev1.Container, volumes map[string]corev1.Volume, captured func(int) bool) {
	t.Helper()
	own := map[string]bool{}
	byName := map[string]int{}
	for _, p := range c.Ports {
		own[p.Name] = true
		own[fmt.Sprint(p.ContainerPort)] = true
		byName[p.Name] = int(p.ContainerPort)
	}
	probes := 0
	for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe} {
		if p == nil {
			continue
		}
		probes++
		var port string
		switch {
		case p.HTTPGet != nil:
			port = p.HTTPGet.Port.String()
		case p.TCPSocket != nil:
			port = p.TCPSocket.Port.String()
		default:
			continue
		}
		if !own[port] {
			t.Errorf("%s: %s probe on port %s, not one of the app's own ports", where, name, port)
		}
		n, named := byName[port]
		if !named {
			fmt.Sscan(port, &n)
		}
		if proxyPorts[n] {
			t.Errorf("%s: %s probe goes through the proxy (port %d)", where, name, n)
		}
		if captured(n) {
			t.Errorf("%s: %s probe on port %d, which initnet captures: kubelet would go through the proxy", where, name, n)
		}
	}
	if probes == 0 || c.ReadinessProbe == nil {
		t.Errorf("%s: the app needs a readiness probe on its own port", where)
	}
	for _, m := range c.VolumeMounts {
		if !strings.HasPrefix(m.MountPath, "/vault/secrets") {
			continue
		}
		v := volumes[m.Name]
		if v.EmptyDir == nil || v.EmptyDir.Medium != corev1.StorageMediumMemory {
			t.Errorf("%s: secrets volume %s must be emptyDir {medium: Memory}", where, m.Name)
		}
		if !m.ReadOnly {
			t.Errorf("%s: secrets volume %s must be mounted read-only in the app", where, m.Name)
		}
	}
}

// The checker itself catches what it claims to: a pod breaking each rule.
func TestCheckerCatchesViolations(t *testing.T) {
	bad := []byte(`apiVersion: v1
kind: Pod
metadata: {name: bad}
spec:
  initContainers:
    - name: initnet
      image: sidecarkit/proxy:latest
      command: [/usr/local/bin/initnet]
      args: [--istio-inbound-ports=8080]
    - name: ambassador
      image: sidecarkit/ambassador:latest
      args: [--notify-process=demoapp]
      securityContext:
        readOnlyRootFilesystem: true
        allowPrivilegeEscalation: false
        runAsNonRoot: true
        capabilities: {drop: [ALL], add: [NET_ADMIN]}
  containers:
    - name: app
      image: sidecarkit/demoapp:latest
      ports: [{name: http, containerPort: 8080}]
      readinessProbe: {httpGet: {path: /readyz, port: 15006}}
      livenessProbe: {httpGet: {path: /livez, port: http}}
      resources: {limits: {cpu: 1, memory: 1Gi}}
      securityContext: {readOnlyRootFilesystem: false}
      volumeMounts: [{name: s, mountPath: /vault/secrets}]
  volumes:
    - {name: s, emptyDir: {}}
`)
	objs, err := decodeStrict("bad", bad)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{TB: t}
	checkPod(rec, "bad", &objs[0].obj.(*corev1.Pod).Spec, objs)
	want := []string{
		"which initnet captures",
		"needs cpu request and limit", "adds capabilities", "readOnlyRootFilesystem must be true",
		"runAsNonRoot must be true", "not one of the app's own ports", "goes through the proxy",
		"must be emptyDir {medium: Memory}", "must be mounted read-only", "shareProcessNamespace is not true",
		"automountServiceAccountToken must be false",
	}
	got := strings.Join(rec.errs, "\n")
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("checker missed %q; it said:\n%s", w, got)
		}
	}
}

type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Helper() {}

// helperImage maps a container to the helper binary its image runs, or "".
func helperImage(c corev1.Container) string {
	if len(c.Command) > 0 && c.Command[0] == "/usr/local/bin/initnet" {
		return "initnet"
	}
	for _, h := range []string{"proxy", "ambassador", "adapter", "configsync"} {
		if strings.HasPrefix(c.Image, "sidecarkit/"+h+":") {
			return h
		}
	}
	return ""
}

// Every helper container's flags and ConfigMap are valid for the helper as
// built now: `<helper> validate` runs in its image with the container's args
// and its ConfigMap mounted where the pod mounts it. Needs Docker and the
// images, which it builds when missing; fails in CI without Docker.
func TestHelperConfigsValidateInTheirImages(t *testing.T) {
	testenv.RequireDocker(t)
	// Build the helper images if they are missing (quick with a warm Go cache).
	if out, err := exec.Command("../integration/images.sh", "--missing", "proxy", "ambassador", "adapter", "configsync").CombinedOutput(); err != nil {
		t.Fatalf("integration/images.sh: %v\n%s", err, out)
	}
	files := loadAll(t)
	type pod struct {
		where string
		spec  *corev1.PodSpec
		objs  []object
	}
	var pods []pod
	for _, dir := range []string{"native", "legacy"} {
		objs := build(t, files, dir)
		pods = append(pods, pod{dir, podSpecOf(t, objs, "Deployment"), objs})
	}
	for _, h := range []string{"proxy", "ambassador", "configsync", "adapter"} {
		p := filepath.Join("snippets", h+".yaml")
		pods = append(pods, pod{p, podSpecOf(t, files[p], "Pod"), files[p]})
	}
	checked := 0
	for _, p := range pods {
		cms := map[string]*corev1.ConfigMap{}
		for _, o := range p.objs {
			if cm, ok := o.obj.(*corev1.ConfigMap); ok {
				cms[cm.Name] = cm
			}
		}
		vols := map[string]corev1.Volume{}
		for _, v := range p.spec.Volumes {
			vols[v.Name] = v
		}
		for _, c := range append(append([]corev1.Container(nil), p.spec.InitContainers...), p.spec.Containers...) {
			h := helperImage(c)
			if h == "" {
				continue
			}
			if out, err := exec.Command("docker", "image", "inspect", c.Image).CombinedOutput(); err != nil {
				testenv.Unavailable(t, "image %s not built (run `make images`): %s", c.Image, bytes.TrimSpace(out))
			}
			args := []string{"run", "--rm", "--network=none", "--entrypoint", "/usr/local/bin/" + h}
			for _, m := range c.VolumeMounts {
				v := vols[m.Name]
				if v.EmptyDir != nil {
					// validate checks destination directories (and
					// tmpfs for --require-tmpfs) as a run does.
					if v.EmptyDir.Medium == corev1.StorageMediumMemory {
						args = append(args, "--tmpfs", m.MountPath)
					} else {
						args = append(args, "-v", t.TempDir()+":"+m.MountPath)
					}
					continue
				}
				if v.ConfigMap == nil || cms[v.ConfigMap.Name] == nil {
					continue
				}
				dir := t.TempDir()
				for k, d := range cms[v.ConfigMap.Name].Data {
					if err := os.WriteFile(filepath.Join(dir, k), []byte(d), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				args = append(args, "-v", dir+":"+m.MountPath+":ro")
			}
			args = append(append(args, c.Image, "validate"), c.Args...)
			out, err := exec.Command("docker", args...).CombinedOutput()
			if err != nil {
				t.Errorf("%s: container %s: `%s validate %s` rejects its configuration: %v\n%s",
					p.where, c.Name, h, strings.Join(c.Args, " "), err, out)
			}
			checked++
		}
	}
	if checked < 10 {
		t.Fatalf("validated only %d helper containers", checked)
	}
}
