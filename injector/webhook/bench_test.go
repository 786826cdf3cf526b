package webhook

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// BenchmarkServeHTTP: one AdmissionReview for a labelled namespace's pod,
// decoded, injected (proxy), patched, checked and encoded — the injector's
// own share of the admission latency (no TLS, no apiserver), beside the
// empty webhook.
func BenchmarkServeHTTP(b *testing.B) {
	raw, _ := json.Marshal(pod(map[string]string{"traffic.sidecar.istio.io/excludeOutboundPorts": "5432"}))
	body, _ := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "u", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Namespace: "apps", Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}},
	})
	for name, h := range map[string]http.Handler{"inject": handler(), "empty": Empty{}} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/inject", bytes.NewReader(body)))
				if rec.Code != 200 {
					b.Fatal(rec.Code)
				}
			}
		})
	}
}
