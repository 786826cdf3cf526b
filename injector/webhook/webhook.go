// Package webhook answers the apiserver's AdmissionReview requests for pods
// with the inject core: a JSON patch, warnings, or a denial that says why.
// It never answers a request with a patch it has not applied to the
// request's own bytes first, so the apiserver never fails to apply it.
package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sidecarkit/sidecarkit/injector/inject"
)

// Namespaces gives a namespace's labels.
type Namespaces interface {
	Labels(ctx context.Context, name string) (map[string]string, error)
}

// Handler serves POST /inject.
type Handler struct {
	Options inject.Options
	// Version returns the apiserver's major and minor version.
	Version    func() (int, int)
	Namespaces Namespaces
	Log        *slog.Logger
	metrics    *metrics
}

type metrics struct {
	reviews  *prometheus.CounterVec
	duration prometheus.Histogram
}

// Register adds the handler's metrics to reg.
func (h *Handler) Register(reg prometheus.Registerer) {
	h.metrics = &metrics{
		reviews: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sidecarkit_injector_admissions_total",
			Help: "Admission reviews answered, by result: injected, skipped, denied, error.",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sidecarkit_injector_admission_duration_seconds",
			Help:    "Time to answer one admission review.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1},
		}),
	}
	reg.MustRegister(h.metrics.reviews, h.metrics.duration)
}

const maxBody = 8 << 20 // a pod with huge annotations is still well below

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method != http.MethodPost {
		http.Error(w, "POST an admission.k8s.io/v1 AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		http.Error(w, "want Content-Type application/json, got "+ct, http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		http.Error(w, "request body unreadable or over 8 MiB", http.StatusRequestEntityTooLarge)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, fmt.Sprintf("not an AdmissionReview with a request: %v", err), http.StatusBadRequest)
		return
	}
	resp, result, err := h.Review(r.Context(), review.Request)
	if err != nil {
		// An answer the injector cannot give: a call failure, so the
		// webhook's failurePolicy decides (Ignore: the pod is created
		// without helpers; Fail: the user gets this message).
		http.Error(w, "sidecarkit injector: "+err.Error(), http.StatusInternalServerError)
		if h.metrics != nil {
			h.metrics.reviews.WithLabelValues(result).Inc()
		}
		return
	}
	resp.UID = review.Request.UID
	out := admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Response: resp}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(out); err != nil {
		h.Log.Warn("write admission response", "err", err)
	}
	if h.metrics != nil {
		h.metrics.reviews.WithLabelValues(result).Inc()
		h.metrics.duration.Observe(time.Since(start).Seconds())
	}
}

// Review answers one request; result is injected, skipped, denied or error.
// An error is an internal failure: no answer is given (failurePolicy rules).
func (h *Handler) Review(ctx context.Context, req *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, string, error) {
	allow := &admissionv1.AdmissionResponse{Allowed: true}
	log := h.Log.With("namespace", req.Namespace, "uid", string(req.UID), "dry_run", req.DryRun != nil && *req.DryRun)
	if req.Kind.Kind != "Pod" || req.Operation != admissionv1.Create || req.SubResource != "" {
		return allow, "skipped", nil
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return deny(fmt.Sprintf("sidecarkit injector: the pod does not decode: %v", err), http.StatusBadRequest), "denied", nil
	}
	name := pod.Name
	if name == "" {
		name = pod.GenerateName + "<generated>"
	}
	log = log.With("pod", name)
	var labels map[string]string
	if h.Namespaces != nil {
		var err error
		labels, err = h.Namespaces.Labels(ctx, req.Namespace)
		if err != nil {
			// Without the namespace's labels the answer could be wrong;
			// the failurePolicy decides what the apiserver does.
			log.Error("namespace labels unavailable", "err", err)
			return nil, "error", fmt.Errorf("cannot read namespace %s: %w", req.Namespace, err)
		}
	}
	major, minor := h.Version()
	res, err := inject.Inject(inject.Request{Pod: &pod, Namespace: req.Namespace, NamespaceLabels: labels, Major: major, Minor: minor}, h.Options)
	if err != nil {
		if !inject.IsDeny(err) {
			log.Error("inject failed", "err", err)
			return nil, "error", err
		}
		log.Info("pod denied", "err", err)
		return deny(err.Error(), http.StatusBadRequest), "denied", nil
	}
	if res.Skip != "" {
		log.Debug("not injected", "why", res.Skip)
		return allow, "skipped", nil
	}
	patch, err := json.Marshal(res.Patch)
	if err == nil {
		err = check(req.Object.Raw, patch)
	}
	if err != nil {
		log.Error("patch does not apply to the pod; refusing rather than letting the apiserver fail", "err", err)
		return nil, "error", fmt.Errorf("internal error: the patch does not apply to this pod (%v); please report it", err)
	}
	pt := admissionv1.PatchTypeJSONPatch
	allow.Patch, allow.PatchType = patch, &pt
	allow.Warnings = res.Warnings
	log.Info("injected", "helpers", res.Status.Helpers, "form", res.Status.Form, "refused", len(res.Status.Refused))
	return allow, "injected", nil
}

// check applies the patch to the request's own bytes, as the apiserver will.
func check(raw, patch []byte) error {
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		return err
	}
	out, err := p.Apply(raw)
	if err != nil {
		return err
	}
	var pod corev1.Pod
	return json.Unmarshal(out, &pod)
}

func deny(msg string, code int32) *admissionv1.AdmissionResponse {
	return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{Status: metav1.StatusFailure, Message: msg, Reason: metav1.StatusReasonBadRequest, Code: code}}
}

// Empty answers every review "allowed", with no work: the baseline the
// benchmark measures the injector against.
type Empty struct{}

func (Empty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var review admissionv1.AdmissionReview
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Response: &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true},
	})
}
