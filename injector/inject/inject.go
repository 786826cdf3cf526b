// Package inject is the injector's pure core: a pod, its namespace and the
// cluster's version in; the pod with sidecarkit's helpers added, the JSON
// Patch that turns one into the other, warnings and a report out. No I/O.
package inject

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/sidecarkit/sidecarkit/injector/annotations"
	"github.com/sidecarkit/sidecarkit/injector/spec"
)

// Options are the injector's own settings (its flags), the same for every pod.
type Options struct {
	// Images by helper (initnet runs from the proxy image).
	ProxyImage, AmbassadorImage, ConfigsyncImage, AdapterImage string
	PullPolicy                                                 corev1.PullPolicy
	// DefaultHelpers are injected into a selected pod that does not say
	// which it wants (sidecarkit.io/inject-helpers).
	DefaultHelpers []string
	// Namespaces never injected: the injector's own and kube-system always.
	SkipNamespaces []string
	// Defaults for the helpers' required settings, overridable per pod.
	VaultAddr     string // ambassador --vault-addr (vault-k8s: AGENT_INJECT_VAULT_ADDR)
	VaultAudience string // audience of the projected ServiceAccount token ("" : vault)
	ConsulAddr    string // configsync --consul-addr
	ESURL         string // adapter --es-url
	// Known says whether an annotation may set a helper's flag (nil: any).
	Known func(helper, flag string) error
	// Version is the injector's, written into the status annotation.
	Version string
}

// Request is one pod to consider.
type Request struct {
	Pod             *corev1.Pod
	Namespace       string
	NamespaceLabels map[string]string
	// Major and Minor are the apiserver's version; native sidecars from 1.29.
	Major, Minor int
}

// Status is what the injector did, written as JSON into the pod's
// sidecarkit.io/status annotation.
type Status struct {
	Version  string                `json:"version,omitempty"`
	Form     string                `json:"form"` // native | legacy
	Helpers  []string              `json:"helpers"`
	Excluded []string              `json:"inboundExcluded,omitempty"` // ports kept out of inbound capture, with why
	Refused  []annotations.Refusal `json:"refused,omitempty"`
}

// Result of Inject.
type Result struct {
	// Skip says why nothing was done ("" when injected).
	Skip     string
	Pod      *corev1.Pod
	Patch    []jsonpatch.Operation
	Warnings []string
	Status   Status
}

// DenyError is a pod the injector refuses (bad annotation values, missing
// required settings): every problem, joined.
type DenyError struct{ Problems []error }

func (e *DenyError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return "sidecarkit injector: " + strings.Join(msgs, "; ")
}

// Volume names the injector adds (prefixed: an app's own volumes never clash).
const (
	VolSecrets     = "sidecarkit-secrets"
	VolVaultToken  = "sidecarkit-vault-token"
	VolAmbassador  = "sidecarkit-ambassador-config"
	VolConfig      = "sidecarkit-config"
	VolLogs        = "sidecarkit-logs"
	VolAdapterData = "sidecarkit-adapter-state"
)

const (
	vaultTokenDir    = "/var/run/secrets/vault"
	ambassadorCfgDir = "/etc/sidecarkit/injected"
	configsyncMount  = "/config"
	adapterLogMount  = "/var/log/app"
)

