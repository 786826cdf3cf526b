package inject

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sidecarkit/sidecarkit/injector/annotations"
	"github.com/sidecarkit/sidecarkit/injector/spec"
)

// appPod is a typical app: serves 8080, probed on its own port 8081, no
// name (a Deployment's pod before the apiserver names it).
func appPod(ann map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Annotations: ann, Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "app", Image: "sidecarkit/demoapp:latest",
				Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "health", ContainerPort: 8081}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("health")}}},
				LivenessProbe:  &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8081)}}},
			}},
		},
	}
}

func enabled() map[string]string { return map[string]string{annotations.NamespaceLabel: "enabled"} }

func run(t *testing.T, pod *corev1.Pod, ns map[string]string, minor int) Result {
	t.Helper()
	res, err := Inject(Request{Pod: pod, Namespace: "apps", NamespaceLabels: ns, Major: 1, Minor: minor}, testOptions())
	if err != nil {
		t.Fatalf("Inject: %v", err)
	}
	return res
}

func names(cs []corev1.Container) []string {
	var n []string
	for _, c := range cs {
		n = append(n, c.Name)
	}
	return n
}

func container(p *corev1.Pod, name string) *corev1.Container {
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range cs {
			if cs[i].Name == name {
				return &cs[i]
			}
		}
	}
	return nil
}

func argOf(c *corev1.Container, flag string) (string, bool) {
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--"+flag+"="); ok {
			return v, true
		}
	}
	return "", false
}

func TestSelection(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ns     string
		nsLab  map[string]string
		ann    map[string]string
		labels map[string]string
		want   []string // helpers; nil: skipped
		skip   string

		containers []string
		hostNet    bool
	}{
		{name: "labelled namespace", nsLab: enabled(), want: []string{"initnet", "proxy"}},
		{name: "unlabelled namespace", want: nil, skip: "not labelled"},
		{name: "namespace disabled beats pod opt-in", nsLab: map[string]string{annotations.NamespaceLabel: "disabled"}, ann: map[string]string{annotations.Inject: "true"}, skip: "disabled"},
		{name: "pod opt-in", ann: map[string]string{annotations.Inject: "true"}, want: []string{"initnet", "proxy"}},
		{name: "pod opt-out", nsLab: enabled(), ann: map[string]string{annotations.Inject: "false"}, skip: "opted out by annotation sidecarkit.io/inject"},
		{name: "istio opt-out label", nsLab: enabled(), labels: map[string]string{annotations.IstioInject: "false"}, skip: "no helper"},
		{name: "istio opt-out annotation", nsLab: enabled(), ann: map[string]string{annotations.IstioInject: "false"}, skip: "no helper"},
		{name: "istio opt-in", ann: map[string]string{annotations.IstioInject: "true"}, want: []string{"initnet", "proxy"}},
		{name: "sidecarkit beats istio", ann: map[string]string{annotations.IstioInject: "true", annotations.Inject: "false"}, skip: "opted out"},
		{name: "helpers chosen", nsLab: enabled(), ann: map[string]string{annotations.InjectHelpers: "adapter, proxy", annotations.LogDir: "/var/log/app"}, want: []string{"initnet", "proxy", "adapter"}},
		{name: "vault alone", ann: map[string]string{annotations.VaultInject: "true", annotations.VaultRole: "r", annotations.VaultService: "http://vault:8200"}, want: []string{"ambassador"}},
		{name: "vault plus mesh", nsLab: enabled(), ann: map[string]string{annotations.VaultInject: "true", annotations.VaultRole: "r", annotations.VaultService: "http://vault:8200"}, want: []string{"initnet", "proxy", "ambassador"}},
		{name: "vault off", nsLab: enabled(), ann: map[string]string{annotations.InjectHelpers: "proxy,ambassador", annotations.VaultInject: "false"}, want: []string{"initnet", "proxy"}},
		{name: "vault but mesh off", ann: map[string]string{annotations.Inject: "false", annotations.VaultInject: "true"}, skip: "opted out"},
		{name: "kube-system", ns: "kube-system", nsLab: enabled(), ann: map[string]string{annotations.Inject: "true"}, skip: "never injected"},
		{name: "own namespace", ns: "sidecarkit-system", nsLab: enabled(), ann: map[string]string{annotations.Inject: "true"}, skip: "never injected"},
		{name: "already injected", nsLab: enabled(), ann: map[string]string{annotations.Status: "{}"}, skip: "already injected"},
		{name: "hand-written helpers", nsLab: enabled(), containers: []string{"proxy"}, skip: "helpers written by hand"},
		{name: "hostNetwork: no proxy", nsLab: enabled(), hostNet: true, skip: "hostNetwork"},
		{name: "hostNetwork keeps other helpers", nsLab: enabled(), hostNet: true, ann: map[string]string{annotations.InjectHelpers: "proxy,configsync", "configsync.sidecarkit.io/source": "consul://c:8500/x"}, want: []string{"configsync"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := appPod(tc.ann)
			for k, v := range tc.labels {
				pod.Labels[k] = v
			}
			for _, n := range tc.containers {
				pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Name: n})
			}
			pod.Spec.HostNetwork = tc.hostNet
			ns := tc.ns
			if ns == "" {
				ns = "apps"
			}
			res, err := Inject(Request{Pod: pod, Namespace: ns, NamespaceLabels: tc.nsLab, Major: 1, Minor: 34}, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			if tc.skip != "" {
				if !strings.Contains(res.Skip, tc.skip) {
					t.Fatalf("skip = %q, want it to say %q", res.Skip, tc.skip)
				}
				if res.Patch != nil || res.Pod != pod {
					t.Fatal("a skipped pod must be left alone")
				}
				return
			}
			if res.Skip != "" {
				t.Fatalf("skipped: %s", res.Skip)
			}
			if !reflect.DeepEqual(res.Status.Helpers, tc.want) {
				t.Fatalf("helpers = %v, want %v", res.Status.Helpers, tc.want)
			}
		})
	}
}

