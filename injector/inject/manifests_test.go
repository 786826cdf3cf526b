package inject

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/sidecarkit/sidecarkit/injector/spec"
)

// The drift check: strip manifests/native (and legacy) down to the bare app
// pod, inject it with annotations equivalent to the manifests' ConfigMaps,
// and compare every helper container and every volume the manifests mount
// with what the injector produced. Only the way settings are passed differs
// (the manifests use --config with a ConfigMap, the injector flags).

func loadDeployment(t *testing.T, variant string) *appsv1.Deployment {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "manifests", variant, "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict(data, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

// barePod is the manifests' pod as an app team would write it: no helpers,
// no helper volumes, the app's mounts of them gone.
func barePod(d *appsv1.Deployment) *corev1.Pod {
	pod := &corev1.Pod{ObjectMeta: d.Spec.Template.ObjectMeta, Spec: *d.Spec.Template.Spec.DeepCopy()}
	pod.Spec.InitContainers = nil
	pod.Spec.ShareProcessNamespace = nil
	pod.Spec.Volumes = nil
	pod.Spec.Containers = slices.DeleteFunc(pod.Spec.Containers, func(c corev1.Container) bool { return slices.Contains(spec.Order, c.Name) })
	for i := range pod.Spec.Containers {
		pod.Spec.Containers[i].VolumeMounts = nil
	}
	return pod
}

// manifestAnnotations say what the manifests' ConfigMaps say.
var manifestAnnotations = map[string]string{
	"sidecarkit.io/inject":                                "true",
	"sidecarkit.io/inject-helpers":                        "proxy,ambassador,configsync,adapter",
	"sidecarkit.io/log-dir":                               "/var/log/app",
	"vault.hashicorp.com/service":                         "https://vault.vault.svc:8200",
	"vault.hashicorp.com/role":                            "demoapp",
	"vault.hashicorp.com/agent-inject-secret-db-password": "secret/data/demoapp#password",
	"ambassador.sidecarkit.io/static-secret-refresh":      "1m",
	"ambassador.sidecarkit.io/notify-process":             "demoapp",
	"ambassador.sidecarkit.io/notify-signal":              "SIGHUP",
	"configsync.sidecarkit.io/source":                     "consul://consul.consul.svc:8500/config/demoapp",
	"configsync.sidecarkit.io/notify-process":             "demoapp",
	"adapter.sidecarkit.io/es-url":                        "http://victorialogs.logging.svc:9428/insert/elasticsearch",
	"traffic.sidecar.istio.io/includeInboundPorts":        "8080",
}

func testOptions() Options {
	return Options{
		ProxyImage: "sidecarkit/proxy:latest", AmbassadorImage: "sidecarkit/ambassador:latest",
		ConfigsyncImage: "sidecarkit/configsync:latest", AdapterImage: "sidecarkit/adapter:latest",
		DefaultHelpers: []string{"proxy"}, SkipNamespaces: []string{"sidecarkit-system"},
		Known: spec.CheckFlag, Version: "test",
	}
}

func TestInjectMatchesManifests(t *testing.T) {
	for _, tc := range []struct {
		variant      string
		major, minor int
	}{{"native", 1, 34}, {"native", 1, 29}, {"legacy", 1, 28}} {
		t.Run(tc.variant+"-"+string(rune('0'+tc.minor/10))+string(rune('0'+tc.minor%10)), func(t *testing.T) {
			d := loadDeployment(t, tc.variant)
			want := d.Spec.Template.Spec
			pod := barePod(d)
			pod.Annotations = manifestAnnotations
			res, err := Inject(Request{Pod: pod, Namespace: "default", Major: tc.major, Minor: tc.minor}, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			if res.Skip != "" {
				t.Fatalf("skipped: %s", res.Skip)
			}
			got := res.Pod.Spec
			names := func(cs []corev1.Container) []string {
				var n []string
				for _, c := range cs {
					n = append(n, c.Name)
				}
				return n
			}
			if !reflect.DeepEqual(names(got.InitContainers), names(want.InitContainers)) || !reflect.DeepEqual(names(got.Containers), names(want.Containers)) {
				t.Fatalf("container order: got init %v, containers %v; manifests init %v, containers %v",
					names(got.InitContainers), names(got.Containers), names(want.InitContainers), names(want.Containers))
			}
			if !reflect.DeepEqual(got.ShareProcessNamespace, want.ShareProcessNamespace) {
				t.Errorf("shareProcessNamespace: got %v, manifests %v", ptrStr(got.ShareProcessNamespace), ptrStr(want.ShareProcessNamespace))
			}
			all := func(s corev1.PodSpec) []corev1.Container { return slices.Concat(s.InitContainers, s.Containers) }
			wantByName := map[string]corev1.Container{}
			for _, c := range all(want) {
				wantByName[c.Name] = c
			}
			for _, g := range all(got) {
				w := wantByName[g.Name]
				if g.Name != "app" {
					for _, f := range []struct {
						name string
						a, b any
					}{
						{"image", g.Image, w.Image}, {"command", g.Command, w.Command}, {"restartPolicy", g.RestartPolicy, w.RestartPolicy},
						{"ports", g.Ports, w.Ports}, {"startupProbe", g.StartupProbe, w.StartupProbe},
						{"readinessProbe", g.ReadinessProbe, w.ReadinessProbe}, {"livenessProbe", g.LivenessProbe, w.LivenessProbe},
						{"lifecycle", g.Lifecycle, w.Lifecycle}, {"resources", g.Resources, w.Resources},
						{"securityContext", g.SecurityContext, w.SecurityContext}, {"env", g.Env, w.Env},
					} {
						if !equalJSON(t, f.a, f.b) {
							t.Errorf("%s %s:\n injected  %s\n manifests %s", g.Name, f.name, js(t, f.a), js(t, f.b))
						}
					}
				}
				// Every mount the manifests give this container (except the
				// ConfigMap with its settings) is there, with the same
				// read-only flag and the same kind of volume.
				for _, wm := range w.VolumeMounts {
					wv := volumeOf(want, wm.Name)
					if wv.ConfigMap != nil {
						continue
					}
					i := slices.IndexFunc(g.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == wm.MountPath })
					if i < 0 {
						t.Errorf("%s: no mount at %s (manifests mount %s there)", g.Name, wm.MountPath, wm.Name)
						continue
					}
					gm := g.VolumeMounts[i]
					if gm.ReadOnly != wm.ReadOnly {
						t.Errorf("%s mount %s: readOnly %v, manifests %v", g.Name, wm.MountPath, gm.ReadOnly, wm.ReadOnly)
					}
					if gv := volumeOf(got, gm.Name); !equalJSON(t, gv.VolumeSource, wv.VolumeSource) {
						t.Errorf("%s mount %s: volume %s, manifests %s", g.Name, wm.MountPath, js(t, gv.VolumeSource), js(t, wv.VolumeSource))
					}
				}
			}
			// initnet: the same capture as the manifests (the probe port
			// 8081 out, Vault/Consul/VictoriaLogs ports not redirected).
			initnet := got.InitContainers[0]
			for _, a := range []string{"--istio-inbound-ports=8080", "--istio-local-outbound-ports-exclude=8200,8500,9428"} {
				if !slices.Contains(initnet.Args, a) {
					t.Errorf("initnet args %q lack %s", initnet.Args, a)
				}
			}
			if !slices.ContainsFunc(initnet.Args, func(a string) bool {
				return strings.HasPrefix(a, "--istio-local-exclude-ports=") && slices.Contains(strings.Split(strings.TrimPrefix(a, "--istio-local-exclude-ports="), ","), "8081")
			}) {
				t.Errorf("initnet args %q do not exclude the probe port 8081", initnet.Args)
			}
		})
	}
}

func volumeOf(s corev1.PodSpec, name string) corev1.Volume {
	for _, v := range s.Volumes {
		if v.Name == name {
			return v
		}
	}
	return corev1.Volume{}
}

func ptrStr(b *bool) string {
	if b == nil {
		return "unset"
	}
	if *b {
		return "true"
	}
	return "false"
}

func js(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// equalJSON compares two API values by their JSON (nil and empty agree, as
// they do on the wire).
func equalJSON(t *testing.T, a, b any) bool { return js(t, a) == js(t, b) }
