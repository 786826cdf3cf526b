package injector

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sidecarkit/sidecarkit/injector/webhook"
	"github.com/sidecarkit/sidecarkit/shared/app"
	"github.com/sidecarkit/sidecarkit/shared/health"
)

// Helper is the injector for app.Main.
func Helper() app.Helper[Config] {
	return app.Helper[Config]{
		Name:      "injector",
		AdminAddr: ":15400",
		// The apiserver keeps calling the old endpoints for a moment after
		// the pod turns not-ready.
		DrainDelay: 5 * time.Second,
		Bind:       Bind,
		Validate:   Validate,
		Run:        Run,
	}
}

var (
	namespacesGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	mwcGVR        = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "mutatingwebhookconfigurations"}
)

// Run serves the webhook until rt stops.
func Run(ctx context.Context, rt *app.Runtime, c *Config) error {
	log := rt.Log
	restCfg, err := restConfig(c.Kubeconfig)
	if err != nil {
		return fmt.Errorf("%w: %w", app.ErrConfig, err)
	}
	restCfg.UserAgent = "sidecarkit-injector/" + rt.Info.Version
	major, minor := c.major, c.minor
	if c.K8sVersion == "" {
		major, minor, err = serverVersion(ctx, restCfg)
		if err != nil {
			return fmt.Errorf("ask the apiserver its version: %w", err)
		}
	}
	log.Info("cluster", "version", fmt.Sprintf("%d.%d", major, minor), "native_sidecars", major > 1 || minor >= 29)

	mc, err := metadata.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("metadata client: %w", err)
	}
	// Namespace labels from a metadata-only informer (no full objects, no
	// typed clients in the binary); a namespace created a moment ago and
	// not yet in the cache is read directly.
	factory := metadatainformer.NewSharedInformerFactory(mc, 10*time.Minute)
	nsInformer := factory.ForResource(namespacesGVR)
	lister := nsInformer.Lister()
	synced := rt.Health.NewFlag("namespaces-synced")
	synced.Set(errors.New("namespace cache not synced yet"))
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	go func() {
		if cache.WaitForCacheSync(ctx.Done(), nsInformer.Informer().HasSynced) {
			synced.Set(nil)
		}
	}()
	ns := namespaceLabels{get: func(ctx context.Context, name string) (map[string]string, error) {
		obj, err := lister.Get(name)
		if err == nil {
			if m, ok := obj.(*metav1.PartialObjectMetadata); ok {
				return m.Labels, nil
			}
		}
		m, err := mc.Resource(namespacesGVR).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return m.Labels, nil
	}}

	tlsCfg, caPEM, err := serving(c, log)
	if err != nil {
		return fmt.Errorf("%w: %w", app.ErrConfig, err)
	}
	caFlag := rt.Health.NewFlag("ca-bundle")
	if caPEM != nil && c.WebhookConfig != "" {
		caFlag.Set(errors.New("caBundle not patched yet"))
		dc, err := dynamic.NewForConfig(restCfg)
		if err != nil {
			return fmt.Errorf("dynamic client: %w", err)
		}
		go patchCABundle(ctx, dc, c.WebhookConfig, caPEM, caFlag, log)
	}

	h := &webhook.Handler{Options: c.options(), Version: func() (int, int) { return major, minor }, Namespaces: ns, Log: log}
	h.Register(rt.Registry)
	mux := http.NewServeMux()
	mux.Handle("/inject", h)
	mux.Handle("/empty", webhook.Empty{}) // an answer with no work, for benchmarks
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("webhook listener: %w", err)
	}
	srv := &http.Server{Handler: mux, TLSConfig: tlsCfg, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	listening := rt.Health.NewFlag("webhook-listener")
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	listening.Set(nil)
	log.Info("webhook listening", "addr", ln.Addr().String())

	select {
	case <-rt.Stopping():
	case err := <-served:
		return fmt.Errorf("webhook server: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, rt.Common.DrainTimeout)
	defer cancel()
	return srv.Shutdown(sctx)
}

type namespaceLabels struct {
	get func(ctx context.Context, name string) (map[string]string, error)
}

func (n namespaceLabels) Labels(ctx context.Context, name string) (map[string]string, error) {
	return n.get(ctx, name)
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("not in a cluster and no --kubeconfig: %w", err)
	}
	return cfg, nil
}

// serverVersion asks GET /version (retrying while the apiserver starts).
func serverVersion(ctx context.Context, cfg *rest.Config) (int, int, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return 0, 0, err
	}
	var last error
	for i := 0; i < 30; i++ {
		major, minor, err := getVersion(ctx, hc, cfg.Host)
		if err == nil {
			return major, minor, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return 0, 0, last
}

func getVersion(ctx context.Context, hc *http.Client, host string) (int, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, host+"/version", nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("GET /version: %s", resp.Status)
	}
	var v struct{ Major, Minor, GitVersion string }
	if err := json.Unmarshal(body, &v); err != nil {
		return 0, 0, fmt.Errorf("GET /version: %w", err)
	}
	if ma, mi, ok := parseVersion(v.Major + "." + v.Minor); ok {
		return ma, mi, nil
	}
	if ma, mi, ok := parseVersion(v.GitVersion); ok {
		return ma, mi, nil
	}
	return 0, 0, fmt.Errorf("GET /version: cannot read %q", body)
}

// patchCABundle puts the generated CA into every webhook of the
// MutatingWebhookConfiguration, retrying (with backoff) until it succeeds.
func patchCABundle(ctx context.Context, dc dynamic.Interface, name string, caPEM []byte, flag *health.Flag, log *slog.Logger) {
	for delay := 500 * time.Millisecond; ; delay = min(2*delay, 10*time.Second) {
		err := patchOnce(ctx, dc, name, caPEM)
		if err == nil {
			flag.Set(nil)
			log.Info("caBundle patched", "mutatingwebhookconfiguration", name)
			return
		}
		flag.Set(err)
		log.Warn("caBundle patch failed; retrying", "mutatingwebhookconfiguration", name, "err", err, "retry_in", delay.String())
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

func patchOnce(ctx context.Context, dc dynamic.Interface, name string, caPEM []byte) error {
	mwc, err := dc.Resource(mwcGVR).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	hooks, _, _ := unstructured.NestedSlice(mwc.Object, "webhooks")
	ca := base64.StdEncoding.EncodeToString(caPEM)
	// The test op makes a concurrent change fail the patch (and retry)
	// rather than patch the wrong webhook.
	ops := []map[string]any{{"op": "test", "path": "/metadata/resourceVersion", "value": mwc.GetResourceVersion()}}
	for i := range hooks {
		ops = append(ops, map[string]any{"op": "add", "path": fmt.Sprintf("/webhooks/%d/clientConfig/caBundle", i), "value": ca})
	}
	pb, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	_, err = dc.Resource(mwcGVR).Patch(ctx, name, types.JSONPatchType, pb, metav1.PatchOptions{FieldManager: "sidecarkit-injector"})
	return err
}