func TestNativeAndLegacyForms(t *testing.T) {
	native := run(t, appPod(nil), enabled(), 34)
	if got := names(native.Pod.Spec.InitContainers); !reflect.DeepEqual(got, []string{"initnet", "proxy"}) {
		t.Fatalf("native initContainers = %v", got)
	}
	if p := container(native.Pod, "proxy"); p.RestartPolicy == nil || *p.RestartPolicy != corev1.ContainerRestartPolicyAlways || p.StartupProbe == nil {
		t.Fatalf("native proxy: restartPolicy %v startupProbe %v", p.RestartPolicy, p.StartupProbe)
	}
	legacy := run(t, appPod(nil), enabled(), 28)
	if got := names(legacy.Pod.Spec.InitContainers); !reflect.DeepEqual(got, []string{"initnet"}) {
		t.Fatalf("legacy initContainers = %v", got)
	}
	if got := names(legacy.Pod.Spec.Containers); !reflect.DeepEqual(got, []string{"proxy", "app"}) {
		t.Fatalf("legacy containers = %v", got)
	}
	p := container(legacy.Pod, "proxy")
	if p.RestartPolicy != nil || p.Lifecycle == nil || p.Lifecycle.PostStart == nil || !reflect.DeepEqual(p.Lifecycle.PostStart.Exec.Command, []string{"/usr/local/bin/proxy", "wait", "--timeout=120s"}) {
		t.Fatalf("legacy proxy: %+v", p)
	}
	if native.Status.Form != "native" || legacy.Status.Form != "legacy" {
		t.Fatalf("forms %q %q", native.Status.Form, legacy.Status.Form)
	}
	// No signals asked for: no shared PID namespace.
	if native.Pod.Spec.ShareProcessNamespace != nil {
		t.Fatal("shareProcessNamespace set without any notify-process")
	}
}

