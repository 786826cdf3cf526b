package istio

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sidecarkit/sidecarkit/proxy/config"
	"github.com/sidecarkit/sidecarkit/proxy/mtls"
	"github.com/sidecarkit/sidecarkit/proxy/upstream"
)

// OptionsFrom reads the workload description from the proxy's flags:
// --istio-namespace, --istio-labels (k=v,k=v) and --istio-certs (a directory
// with Istio's cert-chain.pem, key.pem and root-cert.pem; "" = none).
func OptionsFrom(c *config.Config) (Options, error) {
	o := Options{Namespace: c.IstioNamespace, Labels: map[string]string{}}
	for _, kv := range strings.Split(c.IstioLabels, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return o, fmt.Errorf("istio-labels %q: want key=value,key=value", c.IstioLabels)
		}
		o.Labels[k] = v
	}
	if c.IstioCerts != "" {
		o.Certs = mtls.Files{
			CertFile: filepath.Join(c.IstioCerts, "cert-chain.pem"),
			KeyFile:  filepath.Join(c.IstioCerts, "key.pem"),
			CAFile:   filepath.Join(c.IstioCerts, "root-cert.pem"),
		}
	}
	return o, nil
}

// Load reads the directory c names (--istio-config) and returns c with the
// translation merged in (Apply), or every problem. c itself is not changed.
// Without --istio-config it returns c.
func Load(c *config.Config) (*config.Config, error) {
	if c.IstioConfig == "" {
		return c, nil
	}
	o, err := OptionsFrom(c)
	if err != nil {
		return nil, err
	}
	rs, ps := LoadDir(c.IstioConfig)
	res, tps := Translate(rs, o)
	ps = append(ps, tps...)
	if len(ps) > 0 {
		return nil, ps.Err()
	}
	out := *c
	if err := Apply(&out, res); err != nil {
		return nil, err
	}
	return &out, nil
}

// Apply merges a translation into c: its routes after c's own (the proxy's
// YAML wins where both match), its clusters, its SNI routes on the outbound
// listeners, its mTLS, JWT and authorization on the inbound listeners, and
// the Sidecar's outbound traffic policy. The listeners the flags imply are
// made explicit so the policies have somewhere to go. A name both define, or
// a listener policy both set, is an error.
func Apply(c *config.Config, r *Result) error {
	var errs []string
	routes := map[string]bool{}
	for _, rt := range c.Routes {
		routes[rt.Name] = true
	}
	c.Routes = append([]config.Route(nil), c.Routes...)
	for _, rt := range r.Routes {
		if routes[rt.Name] {
			errs = append(errs, fmt.Sprintf("route %q: defined by the proxy's config and an Istio resource", rt.Name))
		}
		c.Routes = append(c.Routes, rt)
	}
	clusters := map[string]bool{}
	for _, cl := range c.Clusters {
		clusters[cl.Name] = true
	}
	c.Clusters = append([]upstream.ClusterConfig(nil), c.Clusters...)
	for _, cl := range r.Clusters {
		if clusters[cl.Name] {
			errs = append(errs, fmt.Sprintf("cluster %q: defined by the proxy's config and an Istio resource", cl.Name))
		}
		c.Clusters = append(c.Clusters, cl)
	}
	if r.Passthrough != nil {
		c.OutboundPassthrough = *r.Passthrough
	}
	ls := append([]config.Listener(nil), c.Effective()...)
	for i := range ls {
		l := &ls[i]
		if l.Direction == config.Outbound {
			l.SNI = append(append([]config.SNIRoute(nil), l.SNI...), r.SNI...)
			continue
		}
		if r.MTLS != nil {
			if l.MTLS != nil {
				errs = append(errs, fmt.Sprintf("listener %q: mtls set by the proxy's config and by a PeerAuthentication", l.Name))
			} else {
				m := *r.MTLS
				l.MTLS = &m
			}
		}
		if r.JWT != nil {
			if l.JWT != nil {
				errs = append(errs, fmt.Sprintf("listener %q: jwt set by the proxy's config and by a RequestAuthentication", l.Name))
			} else {
				j := *r.JWT
				l.JWT = &j
			}
		}
		if r.Authorization != nil {
			a := *r.Authorization
			if l.Authorization != nil {
				a.Policies = append(append(a.Policies[:0:0], l.Authorization.Policies...), a.Policies...)
			}
			l.Authorization = &a
		}
	}
	c.Listeners = ls
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

// KubernetesEndpoints is Options.Endpoints for Kubernetes discovery: a
// service FQDN name.ns.svc.cluster.local becomes a kubernetes: endpoint
// source; other hosts (ServiceEntries, external names) are left to the
// ServiceEntry and DNS.
func KubernetesEndpoints(fqdn string, port int) *upstream.ClusterConfig {
	name, rest, ok := strings.Cut(fqdn, ".")
	if !ok {
		return nil
	}
	ns, rest, ok := strings.Cut(rest, ".")
	if !ok || !strings.HasPrefix(rest, "svc.") || name == "" || ns == "" {
		return nil
	}
	return &upstream.ClusterConfig{Kubernetes: &upstream.KubernetesConfig{Namespace: ns, Service: name, Port: port}}
}

// Scoped reports whether the workload has a Sidecar resource naming its
// egress hosts (Kubernetes discovery then watches only the Services used).
func Scoped(c *config.Config) bool {
	if c.IstioConfig == "" {
		return false
	}
	o, err := OptionsFrom(c)
	if err != nil {
		return false
	}
	rs, _ := LoadDir(c.IstioConfig)
	t := &translator{o: o.withDefaults()}
	var sc []*Resource
	for _, r := range rs {
		if r.Kind == KindSidecar {
			if r.Namespace == "" {
				r.Namespace = t.o.Namespace
			}
			sc = append(sc, r)
		}
	}
	t.sidecar(sc)
	return t.egress != nil
}
