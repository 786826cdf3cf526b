// Package spec is the one description of how each sidecarkit helper sits in
// a pod: its container (image, probes, ports, lifecycle hooks, resources,
// security context), in the native-sidecar form (Kubernetes 1.29+) and the
// pre-1.29 form. The injector builds pods from it, and a test compares it with
// manifests/native and manifests/legacy so the two cannot drift.
package spec

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Helper names, in the order their containers are placed in a pod.
const (
	Initnet    = "initnet"
	Proxy      = "proxy"
	Ambassador = "ambassador"
	Configsync = "configsync"
	Adapter    = "adapter"
)

// Order is the order helpers appear in a pod (initnet first: it installs the
// redirect before anything else starts).
var Order = []string{Initnet, Proxy, Ambassador, Configsync, Adapter}

// Ports and identities the manifests and the injector agree on.
const (
	ProxyUID        = 1337 // initnet exempts this UID from capture
	HelperUID       = 65532
	ProxyAdminPort  = 15000
	ProxyPromPort   = 15090
	ProxyInbound    = 15006
	ProxyOutbound   = 15001
	AmbassadorAdmin = 15100
	AdapterAdmin    = 15200
	ConfigsyncAdmin = 15300
)

// AdminPort returns a helper's admin port (0 for initnet, which has none).
func AdminPort(helper string) int {
	switch helper {
	case Proxy:
		return ProxyAdminPort
	case Ambassador:
		return AmbassadorAdmin
	case Configsync:
		return ConfigsyncAdmin
	case Adapter:
		return AdapterAdmin
	}
	return 0
}

// Binary is the path of a helper's binary in its image.
func Binary(helper string) string { return "/usr/local/bin/" + helper }

// Resources are a helper's default requests and limits.
func Resources(helper string) corev1.ResourceRequirements {
	r := func(cpuReq, memReq, cpuLim, memLim string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpuReq), corev1.ResourceMemory: resource.MustParse(memReq)},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpuLim), corev1.ResourceMemory: resource.MustParse(memLim)},
		}
	}
	switch helper {
	case Initnet:
		return r("10m", "16Mi", "100m", "32Mi")
	case Proxy:
		return r("50m", "16Mi", "500m", "64Mi")
	case Adapter:
		return r("20m", "24Mi", "500m", "96Mi")
	default: // ambassador, configsync
		return r("10m", "16Mi", "250m", "48Mi")
	}
}

// SecurityContext is a helper's container security context: non-root,
// read-only root, no privilege escalation, every capability dropped — except
// initnet, root with only NET_ADMIN and NET_RAW. The proxy runs as ProxyUID.
func SecurityContext(helper string) *corev1.SecurityContext {
	t, f := true, false
	if helper == Initnet {
		zero := int64(0)
		return &corev1.SecurityContext{
			RunAsNonRoot: &f, RunAsUser: &zero, RunAsGroup: &zero,
			ReadOnlyRootFilesystem: &t, AllowPrivilegeEscalation: &f,
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}, Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}},
		}
	}
	uid := int64(HelperUID)
	if helper == Proxy {
		uid = ProxyUID
	}
	return &corev1.SecurityContext{
		RunAsNonRoot: &t, RunAsUser: &uid, RunAsGroup: &uid,
		ReadOnlyRootFilesystem: &t, AllowPrivilegeEscalation: &f,
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

func httpGet(path string, port int) corev1.ProbeHandler {
	return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(int32(port))}}
}

// Form is how sidecars are placed: native (initContainers with restartPolicy
// Always, Kubernetes 1.29+) or legacy (containers before the app, each with a
// postStart `wait`).
type Form int

// The two forms.
const (
	Native Form = iota
	Legacy
)

// NativeFrom reports whether a cluster of this version runs native sidecars
// (SidecarContainers is on by default from 1.29).
func NativeFrom(major, minor int) bool { return major > 1 || (major == 1 && minor >= 29) }

// Container options a pod's settings change.
type Container struct {
	Image           string
	ImagePullPolicy corev1.PullPolicy
	Args            []string
	Resources       *corev1.ResourceRequirements // nil: Resources(helper)
	// Hold: the app waits until the helper is ready (a startupProbe in the
	// native form, a postStart wait in the legacy one). Istio's
	// holdApplicationUntilProxyStarts; true for every helper by default.
	Hold bool
	// InitOnly: run once before the app (an init container, no sidecar):
	// vault-k8s' agent-pre-populate-only.
	InitOnly bool
}

// HelperContainer builds a helper's container. initnet is always a plain
// init container; the others are native sidecars or, in the legacy form,
// regular containers. Volume mounts and env are the caller's.
func HelperContainer(helper string, form Form, o Container) corev1.Container {
	c := corev1.Container{
		Name:            helper,
		Image:           o.Image,
		ImagePullPolicy: o.ImagePullPolicy,
		Args:            o.Args,
		Resources:       Resources(helper),
		SecurityContext: SecurityContext(helper),
	}
	if o.Resources != nil {
		c.Resources = *o.Resources
	}
	if helper == Initnet {
		c.Command = []string{Binary(Initnet)}
		return c
	}
	if o.InitOnly {
		return c
	}
	port := AdminPort(helper)
	if helper == Proxy {
		c.Ports = []corev1.ContainerPort{{Name: "proxy-admin", ContainerPort: ProxyAdminPort}, {Name: "proxy-prom", ContainerPort: ProxyPromPort}}
		// `proxy drain` (the admin port's control endpoints may be closed
		// to the kubelet: --admin-control-from).
		c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{Binary(Proxy), "drain"}}}}
	}
	c.ReadinessProbe = &corev1.Probe{ProbeHandler: httpGet("/readyz", port), PeriodSeconds: 5}
	c.LivenessProbe = &corev1.Probe{ProbeHandler: httpGet("/livez", port), PeriodSeconds: 10}
	if o.Hold {
		c.StartupProbe = &corev1.Probe{ProbeHandler: httpGet("/startupz", port), PeriodSeconds: 1, FailureThreshold: 120}
	}
	if form == Native {
		always := corev1.ContainerRestartPolicyAlways
		c.RestartPolicy = &always
		return c
	}
	if o.Hold {
		if c.Lifecycle == nil {
			c.Lifecycle = &corev1.Lifecycle{}
		}
		c.Lifecycle.PostStart = &corev1.LifecycleHandler{Exec: &corev1.ExecAction{
			Command: []string{Binary(helper), "wait", "--timeout=120s"},
		}}
	}
	return c
}

// AdminPorts are the helpers' admin ports as strings (never captured inbound,
// so kubelet probes reach them).
func AdminPorts(helpers []string) []string {
	var out []string
	for _, h := range helpers {
		if p := AdminPort(h); p != 0 && h != Proxy { // initnet already exempts the proxy's ports
			out = append(out, strconv.Itoa(p))
		}
	}
	return out
}