func TestProbePortsExcluded(t *testing.T) {
	// The probe port 8081 (named "health", readiness by name, liveness by
	// number) is never captured; with an explicit include list naming it,
	// it is removed from the list, with a warning.
	res := run(t, appPod(map[string]string{annotations.IstioIncludeInbound: "8080,8081"}), enabled(), 34)
	in := container(res.Pod, "initnet")
	if v, _ := argOf(in, "istio-inbound-ports"); v != "8080" {
		t.Fatalf("inbound ports = %q, want 8080", v)
	}
	if v, _ := argOf(in, "istio-local-exclude-ports"); !slices.Contains(strings.Split(v, ","), "8081") {
		t.Fatalf("exclude ports = %q", v)
	}
	if !slices.ContainsFunc(res.Warnings, func(w string) bool { return strings.Contains(w, "port 8081") }) {
		t.Fatalf("no warning about 8081: %q", res.Warnings)
	}
	if len(res.Status.Excluded) != 1 || !strings.HasPrefix(res.Status.Excluded[0], "8081 (readiness probe of container app)") {
		t.Fatalf("status excluded = %q", res.Status.Excluded)
	}

	// A probe on the traffic port itself: excluded, and the user is told the
	// proxy no longer sees that port's traffic.
	pod := appPod(nil)
	pod.Spec.Containers[0].ReadinessProbe.HTTPGet.Port = intstr.FromString("http")
	pod.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9000}}}
	res = run(t, pod, enabled(), 34)
	v, _ := argOf(container(res.Pod, "initnet"), "istio-local-exclude-ports")
	if ex := strings.Split(v, ","); !slices.Contains(ex, "8080") || !slices.Contains(ex, "9000") {
		t.Fatalf("exclude ports = %q, want 8080 and 9000 (grpc)", v)
	}
	if !slices.ContainsFunc(res.Warnings, func(w string) bool { return strings.Contains(w, "port 8080 serves traffic") }) {
		t.Fatalf("no warning about probing the traffic port: %q", res.Warnings)
	}
}

func TestIstioAnnotations(t *testing.T) {
	res := run(t, appPod(map[string]string{
		annotations.IstioIncludeInbound:     "*",
		annotations.IstioExcludeInbound:     "9090, 9091",
		annotations.IstioIncludeOutCIDRs:    "10.0.0.0/8,192.168.1.7",
		annotations.IstioExcludeOutCIDRs:    "10.96.0.0/12",
		annotations.IstioExcludeOutPorts:    "5432",
		annotations.IstioProxyCPU:           "200m",
		annotations.IstioProxyMemory:        "128Mi",
		annotations.IstioProxyCPULimit:      "1",
		annotations.IstioProxyMemLimit:      "256Mi",
		annotations.IstioProxyConfig:        "holdApplicationUntilProxyStarts: false\nconcurrency: 2\n",
		"sidecar.istio.io/interceptionMode": "TPROXY",
	}), enabled(), 34)
	in := container(res.Pod, "initnet")
	for flag, want := range map[string]string{
		"istio-inbound-ports":                "*",
		"istio-local-exclude-ports":          "9090,9091,8081",
		"istio-service-cidr":                 "10.0.0.0/8,192.168.1.7/32",
		"istio-service-exclude-cidr":         "10.96.0.0/12",
		"istio-local-outbound-ports-exclude": "5432",
	} {
		if v, _ := argOf(in, flag); v != want {
			t.Errorf("initnet --%s = %q, want %q", flag, v, want)
		}
	}
	p := container(res.Pod, "proxy")
	want := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("256Mi")},
	}
	if !equalJSON(t, p.Resources, want) {
		t.Errorf("proxy resources %s", js(t, p.Resources))
	}
	if p.StartupProbe != nil {
		t.Error("holdApplicationUntilProxyStarts: false still holds the app (startupProbe)")
	}
	var refused []string
	for _, r := range res.Status.Refused {
		refused = append(refused, r.Key)
	}
	if !reflect.DeepEqual(refused, []string{"proxy.istio.io/config#concurrency", "sidecar.istio.io/interceptionMode"}) {
		t.Errorf("refused = %q", refused)
	}
	if len(res.Warnings) < 2 {
		t.Errorf("refusals not warned: %q", res.Warnings)
	}

	// A CPU request above the default limit raises the limit, as Istio does.
	res = run(t, appPod(map[string]string{annotations.IstioProxyCPU: "2"}), enabled(), 34)
	if l := container(res.Pod, "proxy").Resources.Limits[corev1.ResourceCPU]; l.String() != "2" {
		t.Errorf("limit = %s, want 2", l.String())
	}
	// Legacy: hold false drops the postStart wait.
	res = run(t, appPod(map[string]string{annotations.IstioProxyConfig: `{"holdApplicationUntilProxyStarts": false}`}), enabled(), 28)
	if p := container(res.Pod, "proxy"); p.Lifecycle.PostStart != nil {
		t.Error("legacy proxy keeps postStart with hold false")
	}
}