// Selected decides whether and what to inject: the helpers, or why none.
func Selected(req Request, s annotations.Settings, o Options) ([]string, string) {
	if slices.Contains(append([]string{"kube-system"}, o.SkipNamespaces...), req.Namespace) {
		return nil, "namespace " + req.Namespace + " is never injected"
	}
	if _, ok := req.Pod.Annotations[annotations.Status]; ok {
		return nil, "already injected (" + annotations.Status + " present)"
	}
	for _, c := range slices.Concat(req.Pod.Spec.InitContainers, req.Pod.Spec.Containers) {
		if slices.Contains(spec.Order, c.Name) {
			return nil, "the pod already has a container named " + c.Name + " (helpers written by hand): left alone"
		}
	}
	nsLabel := req.NamespaceLabels[annotations.NamespaceLabel]
	mesh := nsLabel == "enabled"
	if s.Inject != nil {
		if !*s.Inject {
			return nil, "opted out by " + s.InjectSource
		}
		mesh = nsLabel != "disabled"
		if nsLabel == "disabled" {
			return nil, "namespace label " + annotations.NamespaceLabel + "=disabled"
		}
	}
	var helpers []string
	if mesh {
		helpers = o.DefaultHelpers
		if s.Helpers != nil {
			helpers = s.Helpers
		}
	}
	helpers = slices.Clone(helpers)
	if s.Vault.Inject != nil && nsLabel != "disabled" {
		if *s.Vault.Inject && !slices.Contains(helpers, spec.Ambassador) {
			helpers = append(helpers, spec.Ambassador)
		}
		if !*s.Vault.Inject {
			helpers = slices.DeleteFunc(helpers, func(h string) bool { return h == spec.Ambassador })
		}
	}
	if s.MeshOff {
		helpers = slices.DeleteFunc(helpers, func(h string) bool { return h == spec.Proxy })
	}
	if req.Pod.Spec.HostNetwork && slices.Contains(helpers, spec.Proxy) {
		// initnet would rewrite the node's own firewall.
		helpers = slices.DeleteFunc(helpers, func(h string) bool { return h == spec.Proxy })
		if len(helpers) == 0 {
			return nil, "hostNetwork pod: the proxy is never injected (initnet would change the node's network)"
		}
	}
	if len(helpers) == 0 {
		switch {
		case mesh || s.Vault.Inject != nil:
			return nil, "no helper asked for"
		case nsLabel == "disabled":
			return nil, "namespace label " + annotations.NamespaceLabel + "=disabled"
		default:
			return nil, "namespace not labelled " + annotations.NamespaceLabel + "=enabled and no opt-in on the pod"
		}
	}
	// In pod order, initnet first when the proxy is there.
	var out []string
	for _, h := range spec.Order {
		if h == spec.Initnet && slices.Contains(helpers, spec.Proxy) || slices.Contains(helpers, h) {
			out = append(out, h)
		}
	}
	return out, ""
}

// Inject mutates a copy of req.Pod. An error is a *DenyError (the pod must
// be refused) or a failure to build the patch.
func Inject(req Request, o Options) (Result, error) {
	s := annotations.Parse(req.Pod.Annotations, req.Pod.Labels, o.Known)
	res := Result{Pod: req.Pod}
	helpers, skip := Selected(req, s, o)
	if skip != "" {
		res.Skip = skip
		// Problems and refusals still matter to a pod that asked for nothing
		// only when it is in scope; out of scope, say nothing.
		return res, nil
	}
	if len(s.Problems) > 0 {
		return res, &DenyError{Problems: s.Problems}
	}
	b := &builder{req: req, o: o, s: s, helpers: helpers, pod: req.Pod.DeepCopy()}
	b.form = spec.Legacy
	if spec.NativeFrom(req.Major, req.Minor) {
		b.form = spec.Native
	}
	if err := b.build(); err != nil {
		return res, err
	}
	res.Pod = b.pod
	res.Warnings = b.warnings
	res.Status = b.status
	before, err := json.Marshal(req.Pod)
	if err != nil {
		return res, fmt.Errorf("encode pod: %w", err)
	}
	after, err := json.Marshal(b.pod)
	if err != nil {
		return res, fmt.Errorf("encode mutated pod: %w", err)
	}
	res.Patch, err = jsonpatch.CreatePatch(before, after)
	if err != nil {
		return res, fmt.Errorf("build JSON patch: %w", err)
	}
	sort.SliceStable(res.Patch, func(i, j int) bool { return res.Patch[i].Path < res.Patch[j].Path })
	return res, nil
}

