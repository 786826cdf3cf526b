// Package kube is the proxy's Kubernetes service registry: it follows
// Services, EndpointSlices and Pods with client-go informers and gives
// clusters their endpoints (ready addresses, the slice port named like the
// Service port, the pod's labels for subsets), the way istiod's Kubernetes
// registry feeds Envoy.
//
// Memory follows what the workload calls: a Registry that is Scoped (the
// workload has a Sidecar resource naming its egress hosts) watches only the
// Services its clusters subscribe to — one Service by name, its
// EndpointSlices by the kubernetes.io/service-name label, its Pods by the
// Service's selector. An unscoped Registry watches every Service,
// EndpointSlice and Pod in the cluster, as a sidecar without a Sidecar
// resource sees the whole mesh. Managed fields and annotations are dropped
// from cached objects either way.
package kube

import (
	"context"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sidecarkit/sidecarkit/proxy/upstream"
)

// Client builds a clientset from a kubeconfig file, or the in-cluster
// service account when path is "".
func Client(path string) (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	if path == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", path)
	}
	if err != nil {
		return nil, err
	}
	cfg.UserAgent = "sidecarkit-proxy"
	cfg.QPS, cfg.Burst = 50, 100 // lists and watches only; client-go's default 5 would throttle the first sync
	return kubernetes.NewForConfig(cfg)
}

// Registry follows Kubernetes endpoints. Close stops every watch.
type Registry struct {
	client kubernetes.Interface
	log    *slog.Logger
	scoped bool

	mu     sync.Mutex
	subs   map[svcKey][]*sub
	views  map[svcKey]*view // scoped: one filtered watch per Service
	global *view            // unscoped: everything
	ctx    context.Context
	stop   context.CancelFunc
}

type svcKey struct{ ns, name string }

type sub struct {
	port int
	f    func([]upstream.EndpointConfig)
	last []upstream.EndpointConfig
	sent bool
}

// view is a set of informers and their caches.
type view struct {
	services, slices, pods cache.SharedIndexInformer
	stops                  []context.CancelFunc
	podSelector            string // scoped: the selector the pod watch uses
}

// New returns a Registry; scoped: watch only the subscribed Services.
func New(client kubernetes.Interface, log *slog.Logger, scoped bool) *Registry {
	ctx, stop := context.WithCancel(context.Background())
	r := &Registry{client: client, log: log, scoped: scoped, subs: map[svcKey][]*sub{}, views: map[svcKey]*view{}, ctx: ctx, stop: stop}
	if !scoped {
		r.global = r.startView(metav1.NamespaceAll, nil, nil, nil)
	}
	return r
}

// Close stops the watches.
func (r *Registry) Close() { r.stop() }

// strip drops what the registry never reads, to keep the caches small.
func strip(obj any) (any, error) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetManagedFields(nil)
		m.SetAnnotations(nil)
	}
	return obj, nil
}

// startView starts informers in ns; each tweak (nil: none) narrows its list
// and watch (a field or label selector).
func (r *Registry) startView(ns string, svcTweak, sliceTweak, podTweak func(*metav1.ListOptions)) *view {
	v := &view{}
	start := func(tweak func(*metav1.ListOptions), get func(informers.SharedInformerFactory) cache.SharedIndexInformer) cache.SharedIndexInformer {
		opts := []informers.SharedInformerOption{informers.WithNamespace(ns), informers.WithTransform(strip)}
		if tweak != nil {
			opts = append(opts, informers.WithTweakListOptions(tweak))
		}
		f := informers.NewSharedInformerFactoryWithOptions(r.client, 0, opts...)
		inf := get(f)
		inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { r.changed(obj) },
			UpdateFunc: func(_, obj any) { r.changed(obj) },
			DeleteFunc: func(obj any) { r.changed(obj) },
		})
		ctx, cancel := context.WithCancel(r.ctx)
		v.stops = append(v.stops, cancel)
		go inf.Run(ctx.Done())
		return inf
	}
	v.services = start(svcTweak, func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
		return f.Core().V1().Services().Informer()
	})
	v.slices = start(sliceTweak, func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
		return f.Discovery().V1().EndpointSlices().Informer()
	})
	if podTweak != nil || ns == metav1.NamespaceAll {
		v.pods = start(podTweak, func(f informers.SharedInformerFactory) cache.SharedIndexInformer {
			return f.Core().V1().Pods().Informer()
		})
	}
	return v
}

func (v *view) close() {
	for _, s := range v.stops {
		s()
	}
}

// Subscribe implements upstream.KubernetesEndpoints.
func (r *Registry) Subscribe(namespace, service string, port int, f func([]upstream.EndpointConfig)) func() {
	k := svcKey{namespace, service}
	s := &sub{port: port, f: f}
	r.mu.Lock()
	r.subs[k] = append(r.subs[k], s)
	if r.scoped && r.views[k] == nil {
		r.views[k] = r.startView(namespace,
			func(o *metav1.ListOptions) {
				o.FieldSelector = fields.OneTermEqualSelector("metadata.name", service).String()
			},
			func(o *metav1.ListOptions) {
				o.LabelSelector = labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: service}).String()
			}, nil)
	}
	v := r.global
	if r.scoped {
		v = r.views[k]
	}
	r.mu.Unlock()
	r.update(k)
	// Events delivered during the initial list come before HasSynced turns
	// true and are not acted on: compute once more when the caches are synced.
	go func() {
		if cache.WaitForCacheSync(r.ctx.Done(), v.services.HasSynced, v.slices.HasSynced) {
			r.update(k)
		}
	}()
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		ss := r.subs[k]
		for i, x := range ss {
			if x == s {
				ss = append(ss[:i:i], ss[i+1:]...)
				break
			}
		}
		if len(ss) > 0 {
			r.subs[k] = ss
			return
		}
		delete(r.subs, k)
		if v := r.views[k]; v != nil {
			v.close()
			delete(r.views, k)
		}
	}
}