func vaultPod(extra map[string]string) *corev1.Pod {
	ann := map[string]string{
		annotations.VaultInject:  "true",
		annotations.VaultRole:    "web",
		annotations.VaultService: "https://vault.vault.svc:8200",
	}
	for k, v := range extra {
		ann[k] = v
	}
	p := appPod(ann)
	p.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "sidecarkit/demoapp:latest"}}
	return p
}

func TestVaultAnnotations(t *testing.T) {
	res := run(t, vaultPod(map[string]string{
		annotations.VaultSecret + "db":         "database/creds/web",
		annotations.VaultSecret + "api":        "secret/data/api#key",
		annotations.VaultFile + "api":          "api-key.txt",
		annotations.VaultSecret + "conf":       "secret/data/conf",
		annotations.VaultTemplate + "conf":     `{{ with secret "secret/data/conf" }}{{ .Data.data.x }}{{ end }}`,
		annotations.VaultCommand + "db":        "/usr/local/bin/ambassador version",
		annotations.VaultVolumePath:            "/etc/secrets",
		"vault.hashicorp.com/agent-limits-cpu": "1",
	}), nil, 34)
	amb := container(res.Pod, "ambassador")
	if amb == nil {
		t.Fatalf("no ambassador: %v", names(res.Pod.Spec.InitContainers))
	}
	wantArgs := []string{
		"--config=/etc/sidecarkit/injected/ambassador.yaml",
		"--vault-addr=https://vault.vault.svc:8200", "--auth-method=kubernetes", "--kubernetes-role=web",
		"--kubernetes-jwt-file=/var/run/secrets/vault/token", "--require-tmpfs=true",
		"--secret=/etc/secrets/api-key.txt=secret/data/api#key", "--secret=/etc/secrets/db=database/creds/web",
		"--notify-command=/usr/local/bin/ambassador version",
	}
	if !reflect.DeepEqual(amb.Args, wantArgs) {
		t.Errorf("ambassador args\n got %q\nwant %q", amb.Args, wantArgs)
	}
	if y := res.Pod.Annotations[annotations.AmbassadorYAML]; !strings.Contains(y, "destination: /etc/secrets/conf") || !strings.Contains(y, `with secret "secret/data/conf"`) {
		t.Errorf("ambassador YAML annotation = %q", y)
	}
	// Native: sidecars (ambassador included) before the app's own init
	// container, so it gets its secrets.
	if got := names(res.Pod.Spec.InitContainers); !reflect.DeepEqual(got, []string{"ambassador", "migrate"}) {
		t.Errorf("initContainers = %v", got)
	}
	for _, n := range []string{"app", "migrate"} {
		c := container(res.Pod, n)
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
			return m.MountPath == "/etc/secrets" && m.ReadOnly && m.Name == VolSecrets
		}) {
			t.Errorf("%s lacks the read-only secrets mount: %+v", n, c.VolumeMounts)
		}
	}
	if len(res.Status.Refused) != 1 || res.Status.Refused[0].Key != "vault.hashicorp.com/agent-limits-cpu" {
		t.Errorf("refused = %+v", res.Status.Refused)
	}

	// Pre-populate only: an init container that exits after rendering.
	res = run(t, vaultPod(map[string]string{annotations.VaultSecret + "db": "kv/db", annotations.VaultPrePopulateOnly: "true"}), nil, 34)
	amb = container(res.Pod, "ambassador")
	if amb.RestartPolicy != nil || amb.StartupProbe != nil || !slices.Contains(amb.Args, "--exit-after-render=true") {
		t.Errorf("pre-populate ambassador: %+v", amb)
	}
	// Init first: before everything, initnet included.
	res = run(t, vaultPod(map[string]string{annotations.VaultSecret + "db": "kv/db", annotations.VaultInitFirst: "true", annotations.Inject: "true"}), nil, 34)
	if got := names(res.Pod.Spec.InitContainers); !reflect.DeepEqual(got, []string{"ambassador", "initnet", "proxy", "migrate"}) {
		t.Errorf("init-first initContainers = %v", got)
	}
	// Without init-first, the mesh first (ambassador's Vault port is kept
	// out of outbound capture).
	res = run(t, vaultPod(map[string]string{annotations.VaultSecret + "db": "kv/db", annotations.Inject: "true"}), nil, 34)
	if got := names(res.Pod.Spec.InitContainers); !reflect.DeepEqual(got, []string{"initnet", "proxy", "ambassador", "migrate"}) {
		t.Errorf("initContainers = %v", got)
	}
	if v, _ := argOf(container(res.Pod, "initnet"), "istio-local-outbound-ports-exclude"); v != "8200" {
		t.Errorf("outbound exclude = %q, want the Vault port 8200", v)
	}
	// Legacy + init-first without pre-populate: refused (said so), sidecar.
	res = run(t, vaultPod(map[string]string{annotations.VaultSecret + "db": "kv/db", annotations.VaultInitFirst: "true"}), nil, 28)
	if got := names(res.Pod.Spec.Containers); !reflect.DeepEqual(got, []string{"ambassador", "app"}) || len(res.Status.Refused) != 1 {
		t.Errorf("legacy init-first: containers %v refused %+v", got, res.Status.Refused)
	}
}