type builder struct {
	req      Request
	o        Options
	s        annotations.Settings
	helpers  []string
	pod      *corev1.Pod
	form     spec.Form
	warnings []string
	problems []error
	status   Status
	signals  bool
}

func (b *builder) has(h string) bool { return slices.Contains(b.helpers, h) }

func (b *builder) deny(format string, args ...any) {
	b.problems = append(b.problems, fmt.Errorf(format, args...))
}

// args is a helper's command line: flags by name in order; a later set of
// the same name replaces the value (list flags would otherwise append).
type args struct {
	names []string
	vals  map[string][]string
}

func (a *args) set(name string, vals ...string) {
	if a.vals == nil {
		a.vals = map[string][]string{}
	}
	if _, ok := a.vals[name]; !ok {
		a.names = append(a.names, name)
	}
	a.vals[name] = vals
}

func (a *args) add(name, val string) {
	if a.vals == nil {
		a.vals = map[string][]string{}
	}
	if _, ok := a.vals[name]; !ok {
		a.names = append(a.names, name)
	}
	a.vals[name] = append(a.vals[name], val)
}

func (a *args) get(name string) (string, bool) {
	v, ok := a.vals[name]
	if !ok || len(v) == 0 {
		return "", ok
	}
	return v[len(v)-1], true
}

func (a *args) list() []string {
	var out []string
	for _, n := range a.names {
		for _, v := range a.vals[n] {
			out = append(out, "--"+n+"="+v)
		}
	}
	return out
}

// user applies the pod's "<helper>.sidecarkit.io/<flag>" annotations.
func (b *builder) user(helper string, a *args) {
	for _, f := range b.s.Flags[helper] {
		a.set(f.Name, f.Value)
		if f.Name == "notify-process" || f.Name == "notify-pidfile" {
			if strings.TrimSpace(f.Value) != "" {
				b.signals = true
			}
		}
	}
}

// appContainers are the pod's own containers' indexes (before injection).
func (b *builder) build() error {
	p := b.pod
	for _, v := range p.Spec.Volumes {
		if strings.HasPrefix(v.Name, "sidecarkit-") {
			b.deny("the pod already has a volume %q: names starting with sidecarkit- are the injector's", v.Name)
		}
	}
	if b.has(spec.Proxy) {
		for _, c := range p.Spec.Containers {
			for _, cp := range c.Ports {
				switch cp.ContainerPort {
				case spec.ProxyAdminPort, spec.ProxyPromPort, spec.ProxyInbound, spec.ProxyOutbound:
					b.deny("container %s uses port %d, which the proxy listens on (15000, 15001, 15006, 15090)", c.Name, cp.ContainerPort)
				}
			}
		}
	}
	if len(b.problems) > 0 {
		return &DenyError{Problems: b.problems}
	}
	b.status = Status{Version: b.o.Version, Form: map[spec.Form]string{spec.Native: "native", spec.Legacy: "legacy"}[b.form], Helpers: b.helpers, Refused: b.s.Refused}
	for _, r := range b.s.Refused {
		b.warnings = append(b.warnings, "sidecarkit: refused "+r.String())
	}
	// Refused flags for helpers not injected would be silently ignored: say so.
	for h, fl := range b.s.Flags {
		if !b.has(h) {
			for _, f := range fl {
				b.warnings = append(b.warnings, fmt.Sprintf("sidecarkit: %s is ignored: %s is not injected into this pod", f.Key, h))
			}
		}
	}

	var sidecars, inits []corev1.Container // in pod order
	var first []corev1.Container           // before everything (agent-init-first)
	if b.has(spec.Proxy) {
		inits = append(inits, b.initnet())
		sidecars = append(sidecars, b.proxy())
	}
	if b.has(spec.Ambassador) {
		c := b.ambassador()
		switch {
		case b.s.Vault.InitFirst && (b.form == spec.Native || b.s.Vault.PrePopulateOnly):
			first = append(first, c)
		case b.s.Vault.InitFirst:
			// Before 1.29 a sidecar cannot be an init container.
			r := annotations.Refusal{Key: annotations.VaultInitFirst, Reason: "before Kubernetes 1.29 the ambassador runs first only with " + annotations.VaultPrePopulateOnly + "=true; it is a regular container here"}
			b.status.Refused = append(b.status.Refused, r)
			b.warnings = append(b.warnings, "sidecarkit: refused "+r.String())
			sidecars = append(sidecars, c)
		case b.s.Vault.PrePopulateOnly:
			inits = append(inits, c)
		default:
			sidecars = append(sidecars, c)
		}
	}
	if b.has(spec.Configsync) {
		sidecars = append(sidecars, b.configsync())
	}
	if b.has(spec.Adapter) {
		sidecars = append(sidecars, b.adapter())
	}
	if len(b.problems) > 0 {
		return &DenyError{Problems: b.problems}
	}

	appInits := p.Spec.InitContainers
	if b.form == spec.Native {
		// initnet, then the sidecars, then the app's own init containers (so
		// they get the network, secrets and config too).
		p.Spec.InitContainers = slices.Concat(first, inits, sidecars, appInits)
	} else {
		p.Spec.InitContainers = slices.Concat(first, inits, appInits)
		// Before the app: the kubelet starts them in order and waits for
		// each postStart hook.
		p.Spec.Containers = slices.Concat(sidecars, p.Spec.Containers)
	}
	if b.signals {
		if p.Spec.HostPID {
			return &DenyError{Problems: []error{errors.New("a helper signals the app (notify-process/notify-pidfile), which needs shareProcessNamespace, and Kubernetes refuses it with hostPID: true")}}
		}
		t := true
		p.Spec.ShareProcessNamespace = &t
	}
	st, err := json.Marshal(b.status)
	if err != nil {
		return err
	}
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[annotations.Status] = string(st)
	return nil
}

