package upstream

import (
	"context"
	"fmt"
)

// KubernetesConfig takes a cluster's endpoints from a Kubernetes Service's
// EndpointSlices (ready endpoints, the slice port named like the Service
// port), with the pods' labels for subsets. The watch itself is shared by
// all clusters and comes from Deps.Kubernetes (package kube).
type KubernetesConfig struct {
	Namespace string `yaml:"namespace"`
	Service   string `yaml:"service"`
	Port      int    `yaml:"port"` // the Service's port number
}

// KubernetesEndpoints follows Kubernetes endpoints for clusters. Subscribe
// calls f with the current endpoints whenever they change (first call once
// known) until cancel is called.
type KubernetesEndpoints interface {
	Subscribe(namespace, service string, port int, f func([]EndpointConfig)) (cancel func())
}

func (k *KubernetesConfig) problems(add func(key string, v any, msg string)) {
	if k.Namespace == "" {
		add("kubernetes.namespace", k.Namespace, "a namespace is needed")
	}
	if k.Service == "" {
		add("kubernetes.service", k.Service, "a Service name is needed")
	}
	if k.Port < 1 || k.Port > 65535 {
		add("kubernetes.port", k.Port, "want the Service's port 1..65535")
	}
}

// runKubernetes feeds the cluster from the shared Kubernetes watch until ctx ends.
func (c *Cluster) runKubernetes(ctx context.Context, k KubernetesConfig, src KubernetesEndpoints) {
	cancel := src.Subscribe(k.Namespace, k.Service, k.Port, func(eps []EndpointConfig) {
		c.setEndpoints(eps)
		c.m.discoveryUpdates.Inc()
		c.log.Debug("Kubernetes endpoints changed", "service", k.Namespace+"/"+k.Service, "port", k.Port, "endpoints", len(eps))
	})
	<-ctx.Done()
	cancel()
}

func errNoKubernetes(name string) error {
	return fmt.Errorf("cluster %q: kubernetes endpoints need the proxy's Kubernetes discovery (--kube-discovery)", name)
}
