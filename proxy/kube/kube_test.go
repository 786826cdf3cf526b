package kube

import (
	"context"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sidecarkit/sidecarkit/proxy/upstream"
)

func ptr[T any](v T) *T { return &v }

func service(ns, name string, sel map[string]string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: corev1.ServiceSpec{Selector: sel, Ports: ports}}
}

func slice(ns, svc, name string, port int32, portName string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr(portName), Port: ptr(port)}},
		Endpoints:   eps,
	}
}

func ep(ip, pod string, ready bool) discoveryv1.Endpoint {
	e := discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr(ready)}}
	if pod != "" {
		e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: pod}
	}
	return e
}

func TestEndpointsFor(t *testing.T) {
	svc := service("shop", "reviews", nil,
		corev1.ServicePort{Name: "http", Port: 9080, TargetPort: intstr.FromInt(8080)},
		corev1.ServicePort{Name: "grpc", Port: 9090})
	slices := []*discoveryv1.EndpointSlice{
		slice("shop", "reviews", "a", 8080, "http", ep("10.0.0.2", "r2", true), ep("10.0.0.1", "r1", true), ep("10.0.0.3", "r3", false)),
		{ObjectMeta: metav1.ObjectMeta{Name: "b"}, AddressType: discoveryv1.AddressTypeIPv4,
			Ports: []discoveryv1.EndpointPort{{Name: ptr("grpc"), Port: ptr(int32(7000))}}, Endpoints: []discoveryv1.Endpoint{ep("10.0.0.9", "", true)}},
	}
	labels := map[string]map[string]string{"r1": {"version": "v1"}, "r2": {"version": "v2"}}
	got := endpointsFor(svc, slices, 9080, func(n string) map[string]string { return labels[n] })
	want := []upstream.EndpointConfig{{Address: "10.0.0.1:8080", Labels: map[string]string{"version": "v1"}}, {Address: "10.0.0.2:8080", Labels: map[string]string{"version": "v2"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("port 9080: %+v, want %+v (not-ready 10.0.0.3 left out)", got, want)
	}
	if got := endpointsFor(svc, slices, 9090, func(string) map[string]string { return nil }); len(got) != 1 || got[0].Address != "10.0.0.9:7000" {
		t.Errorf("port 9090 by slice port name: %+v", got)
	}
	if got := endpointsFor(svc, slices, 1234, nil); got != nil {
		t.Errorf("unknown Service port: %+v", got)
	}
}

// recorder collects what a subscription receives.
type recorder struct {
	mu  sync.Mutex
	got [][]upstream.EndpointConfig
}

func (r *recorder) f(eps []upstream.EndpointConfig) {
	r.mu.Lock()
	r.got = append(r.got, eps)
	r.mu.Unlock()
}
func (r *recorder) last() []upstream.EndpointConfig {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.got) == 0 {
		return nil
	}
	return r.got[len(r.got)-1]
}

func waitEndpoints(t *testing.T, r *recorder, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var have []string
		for _, e := range r.last() {
			have = append(have, e.Address+"/"+e.Labels["version"])
		}
		if reflect.DeepEqual(have, want) || len(have) == 0 && len(want) == 0 && len(r.got) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoints %v, want %v", have, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exerciseRegistry drives a Registry through Service, EndpointSlice and Pod
// changes on client. It runs against client-go's fake clientset here (an
// in-memory object tracker with real watch semantics) and against the real
// apiserver in the integration test.
func exerciseRegistry(t *testing.T, client kubernetes.Interface, scoped bool) {
	exerciseRegistryIn(t, client, "shop", scoped)
}

func exerciseRegistryIn(t *testing.T, client kubernetes.Interface, ns string, scoped bool) {
	ctx := context.Background()
	mk := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := client.CoreV1().Services(ns).Create(ctx, service(ns, "reviews", map[string]string{"app": "reviews"}, corev1.ServicePort{Name: "http", Port: 9080}), metav1.CreateOptions{})
	mk(err)
	_, err = client.CoreV1().Services(ns).Create(ctx, service(ns, "other", nil, corev1.ServicePort{Name: "http", Port: 80}), metav1.CreateOptions{})
	mk(err)
	for _, p := range []struct{ name, version string }{{"r1", "v1"}, {"r2", "v2"}} {
		_, err = client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: p.name, Labels: map[string]string{"app": "reviews", "version": p.version}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}}}, metav1.CreateOptions{})
		mk(err)
	}
	_, err = client.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice(ns, "reviews", "reviews-a", 8080, "http", ep("10.1.0.1", "r1", true)), metav1.CreateOptions{})
	mk(err)

	reg := New(client, slog.New(slog.DiscardHandler), scoped)
	defer reg.Close()
	var rec recorder
	cancel := reg.Subscribe(ns, "reviews", 9080, rec.f)
	defer cancel()
	waitEndpoints(t, &rec, "10.1.0.1:8080/v1")

	// The EndpointSlice changes: the endpoints follow, with the pod's labels.
	es, err := client.DiscoveryV1().EndpointSlices(ns).Get(ctx, "reviews-a", metav1.GetOptions{})
	mk(err)
	es.Endpoints = append(es.Endpoints, ep("10.1.0.2", "r2", true))
	_, err = client.DiscoveryV1().EndpointSlices(ns).Update(ctx, es, metav1.UpdateOptions{})
	mk(err)
	waitEndpoints(t, &rec, "10.1.0.1:8080/v1", "10.1.0.2:8080/v2")

	// A pod's labels change: subsets follow.
	p, err := client.CoreV1().Pods(ns).Get(ctx, "r2", metav1.GetOptions{})
	mk(err)
	p.Labels["version"] = "v3"
	_, err = client.CoreV1().Pods(ns).Update(ctx, p, metav1.UpdateOptions{})
	mk(err)
	waitEndpoints(t, &rec, "10.1.0.1:8080/v1", "10.1.0.2:8080/v3")

	// Another Service's slices do not disturb it; deleting the slice empties it.
	_, err = client.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice(ns, "other", "other-a", 80, "http", ep("10.1.0.9", "", true)), metav1.CreateOptions{})
	mk(err)
	mk(client.DiscoveryV1().EndpointSlices(ns).Delete(ctx, "reviews-a", metav1.DeleteOptions{}))
	waitEndpoints(t, &rec)
}

func TestRegistryFakeClientset(t *testing.T) {
	for _, scoped := range []bool{true, false} {
		name := "unscoped"
		if scoped {
			name = "scoped"
		}
		t.Run(name, func(t *testing.T) { exerciseRegistry(t, fake.NewClientset(), scoped) })
	}
}