// isApp reports whether a container in the mutated pod is the app's.
func isApp(c *corev1.Container) bool { return !slices.Contains(spec.Order, c.Name) }

// appMount adds a mount to every app container (regular and, when asked,
// init), unless it already mounts something at that path.
func (b *builder) appMount(m corev1.VolumeMount, inits bool) {
	do := func(cs []corev1.Container) {
		for i := range cs {
			c := &cs[i]
			if !isApp(c) || slices.ContainsFunc(c.VolumeMounts, func(x corev1.VolumeMount) bool { return x.MountPath == m.MountPath }) {
				continue
			}
			c.VolumeMounts = append(c.VolumeMounts, m)
		}
	}
	do(b.pod.Spec.Containers)
	if inits {
		do(b.pod.Spec.InitContainers)
	}
}

func (b *builder) volume(v corev1.Volume) { b.pod.Spec.Volumes = append(b.pod.Spec.Volumes, v) }

func memDir(limit string) corev1.VolumeSource {
	q := resource.MustParse(limit)
	return corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &q}}
}

func diskDir(limit string) corev1.VolumeSource {
	q := resource.MustParse(limit)
	return corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &q}}
}

func (b *builder) container(helper string, a *args, o spec.Container) corev1.Container {
	o.ImagePullPolicy = b.o.PullPolicy
	switch helper {
	case spec.Initnet, spec.Proxy:
		o.Image = b.o.ProxyImage
	case spec.Ambassador:
		o.Image = b.o.AmbassadorImage
	case spec.Configsync:
		o.Image = b.o.ConfigsyncImage
	case spec.Adapter:
		o.Image = b.o.AdapterImage
	}
	o.Args = a.list()
	return spec.HelperContainer(helper, b.form, o)
}

