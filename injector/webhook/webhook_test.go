package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/sidecarkit/sidecarkit/injector/inject"
	"github.com/sidecarkit/sidecarkit/injector/spec"
	"github.com/sidecarkit/sidecarkit/shared/logging"
)

// nsMap is an in-memory namespace store (the real one is the apiserver:
// see the cluster tests).
type nsMap map[string]map[string]string

func (m nsMap) Labels(_ context.Context, name string) (map[string]string, error) {
	l, ok := m[name]
	if !ok {
		return nil, errors.New("namespace " + name + " not found")
	}
	return l, nil
}

func handler() *Handler {
	return &Handler{
		Options:    inject.Options{ProxyImage: "p", AmbassadorImage: "a", ConfigsyncImage: "c", AdapterImage: "d", DefaultHelpers: []string{"proxy"}, Known: spec.CheckFlag},
		Version:    func() (int, int) { return 1, 34 },
		Namespaces: nsMap{"apps": {"sidecarkit.io/injection": "enabled"}, "plain": {}},
		Log:        logging.Discard(),
	}
}

func review(t *testing.T, h http.Handler, ns string, pod *corev1.Pod, dryRun bool) (*admissionv1.AdmissionResponse, int, string) {
	t.Helper()
	raw, _ := json.Marshal(pod)
	rv := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "u-1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Namespace: ns, Operation: admissionv1.Create, DryRun: &dryRun, Object: runtime.RawExtension{Raw: raw}},
	}
	body, _ := json.Marshal(rv)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/inject", bytes.NewReader(body)))
	if rec.Code != http.StatusOK {
		return nil, rec.Code, rec.Body.String()
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if out.Response.UID != "u-1" {
		t.Fatalf("uid %q", out.Response.UID)
	}
	return out.Response, rec.Code, ""
}

func pod(ann map[string]string) *corev1.Pod {
	return &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Annotations: ann},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "x"}}}}
}

func TestReview(t *testing.T) {
	h := handler()
	// Injected, dry run or not: the same patch (no side effects either way).
	for _, dry := range []bool{false, true} {
		in := pod(map[string]string{"sidecar.istio.io/statsInclusionPrefixes": "x"})
		resp, _, _ := review(t, h, "apps", in, dry)
		if !resp.Allowed || resp.PatchType == nil || len(resp.Patch) == 0 {
			t.Fatalf("dryRun=%v: %+v", dry, resp)
		}
		p, err := jsonpatch.DecodePatch(resp.Patch)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(in)
		if _, err := p.Apply(raw); err != nil {
			t.Fatal(err)
		}
		if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "statsInclusionPrefixes") {
			t.Fatalf("warnings %q", resp.Warnings)
		}
	}
	// Not selected: allowed, untouched.
	resp, _, _ := review(t, h, "plain", pod(nil), false)
	if !resp.Allowed || resp.Patch != nil {
		t.Fatalf("plain namespace: %+v", resp)
	}
	// Denied with the reason, as a 400 the user sees.
	resp, _, _ = review(t, h, "apps", pod(map[string]string{"traffic.sidecar.istio.io/excludeInboundPorts": "x"}), false)
	if resp.Allowed || resp.Result.Code != 400 || !strings.Contains(resp.Result.Message, "excludeInboundPorts") {
		t.Fatalf("denial: %+v", resp.Result)
	}
	// The namespace cannot be read: no answer (HTTP 500), so the
	// webhook's failurePolicy decides.
	_, code, body := review(t, h, "gone", pod(nil), false)
	if code != http.StatusInternalServerError || !strings.Contains(body, "cannot read namespace gone") {
		t.Fatalf("code %d body %q", code, body)
	}
}

func TestBadRequests(t *testing.T) {
	h := handler()
	for name, tc := range map[string]struct {
		method, ct, body string
		code             int
	}{
		"get":       {http.MethodGet, "", "", http.StatusMethodNotAllowed},
		"yaml":      {http.MethodPost, "application/yaml", "{}", http.StatusUnsupportedMediaType},
		"garbage":   {http.MethodPost, "application/json", "{\x00", http.StatusBadRequest},
		"norequest": {http.MethodPost, "application/json", `{"kind":"AdmissionReview"}`, http.StatusBadRequest},
		"huge":      {http.MethodPost, "application/json", `{"x":"` + strings.Repeat("a", maxBody) + `"}`, http.StatusRequestEntityTooLarge},
	} {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, "/inject", strings.NewReader(tc.body))
			if tc.ct != "" {
				req.Header.Set("Content-Type", tc.ct)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.code {
				t.Fatalf("code %d, want %d: %s", rec.Code, tc.code, rec.Body)
			}
		})
	}
}
