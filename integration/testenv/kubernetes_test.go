package testenv

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The control plane is real: version, strict server-side validation, the
// ServiceAccount token flow, and an admission webhook served by this test
// process through Listen (what the injector's tests need).
func TestKubeControlPlane(t *testing.T) {
	k := StartKubeControlPlane(t)
	if out := k.Kubectl(t, "version", "-o", "json"); !strings.Contains(out, `"gitVersion": "`+KubernetesVersion+`"`) {
		t.Fatalf("kubectl version: %s", out)
	}
	// strict field validation on the server
	_, err := k.KubectlErr(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"dataa":{}}`, "apply", "--dry-run=server", "-f", "-")
	if err == nil || !strings.Contains(err.Error(), `unknown field "dataa"`) {
		t.Fatalf("strict validation: want unknown field error, got %v", err)
	}
	// a ServiceAccount token the apiserver's own TokenReview accepts
	tok := strings.TrimSpace(k.Kubectl(t, "create", "token", "default"))
	review := fmt.Sprintf(`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":%q}}`, tok)
	if out := k.KubectlStdin(t, review, "create", "-o", "jsonpath={.status.user.username}", "-f", "-"); out != "system:serviceaccount:default:default" {
		t.Fatalf("TokenReview: %q", out)
	}

	// A mutating webhook in this process, reached by the apiserver inside the
	// netns.
	l, addr := k.Listen(t)
	host := strings.Split(addr, ":")[0]
	certPEM, keyPEM := k.IssueCert(t, host)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var rev struct {
			Request struct {
				UID string `json:"uid"`
			} `json:"request"`
		}
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &rev)
		patch := base64.StdEncoding.EncodeToString([]byte(`[{"op":"add","path":"/metadata/labels","value":{"mutated":"yes"}}]`))
		fmt.Fprintf(w, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":%q,"allowed":true,"patchType":"JSONPatch","patch":%q}}`, rev.Request.UID, patch)
	}), TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}}}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
	k.KubectlStdin(t, fmt.Sprintf(`apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: testenv}
webhooks:
- name: testenv.sidecarkit.dev
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  clientConfig:
    url: https://%s/mutate
    caBundle: %s
  rules:
  - {operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [configmaps]}
`, addr, base64.StdEncoding.EncodeToString(k.CAPEM)), "apply", "-f", "-")
	// The webhook configuration takes effect asynchronously.
	deadline := time.Now().Add(time.Minute)
	for {
		out := k.KubectlStdin(t, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"hooked"}}`, "create", "--dry-run=server", "-o", "jsonpath={.metadata.labels.mutated}", "-f", "-")
		if out == "yes" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook never mutated the ConfigMap (calls %d)", calls.Load())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The process listing: etcd, apiserver, controller-manager, nothing else.
	if _, ok := k.procs["kube-scheduler"]; ok {
		t.Errorf("control plane only: a scheduler was started")
	}
}