// probePorts are the app's probe ports (httpGet, tcpSocket, grpc), named
// ports resolved through the container's ports.
func probePorts(cs []corev1.Container) map[int]string {
	out := map[int]string{}
	for _, c := range cs {
		for _, kp := range []struct {
			kind string
			pr   *corev1.Probe
		}{{"startup", c.StartupProbe}, {"readiness", c.ReadinessProbe}, {"liveness", c.LivenessProbe}} {
			kind, pr := kp.kind, kp.pr
			if pr == nil {
				continue
			}
			var port intstr.IntOrString
			switch {
			case pr.HTTPGet != nil:
				port = pr.HTTPGet.Port
			case pr.TCPSocket != nil:
				port = pr.TCPSocket.Port
			case pr.GRPC != nil:
				port = intstr.FromInt32(pr.GRPC.Port)
			default:
				continue
			}
			n := port.IntValue()
			if port.Type == intstr.String {
				n = 0
				for _, cp := range c.Ports {
					if cp.Name == port.StrVal {
						n = int(cp.ContainerPort)
					}
				}
			}
			if _, seen := out[n]; n > 0 && !seen {
				out[n] = fmt.Sprintf("%s probe of container %s", kind, c.Name)
			}
		}
	}
	return out
}

func (b *builder) initnet() corev1.Container {
	var a args
	uid := strconv.Itoa(spec.ProxyUID)
	a.set("proxy-uid", uid)
	a.set("proxy-gid", uid)
	include := []string{"*"}
	if b.s.IncludeInbound != nil {
		include = *b.s.IncludeInbound
	}
	exclude := slices.Clone(b.s.ExcludeInbound)
	// The app's probe ports never go through the proxy: kubelet probes reach
	// the app while the proxy starts or is down (the CrashLoopBackOff
	// incident). Also the other helpers' admin ports, probed by the kubelet.
	probes := probePorts(b.req.Pod.Spec.Containers)
	ports := make([]int, 0, len(probes))
	for p := range probes {
		ports = append(ports, p)
	}
	sort.Ints(ports)
	served := map[int]bool{}
	for _, c := range b.req.Pod.Spec.Containers {
		for _, cp := range c.Ports {
			served[int(cp.ContainerPort)] = true
		}
	}
	for _, p := range ports {
		ps := strconv.Itoa(p)
		b.status.Excluded = append(b.status.Excluded, ps+" ("+probes[p]+")")
		if !slices.Contains(exclude, ps) {
			exclude = append(exclude, ps)
		}
		if i := slices.Index(include, ps); i >= 0 {
			include = slices.Delete(include, i, i+1)
			b.warnings = append(b.warnings, fmt.Sprintf("sidecarkit: port %d is a %s: removed from inbound capture so kubelet probes do not depend on the proxy", p, probes[p]))
		}
		if served[p] && portIsTraffic(b.req.Pod.Spec.Containers, p) {
			b.warnings = append(b.warnings, fmt.Sprintf("sidecarkit: port %d serves traffic and the %s: it is not captured, so the proxy does not see its traffic; give the app a separate probe port", p, probes[p]))
		}
	}
	for _, h := range b.helpers {
		if p := spec.AdminPort(h); p != 0 && h != spec.Proxy {
			ps := strconv.Itoa(p)
			if !slices.Contains(exclude, ps) {
				exclude = append(exclude, ps)
			}
		}
	}
	a.set("istio-inbound-ports", strings.Join(include, ","))
	if len(exclude) > 0 {
		a.set("istio-local-exclude-ports", strings.Join(exclude, ","))
	}
	if b.s.IncludeOutboundCIDRs != nil {
		a.set("istio-service-cidr", strings.Join(*b.s.IncludeOutboundCIDRs, ","))
	}
	if len(b.s.ExcludeOutboundCIDRs) > 0 {
		a.set("istio-service-exclude-cidr", strings.Join(b.s.ExcludeOutboundCIDRs, ","))
	}
	// The helpers' own servers (Vault, Consul, the log store) are reached
	// directly, as manifests/ does: their traffic must not wait for the proxy.
	outEx := slices.Clone(b.s.ExcludeOutboundPorts)
	for _, addr := range b.helperUpstreams() {
		if p := portOf(addr); p != "" && !slices.Contains(outEx, p) {
			outEx = append(outEx, p)
		}
	}
	if len(outEx) > 0 {
		a.set("istio-local-outbound-ports-exclude", strings.Join(outEx, ","))
	}
	b.user(spec.Initnet, &a)
	return b.container(spec.Initnet, &a, spec.Container{})
}