func TestDenied(t *testing.T) {
	for name, tc := range map[string]struct {
		ann  map[string]string
		want string
	}{
		"bad port":           {map[string]string{annotations.IstioExcludeInbound: "80,http"}, "excludeInboundPorts"},
		"bad cidr":           {map[string]string{annotations.IstioExcludeOutCIDRs: "10.0.0.0/33"}, "excludeOutboundIPRanges"},
		"bad quantity":       {map[string]string{annotations.IstioProxyMemory: "lots"}, "proxyMemory"},
		"limit below req":    {map[string]string{annotations.IstioProxyMemory: "1Gi", annotations.IstioProxyMemLimit: "64Mi"}, "above its limit"},
		"unknown own key":    {map[string]string{"sidecarkit.io/injekt": "true"}, "unknown sidecarkit annotation"},
		"unknown flag":       {map[string]string{"proxy.sidecarkit.io/no-such-flag": "1"}, "proxy has no flag --no-such-flag"},
		"reserved flag":      {map[string]string{"proxy.sidecarkit.io/admin-addr": ":1"}, "cannot be set by annotation"},
		"secret in flag":     {map[string]string{"adapter.sidecarkit.io/es-password": "hunter2", annotations.InjectHelpers: "adapter", annotations.LogDir: "/l"}, "use a file"},
		"unknown helper":     {map[string]string{annotations.InjectHelpers: "proxy,envoy"}, `unknown helper "envoy"`},
		"vault no role":      {map[string]string{annotations.VaultInject: "true", annotations.VaultService: "http://v:8200"}, "vault.hashicorp.com/role"},
		"vault no addr":      {map[string]string{annotations.VaultInject: "true", annotations.VaultRole: "r"}, "no Vault address"},
		"template no secret": {map[string]string{annotations.VaultTemplate + "x": "{{ . }}"}, "without vault.hashicorp.com/agent-inject-secret-x"},
		"two commands":       {map[string]string{annotations.VaultInject: "true", annotations.VaultRole: "r", annotations.VaultService: "http://v:8200", annotations.VaultSecret + "a": "kv/a", annotations.VaultSecret + "b": "kv/b", annotations.VaultCommand + "a": "x", annotations.VaultCommand + "b": "y"}, "different ones: a, b"},
		"bad bool":           {map[string]string{annotations.Inject: "yes please"}, "want true or false"},
		"adapter no dir":     {map[string]string{annotations.InjectHelpers: "adapter"}, "sidecarkit.io/log-dir"},
		"configsync no src":  {map[string]string{annotations.InjectHelpers: "configsync"}, "configsync.sidecarkit.io/source"},
		"file with slash":    {map[string]string{annotations.VaultFile + "x": "../../etc/passwd"}, "no directories"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Inject(Request{Pod: appPod(tc.ann), Namespace: "apps", NamespaceLabels: enabled(), Major: 1, Minor: 34}, testOptions())
			if err == nil || !IsDeny(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a denial saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatal("the error repeats a secret value")
			}
		})
	}
	// A pod already using a helper volume name.
	pod := appPod(nil)
	pod.Spec.Volumes = []corev1.Volume{{Name: VolSecrets}}
	if _, err := Inject(Request{Pod: pod, Namespace: "apps", NamespaceLabels: enabled(), Major: 1, Minor: 34}, testOptions()); err == nil || !strings.Contains(err.Error(), `volume "sidecarkit-secrets"`) {
		t.Fatalf("err = %v", err)
	}
}

