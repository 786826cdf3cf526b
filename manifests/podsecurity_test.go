package manifests

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// Pod Security Admission, by the real kube-apiserver v1.34 (not a copy of
// its rules): every pod passes "restricted" except initnet, which needs
// NET_ADMIN/NET_RAW as root and therefore a "privileged" namespace; the
// namespace labels below are the ones README.md documents.
func TestPodSecurityAdmission(t *testing.T) {
	k := testenv.StartKubeControlPlane(t)
	levels := map[string]string{ // namespace → labels
		"psa-restricted": "pod-security.kubernetes.io/enforce=restricted",
		"psa-baseline":   "pod-security.kubernetes.io/enforce=baseline",
		// what README.md tells users to use for a pod with initnet
		"psa-privileged": "pod-security.kubernetes.io/enforce=privileged pod-security.kubernetes.io/warn=restricted pod-security.kubernetes.io/audit=restricted",
	}
	for ns, labels := range levels {
		k.Kubectl(t, "create", "namespace", ns)
		k.Kubectl(t, append([]string{"label", "namespace", ns}, strings.Fields(labels)...)...)
		// the ServiceAccount the ambassador pods name must exist
		k.Kubectl(t, "apply", "-n", ns, "-k", "base")
	}

	pods := map[string]*corev1.Pod{}
	for _, dir := range []string{"native", "legacy"} {
		var d *appsv1.Deployment
		for _, doc := range docSep.Split(k.Kubectl(t, "kustomize", dir), -1) {
			if strings.Contains(doc, "kind: Deployment") {
				d = &appsv1.Deployment{}
				if err := yamlUnmarshal(doc, d); err != nil {
					t.Fatalf("%s: %v", dir, err)
				}
			}
		}
		if d == nil {
			t.Fatalf("%s: no Deployment in kustomize output", dir)
		}
		pods[dir] = &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: "demoapp-" + dir, Labels: d.Spec.Template.Labels}, Spec: d.Spec.Template.Spec}
	}
	for _, s := range []string{"proxy", "ambassador", "configsync", "adapter"} {
		b, err := os.ReadFile("snippets/" + s + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		p := &corev1.Pod{}
		if err := yamlUnmarshal(string(b), p); err != nil {
			t.Fatalf("snippet %s: %v", s, err)
		}
		pods["snippet-"+s] = p
	}

	for name, pod := range pods {
		hasInitnet := false
		for _, c := range pod.Spec.InitContainers {
			hasInitnet = hasInitnet || c.Name == "initnet"
		}
		js, _ := json.Marshal(pod)
		for ns := range levels {
			t.Run(name+"/"+ns, func(t *testing.T) {
				out, err := k.KubectlErr(string(js), "create", "-n", ns, "--dry-run=server", "-f", "-")
				switch {
				case ns == "psa-privileged" || !hasInitnet:
					if err != nil {
						t.Fatalf("rejected: %v", err)
					}
					if strings.Contains(out, "would violate") {
						t.Fatalf("warnings: %s", out)
					}
				default:
					if err == nil {
						t.Fatalf("accepted in %s, want a rejection for initnet's NET_ADMIN/NET_RAW", ns)
					}
					msg := err.Error()
					if !strings.Contains(msg, `violates PodSecurity`) || !strings.Contains(msg, `"NET_ADMIN", "NET_RAW"`) {
						t.Fatalf("want a PodSecurity rejection naming NET_ADMIN/NET_RAW, got %v", err)
					}
					if others := nonInitnet(msg); len(others) > 0 {
						t.Fatalf("violations name containers other than initnet %v: %v", others, err)
					}
				}
			})
		}
	}
}

var psaContainers = regexp.MustCompile(`containers? ((?:"[^"]+"(?:, | and )?)+)`)

// nonInitnet returns the containers a PodSecurity message names besides
// initnet ("pod or containers" forms included).
func nonInitnet(msg string) []string {
	var out []string
	for _, m := range psaContainers.FindAllStringSubmatch(msg, -1) {
		for _, q := range regexp.MustCompile(`"([^"]+)"`).FindAllStringSubmatch(m[1], -1) {
			if q[1] != "initnet" {
				out = append(out, q[1])
			}
		}
	}
	if strings.Contains(msg, "pod or container") {
		out = append(out, fmt.Sprintf("(pod-level: %s)", msg))
	}
	return out
}

func yamlUnmarshal(s string, v any) error { return yaml.Unmarshal([]byte(s), v) }