// portIsTraffic reports whether port p is also a declared container port
// (so it serves traffic, not only probes).
func portIsTraffic(cs []corev1.Container, p int) bool {
	for _, c := range cs {
		for _, cp := range c.Ports {
			if int(cp.ContainerPort) == p && !strings.Contains(strings.ToLower(cp.Name), "health") && !strings.Contains(strings.ToLower(cp.Name), "probe") {
				return true
			}
		}
	}
	return false
}

// helperUpstreams are the addresses the injected helpers talk to.
func (b *builder) helperUpstreams() []string {
	var out []string
	if b.has(spec.Ambassador) {
		out = append(out, b.vaultAddr())
	}
	if b.has(spec.Configsync) {
		out = append(out, b.flagOr(spec.Configsync, "consul-addr", b.o.ConsulAddr))
		if src := b.flagOr(spec.Configsync, "source", ""); src != "" {
			out = append(out, src)
		}
	}
	if b.has(spec.Adapter) {
		for _, u := range strings.Split(b.flagOr(spec.Adapter, "es-url", b.o.ESURL), ",") {
			out = append(out, u)
		}
	}
	return out
}

func (b *builder) flagOr(helper, flag, def string) string {
	for _, f := range b.s.Flags[helper] {
		if f.Name == flag {
			return f.Value
		}
	}
	return def
}

// portOf returns the port of a URL or host:port ("" when none can be told).
func portOf(addr string) string {
	addr = strings.TrimSpace(addr)
	if addr == "" {
		return ""
	}
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		if p := u.Port(); p != "" {
			return p
		}
		switch u.Scheme {
		case "https":
			return "443"
		case "http":
			return "80"
		}
		return ""
	}
	if _, p, err := net.SplitHostPort(addr); err == nil {
		return p
	}
	return ""
}

func (b *builder) proxy() corev1.Container {
	var a args
	a.set("mode", "transparent")
	a.set("inbound-addr", ":"+strconv.Itoa(spec.ProxyInbound))
	a.set("outbound-addr", "127.0.0.1:"+strconv.Itoa(spec.ProxyOutbound))
	a.set("drain-delay", "5s")
	a.set("drain-timeout", "30s")
	b.user(spec.Proxy, &a)
	hold := b.s.HoldApplication == nil || *b.s.HoldApplication
	o := spec.Container{Hold: hold}
	if b.s.ProxyRequests != nil || b.s.ProxyLimits != nil {
		r := spec.Resources(spec.Proxy)
		for k, q := range b.s.ProxyRequests {
			r.Requests[corev1.ResourceName(k)] = q
		}
		for k, q := range b.s.ProxyLimits {
			r.Limits[corev1.ResourceName(k)] = q
		}
		for _, k := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			rq, lm := r.Requests[k], r.Limits[k]
			if rq.Cmp(lm) > 0 {
				// As Istio: a request above the default limit raises the limit.
				if _, set := b.s.ProxyLimits[string(k)]; set {
					b.deny("proxy %s request %s is above its limit %s (sidecar.istio.io/proxy* annotations)", k, rq.String(), lm.String())
				} else {
					r.Limits[k] = r.Requests[k]
				}
			}
		}
		o.Resources = &r
	}
	return b.container(spec.Proxy, &a, o)
}