// TestPatchAndIdempotence: the JSON patch applied to the original pod gives
// the mutated pod; injecting the result again changes nothing; injecting the
// same pod twice gives the same patch.
func TestPatchAndIdempotence(t *testing.T) {
	for _, minor := range []int{28, 34} {
		pod := vaultPod(map[string]string{
			annotations.Inject:                        "true",
			annotations.InjectHelpers:                 "proxy,ambassador,configsync,adapter",
			annotations.LogDir:                        "/var/log/app",
			"configsync.sidecarkit.io/source":         "consul://consul:8500/cfg",
			annotations.VaultSecret + "t":             "kv/t",
			annotations.VaultTemplate + "t":           "{{ 1 }}",
			"ambassador.sidecarkit.io/notify-process": "demoapp",
		})
		pod.Annotations = nil // also: a pod without annotations at all
		pod.Annotations = map[string]string{}
		for k, v := range vaultPod(nil).Annotations {
			pod.Annotations[k] = v
		}
		res := run(t, pod, enabled(), minor)
		orig, _ := json.Marshal(pod)
		ops, _ := json.Marshal(res.Patch)
		p, err := jsonpatch.DecodePatch(ops)
		if err != nil {
			t.Fatal(err)
		}
		patched, err := p.Apply(orig)
		if err != nil {
			t.Fatalf("apply: %v\n%s", err, ops)
		}
		want, _ := json.Marshal(res.Pod)
		if !jsonpatch.Equal(patched, want) {
			t.Fatalf("patched pod differs from the mutated pod")
		}
		again := run(t, res.Pod, enabled(), minor)
		if again.Skip == "" || again.Patch != nil {
			t.Fatalf("second injection: skip %q patch %v", again.Skip, again.Patch)
		}
		twice := run(t, pod, enabled(), minor)
		if !reflect.DeepEqual(twice.Patch, res.Patch) {
			t.Fatal("the same pod gave two different patches")
		}
		var st Status
		if err := json.Unmarshal([]byte(res.Pod.Annotations[annotations.Status]), &st); err != nil || len(st.Helpers) == 0 {
			t.Fatalf("status annotation %q: %v", res.Pod.Annotations[annotations.Status], err)
		}
		if pod.Annotations[annotations.Status] != "" || len(pod.Spec.Volumes) != 0 {
			t.Fatal("Inject changed its input")
		}
	}
	// A pod with no annotations at all (a nil map) gets one.
	res := run(t, appPod(nil), enabled(), 34)
	if res.Pod.Annotations[annotations.Status] == "" {
		t.Fatal("no status annotation")
	}
	_ = spec.Native
}