// changed recomputes the subscriptions an object can affect.
func (r *Registry) changed(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	var keys []svcKey
	switch o := obj.(type) {
	case *corev1.Service:
		keys = append(keys, svcKey{o.Namespace, o.Name})
		if r.scoped {
			r.ensurePodWatch(svcKey{o.Namespace, o.Name}, o)
		}
	case *discoveryv1.EndpointSlice:
		keys = append(keys, svcKey{o.Namespace, o.Labels[discoveryv1.LabelServiceName]})
	case *corev1.Pod:
		r.mu.Lock()
		for k := range r.subs {
			if k.ns == o.Namespace {
				keys = append(keys, k)
			}
		}
		r.mu.Unlock()
	}
	for _, k := range keys {
		r.update(k)
	}
}

// ensurePodWatch (scoped) watches the pods the Service selects, for labels.
func (r *Registry) ensurePodWatch(k svcKey, svc *corev1.Service) {
	sel := labels.SelectorFromSet(svc.Spec.Selector).String()
	r.mu.Lock()
	defer r.mu.Unlock()
	v := r.views[k]
	if v == nil || len(svc.Spec.Selector) == 0 || (v.pods != nil && v.podSelector == sel) {
		return
	}
	f := informers.NewSharedInformerFactoryWithOptions(r.client, 0, informers.WithNamespace(k.ns), informers.WithTransform(strip),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel }))
	inf := f.Core().V1().Pods().Informer()
	inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.update(k) },
		UpdateFunc: func(_, obj any) { r.update(k) },
		DeleteFunc: func(obj any) { r.update(k) },
	})
	ctx, cancel := context.WithCancel(r.ctx)
	v.stops = append(v.stops, cancel)
	v.pods, v.podSelector = inf, sel
	go inf.Run(ctx.Done())
}

// update recomputes k's endpoints and tells its subscribers what changed.
func (r *Registry) update(k svcKey) {
	r.mu.Lock()
	v := r.global
	if r.scoped {
		v = r.views[k]
	}
	subs := append([]*sub(nil), r.subs[k]...)
	r.mu.Unlock()
	if v == nil || len(subs) == 0 {
		return
	}
	svcObj, ok, _ := v.services.GetStore().GetByKey(k.ns + "/" + k.name)
	if !ok || !v.services.HasSynced() || !v.slices.HasSynced() {
		return // not known (yet): keep what the cluster has
	}
	svc := svcObj.(*corev1.Service)
	var slices []*discoveryv1.EndpointSlice
	for _, o := range v.slices.GetStore().List() {
		es := o.(*discoveryv1.EndpointSlice)
		if es.Namespace == k.ns && es.Labels[discoveryv1.LabelServiceName] == k.name {
			slices = append(slices, es)
		}
	}
	for _, s := range subs {
		eps := endpointsFor(svc, slices, s.port, func(name string) map[string]string {
			if v.pods == nil {
				return nil
			}
			p, ok, _ := v.pods.GetStore().GetByKey(k.ns + "/" + name)
			if !ok {
				return nil
			}
			return p.(*corev1.Pod).Labels
		})
		r.mu.Lock()
		same := s.sent && equal(s.last, eps)
		s.last, s.sent = eps, true
		r.mu.Unlock()
		if !same {
			s.f(eps)
		}
	}
}

// endpointsFor is the pure core: the ready endpoints of a Service port.
func endpointsFor(svc *corev1.Service, slices []*discoveryv1.EndpointSlice, port int, podLabels func(string) map[string]string) []upstream.EndpointConfig {
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if int(svc.Spec.Ports[i].Port) == port {
			sp = &svc.Spec.Ports[i]
		}
	}
	if sp == nil {
		return nil
	}
	var out []upstream.EndpointConfig
	seen := map[string]bool{}
	for _, es := range slices {
		if es.AddressType != discoveryv1.AddressTypeIPv4 && es.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		target := 0
		for _, p := range es.Ports {
			if p.Port != nil && (p.Name != nil && *p.Name == sp.Name || p.Name == nil && sp.Name == "") {
				target = int(*p.Port)
			}
		}
		if target == 0 {
			continue
		}
		for _, e := range es.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			var lbl map[string]string
			if e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
				lbl = podLabels(e.TargetRef.Name)
			}
			for _, a := range e.Addresses {
				addr := net.JoinHostPort(a, strconv.Itoa(target))
				if seen[addr] {
					continue
				}
				seen[addr] = true
				out = append(out, upstream.EndpointConfig{Address: addr, Labels: lbl})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

func equal(a, b []upstream.EndpointConfig) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Address != b[i].Address || a[i].Weight != b[i].Weight || len(a[i].Labels) != len(b[i].Labels) {
			return false
		}
		for k, v := range a[i].Labels {
			if b[i].Labels[k] != v {
				return false
			}
		}
	}
	return true
}

// WaitSynced blocks until the watches started so far have listed once, or
// the timeout passes (tests, benchmarks).
func (r *Registry) WaitSynced(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		vs := []*view{}
		if r.global != nil {
			vs = append(vs, r.global)
		}
		for _, v := range r.views {
			vs = append(vs, v)
		}
		r.mu.Unlock()
		ok := true
		for _, v := range vs {
			ok = ok && v.services.HasSynced() && v.slices.HasSynced() && (v.pods == nil || v.pods.HasSynced())
		}
		if ok {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}