func (b *builder) vaultAddr() string {
	if b.s.Vault.Addr != "" {
		return b.s.Vault.Addr
	}
	return b.flagOr(spec.Ambassador, "vault-addr", b.o.VaultAddr)
}

// vaultSecret is one entry of the ambassador's YAML "secrets:" section.
type vaultSecret struct {
	Name        string `json:"name,omitempty"`
	Path        string `json:"path,omitempty"`
	Destination string `json:"destination"`
	Template    string `json:"template,omitempty"`
}

func (b *builder) ambassador() corev1.Container {
	v := b.s.Vault
	var a args
	addr := b.vaultAddr()
	if addr == "" {
		b.deny("ambassador: no Vault address: set %s (or ambassador.sidecarkit.io/vault-addr), or start the injector with --vault-addr", annotations.VaultService)
	} else if u, err := url.Parse(addr); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		b.deny("ambassador: Vault address %q: want http(s)://host:port", addr)
	}
	a.set("vault-addr", addr)
	role := v.Role
	if role == "" {
		role = b.flagOr(spec.Ambassador, "kubernetes-role", "")
	}
	if role != "" {
		a.set("auth-method", "kubernetes")
		a.set("kubernetes-role", role)
		a.set("kubernetes-jwt-file", vaultTokenDir+"/token")
	}
	a.set("require-tmpfs", "true")
	var yamlSecrets []vaultSecret
	commands := map[string][]string{}
	for _, f := range v.Files {
		dest := path.Join(v.VolumePath, f.File)
		if f.Template != "" {
			yamlSecrets = append(yamlSecrets, vaultSecret{Name: f.Name, Destination: dest, Template: f.Template})
		} else {
			a.add("secret", dest+"="+f.Path)
		}
		if f.Command != "" {
			commands[f.Command] = append(commands[f.Command], f.Name)
		}
	}
	switch len(commands) {
	case 0:
	case 1:
		for c := range commands {
			a.set("notify-command", c)
		}
	default:
		var names []string
		for _, ns := range commands {
			names = append(names, ns...)
		}
		sort.Strings(names)
		b.deny("vault-k8s agent-inject-command-<name>: the ambassador runs one command after any change; these secrets ask for different ones: %s", strings.Join(names, ", "))
	}
	if v.PrePopulateOnly {
		a.set("exit-after-render", "true")
	}
	b.user(spec.Ambassador, &a)
	if _, ok := a.get("kubernetes-role"); !ok {
		if _, tok := a.get("token-file"); !tok {
			if _, ar := a.get("approle-role-id-file"); !ar {
				b.deny("ambassador: no Vault auth: set %s (Kubernetes auth with the pod's ServiceAccount)", annotations.VaultRole)
			}
		}
	}
	if len(v.Files) == 0 && b.flagOr(spec.Ambassador, "secret", "") == "" {
		b.warnings = append(b.warnings, "sidecarkit: the ambassador renders no file: no "+annotations.VaultSecret+"<name> annotation")
	}
	var mounts []corev1.VolumeMount
	if len(yamlSecrets) > 0 {
		// Templates do not fit on a command line: they go into a YAML file
		// the ambassador reads with --config, carried by an annotation and
		// a downward-API volume (works before the pod has a name).
		y, err := yaml.Marshal(map[string]any{"secrets": yamlSecrets})
		if err != nil {
			b.deny("ambassador: encode templates: %v", err)
		}
		b.pod.Annotations[annotations.AmbassadorYAML] = string(y)
		b.volume(corev1.Volume{Name: VolAmbassador, VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
			Items: []corev1.DownwardAPIVolumeFile{{Path: "ambassador.yaml", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['" + annotations.AmbassadorYAML + "']"}}},
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: VolAmbassador, MountPath: ambassadorCfgDir, ReadOnly: true})
		a.set("config", ambassadorCfgDir+"/ambassador.yaml")
		// --config first: it reads nicer.
		a.names = append([]string{"config"}, slices.DeleteFunc(a.names, func(n string) bool { return n == "config" })...)
	}
	aud := b.o.VaultAudience
	if aud == "" {
		aud = "vault"
	}
	exp := int64(600)
	b.volume(corev1.Volume{Name: VolSecrets, VolumeSource: memDir("1Mi")})
	b.volume(corev1.Volume{Name: VolVaultToken, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: aud, ExpirationSeconds: &exp, Path: "token"}}},
	}}})
	mounts = append(mounts,
		corev1.VolumeMount{Name: VolSecrets, MountPath: v.VolumePath},
		corev1.VolumeMount{Name: VolVaultToken, MountPath: vaultTokenDir, ReadOnly: true})
	b.appMount(corev1.VolumeMount{Name: VolSecrets, MountPath: v.VolumePath, ReadOnly: true}, true)
	c := b.container(spec.Ambassador, &a, spec.Container{Hold: true, InitOnly: v.PrePopulateOnly})
	c.VolumeMounts = mounts
	return c
}

func (b *builder) configsync() corev1.Container {
	var a args
	if b.flagOr(spec.Configsync, "source", "") == "" {
		b.deny("configsync: no source: set configsync.sidecarkit.io/source (consul://host:port/prefix)")
	}
	if b.o.ConsulAddr != "" {
		a.set("consul-addr", b.o.ConsulAddr)
	}
	a.set("dest", configsyncMount+"/current")
	b.user(spec.Configsync, &a)
	dir := b.s.ConfigDir
	if dir == "" {
		dir = configsyncMount
	}
	b.volume(corev1.Volume{Name: VolConfig, VolumeSource: memDir("4Mi")})
	b.appMount(corev1.VolumeMount{Name: VolConfig, MountPath: dir, ReadOnly: true}, true)
	c := b.container(spec.Configsync, &a, spec.Container{Hold: true})
	c.VolumeMounts = []corev1.VolumeMount{{Name: VolConfig, MountPath: configsyncMount}}
	return c
}

func (b *builder) adapter() corev1.Container {
	var a args
	dir := b.s.LogDir
	if dir == "" {
		b.deny("adapter: no log directory: set %s to the directory the app writes its log files in", annotations.LogDir)
	}
	a.set("paths", adapterLogMount+"/*.log")
	if b.o.ESURL != "" {
		a.set("es-url", b.o.ESURL)
	}
	a.set("checkpoint-file", "/var/lib/adapter/checkpoint.json")
	a.set("dead-letter-file", "/var/lib/adapter/dead-letter.ndjson")
	b.user(spec.Adapter, &a)
	// Reuse the app's own volume at that path when it has one.
	logVol := ""
	app := ""
	for _, c := range b.pod.Spec.Containers {
		if !isApp(&c) {
			continue
		}
		if app == "" {
			app = c.Name
		}
		for _, m := range c.VolumeMounts {
			if m.MountPath == dir && logVol == "" {
				logVol, app = m.Name, c.Name
			}
		}
	}
	if logVol == "" && dir != "" {
		logVol = VolLogs
		b.volume(corev1.Volume{Name: VolLogs, VolumeSource: diskDir("256Mi")})
		b.appMount(corev1.VolumeMount{Name: VolLogs, MountPath: dir}, false)
	}
	b.volume(corev1.Volume{Name: VolAdapterData, VolumeSource: diskDir("4Mi")})
	c := b.container(spec.Adapter, &a, spec.Container{Hold: true})
	c.Env = []corev1.EnvVar{
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		{Name: "CONTAINER_NAME", Value: app},
	}
	c.VolumeMounts = []corev1.VolumeMount{
		{Name: logVol, MountPath: adapterLogMount, ReadOnly: true},
		{Name: VolAdapterData, MountPath: "/var/lib/adapter"},
	}
	return c
}

// IsDeny reports whether err is a refusal of the pod.
func IsDeny(err error) bool {
	var d *DenyError
	return errors.As(err, &d)
}
