package istio

import (
	"fmt"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/sidecarkit/sidecarkit/proxy/authz"
	"github.com/sidecarkit/sidecarkit/proxy/config"
	"github.com/sidecarkit/sidecarkit/proxy/fault"
	"github.com/sidecarkit/sidecarkit/proxy/jwtauth"
	"github.com/sidecarkit/sidecarkit/proxy/mtls"
	"github.com/sidecarkit/sidecarkit/proxy/upstream"
)

// Options describe the workload the proxy serves: what Istio learns from the
// pod (its namespace and labels) and its mounted certificates.
type Options struct {
	Namespace     string            // the workload's namespace (default "default")
	Labels        map[string]string // the workload's pod labels (selectors, sourceLabels)
	RootNamespace string            // Istio's root namespace for mesh-wide policies (default "istio-system")
	Domain        string            // cluster domain (default "cluster.local")
	// Certs are the workload's certificate, key and CA (Istio's
	// cert-chain.pem, key.pem, root-cert.pem), used for PeerAuthentication
	// (inbound mTLS) and DestinationRule tls mode ISTIO_MUTUAL.
	Certs mtls.Files
	// Endpoints, when set, is asked for the endpoints of a host no
	// ServiceEntry declares, before DNS (Kubernetes discovery). It returns
	// a cluster with only the endpoint source set, or nil.
	Endpoints func(fqdn string, port int) *upstream.ClusterConfig
}

func (o Options) withDefaults() Options {
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.RootNamespace == "" {
		o.RootNamespace = "istio-system"
	}
	if o.Domain == "" {
		o.Domain = "cluster.local"
	}
	return o
}

// Result is the proxy configuration the Istio resources translate into.
type Result struct {
	Routes   []config.Route
	Clusters []upstream.ClusterConfig
	SNI      []config.SNIRoute // outbound TLS routes (VirtualService tls)
	// Inbound listener policies (nil: no resource asks for one).
	MTLS          *mtls.ServerConfig
	JWT           *jwtauth.Config
	Authorization *authz.Config
	// Passthrough is the Sidecar's outboundTrafficPolicy (nil: not set;
	// false: REGISTRY_ONLY).
	Passthrough *bool
}

// Translate turns resources (already decoded) into the proxy's routes,
// clusters and listener policies for the workload o describes. Every field
// the proxy does not implement is a problem naming the resource and field
// path; resources with problems are left out of the result.
func Translate(rs []*Resource, o Options) (*Result, Problems) {
	o = o.withDefaults()
	t := &translator{o: o, res: &Result{}, clusters: map[string]*upstream.ClusterConfig{}}
	for _, r := range rs {
		if r.Namespace == "" {
			r.Namespace = o.Namespace
		}
		t.ps = append(t.ps, checkSupported(r)...)
	}
	by := map[string][]*Resource{}
	for _, r := range rs {
		by[r.Kind] = append(by[r.Kind], r)
	}
	t.ses = by[KindServiceEntry]
	t.drs = by[KindDestinationRule]
	t.sidecar(by[KindSidecar])
	t.virtualServices(by[KindVirtualService])
	t.serviceEntryRoutes()
	t.peerAuthentication(by[KindPeerAuthentication])
	t.authorization(by[KindAuthorizationPolicy])
	t.requestAuthentication(by[KindRequestAuthentication])
	names := make([]string, 0, len(t.clusters))
	for n := range t.clusters {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t.res.Clusters = append(t.res.Clusters, *t.clusters[n])
	}
	return t.res, t.ps.sorted()
}

type translator struct {
	o        Options
	res      *Result
	ps       Problems
	ses, drs []*Resource
	clusters map[string]*upstream.ClusterConfig
	routed   map[string]bool // FQDNs a VirtualService routes
	egress   []egressHost    // the Sidecar's egress hosts (nil: everything)
}

func (t *translator) bad(r *Resource, path, format string, args ...any) {
	t.ps = append(t.ps, Problem{File: r.File, Line: r.lineOf(path), Resource: r.ID(), Path: path, Msg: fmt.Sprintf(format, args...)})
}

// fqdn qualifies a short host name with ns and the cluster domain, as Istio
// does for VirtualService and DestinationRule hosts.
func (t *translator) fqdn(host, ns string) string {
	host = strings.ToLower(host)
	if strings.HasPrefix(host, "*") || net.ParseIP(host) != nil {
		return host
	}
	if !strings.Contains(host, ".") {
		return host + "." + ns + ".svc." + t.o.Domain
	}
	return host
}

// hostNames are the Host header values the app may use for fqdn: the full
// name, and for a Kubernetes service name.ns.svc, name.ns and (in the
// workload's own namespace) name.
func (t *translator) hostNames(fqdn string) []string {
	suffix := ".svc." + t.o.Domain
	if !strings.HasSuffix(fqdn, suffix) {
		return []string{fqdn}
	}
	base := strings.TrimSuffix(fqdn, "."+t.o.Domain) // name.ns.svc
	name, ns, _ := strings.Cut(strings.TrimSuffix(base, ".svc"), ".")
	out := []string{fqdn, base, name + "." + ns}
	if ns == t.o.Namespace {
		out = append(out, name)
	}
	return out
}

// nsOf is the namespace a Kubernetes service FQDN lives in ("" if not one).
func (t *translator) nsOf(fqdn string) string {
	suffix := ".svc." + t.o.Domain
	if !strings.HasSuffix(fqdn, suffix) {
		return ""
	}
	parts := strings.Split(strings.TrimSuffix(fqdn, suffix), ".")
	if len(parts) != 2 {
		return ""
	}
	return parts[1]
}

func hostMatches(pattern, host string) bool {
	if pattern == "*" {
		return true
	}
	if strings.HasPrefix(pattern, "*.") {
		return strings.HasSuffix(host, pattern[1:])
	}
	return pattern == host
}

// exported reports whether a resource in ns with exportTo is visible to
// the workload's namespace.
func (t *translator) exported(ns string, exportTo []string) bool {
	if len(exportTo) == 0 {
		return true
	}
	for _, e := range exportTo {
		if e == "*" || e == t.o.Namespace || (e == "." && ns == t.o.Namespace) {
			return true
		}
	}
	return false
}

func selects(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// ---- Sidecar ----

type egressHost struct{ ns, host string }

func (t *translator) sidecar(rs []*Resource) {
	// Istio: a Sidecar with a matching workloadSelector in the workload's
	// namespace, else the one without selector there, else the root
	// namespace's one without selector.
	var pick *Resource
	rank := 0
	for _, r := range rs {
		sc := r.Spec.(*networking.Sidecar)
		sel := sc.GetWorkloadSelector().GetLabels()
		switch {
		case r.Namespace == t.o.Namespace && len(sel) > 0 && selects(sel, t.o.Labels) && rank < 3:
			pick, rank = r, 3
		case r.Namespace == t.o.Namespace && len(sel) == 0 && rank < 2:
			pick, rank = r, 2
		case r.Namespace == t.o.RootNamespace && len(sel) == 0 && rank < 1:
			pick, rank = r, 1
		}
	}
	if pick == nil {
		return
	}
	sc := pick.Spec.(*networking.Sidecar)
	t.egress = []egressHost{}
	for i, e := range sc.GetEgress() {
		for j, h := range e.GetHosts() {
			ns, host, ok := strings.Cut(h, "/")
			if !ok || ns == "" || host == "" {
				t.bad(pick, fmt.Sprintf("spec.egress[%d].hosts[%d]", i, j), "%q: want namespace/dnsName (\"./*\", \"istio-system/*\", \"*/foo.example.com\")", h)
				continue
			}
			if ns == "." {
				ns = pick.Namespace
			}
			t.egress = append(t.egress, egressHost{ns: ns, host: strings.ToLower(host)})
		}
	}
	if len(sc.GetEgress()) == 0 {
		t.egress = nil // Istio: no egress listener means everything is visible
	}
	switch m := sc.GetOutboundTrafficPolicy().GetMode(); {
	case sc.GetOutboundTrafficPolicy() == nil:
	case m == networking.OutboundTrafficPolicy_REGISTRY_ONLY:
		f := false
		t.res.Passthrough = &f
	case m == networking.OutboundTrafficPolicy_ALLOW_ANY:
		tr := true
		t.res.Passthrough = &tr
	}
}

// visible reports whether the Sidecar's egress hosts let the workload see
// host (an FQDN) from a resource or service in namespace ns.
func (t *translator) visible(ns, host string) bool {
	if t.egress == nil {
		return true
	}
	if svcNS := t.nsOf(host); svcNS != "" {
		ns = svcNS
	}
	for _, e := range t.egress {
		if e.ns == "~" {
			continue
		}
		if e.ns != "*" && e.ns != ns {
			continue
		}
		if e.host == "*" || hostMatches(e.host, host) || (strings.HasPrefix(host, "*.") && e.host == host) {
			return true
		}
		// "ns/name" short for a service in that namespace
		if !strings.Contains(e.host, ".") && e.host+"."+e.ns+".svc."+t.o.Domain == host {
			return true
		}
	}
	return false
}

// ---- clusters ----

func clusterName(fqdn string, port int) string {
	return "outbound|" + strconv.Itoa(port) + "||" + fqdn
}

// serviceEntryFor returns the ServiceEntry naming fqdn, if any.
func (t *translator) serviceEntryFor(fqdn string) (*Resource, *networking.ServiceEntry) {
	for _, r := range t.ses {
		se := r.Spec.(*networking.ServiceEntry)
		if !t.exported(r.Namespace, se.GetExportTo()) {
			continue
		}
		for _, h := range se.GetHosts() {
			if strings.EqualFold(h, fqdn) {
				return r, se
			}
		}
	}
	return nil, nil
}

// defaultPort is the port of fqdn when a destination names none: the
// ServiceEntry's only port, else 80.
func (t *translator) defaultPort(fqdn string) int {
	if _, se := t.serviceEntryFor(fqdn); se != nil && len(se.GetPorts()) == 1 {
		return int(se.GetPorts()[0].GetNumber())
	}
	return 80
}

// cluster returns (creating) the cluster for fqdn:port with its endpoints
// and the DestinationRule's policy. from names the resource asking, for
// problems.
func (t *translator) cluster(fqdn string, port int) string {
	name := clusterName(fqdn, port)
	if _, ok := t.clusters[name]; ok {
		return name
	}
	cc := t.endpoints(fqdn, port)
	cc.Name = name
	t.destinationRule(cc, fqdn, port)
	t.clusters[name] = cc
	return name
}

func (t *translator) endpoints(fqdn string, port int) *upstream.ClusterConfig {
	r, se := t.serviceEntryFor(fqdn)
	if se == nil && t.o.Endpoints != nil {
		if cc := t.o.Endpoints(fqdn, port); cc != nil {
			return cc
		}
	}
	if se == nil {
		return &upstream.ClusterConfig{DNS: &upstream.DNSConfig{Name: fqdn, Port: port}}
	}
	var sp *networking.ServicePort
	for _, p := range se.GetPorts() {
		if int(p.GetNumber()) == port {
			sp = p
		}
	}
	target := port
	if sp != nil && sp.GetTargetPort() != 0 {
		target = int(sp.GetTargetPort())
	}
	switch se.GetResolution() {
	case networking.ServiceEntry_STATIC:
		cc := &upstream.ClusterConfig{}
		for i, e := range se.GetEndpoints() {
			p := target
			if sp != nil {
				if ep, ok := e.GetPorts()[sp.GetName()]; ok {
					p = int(ep)
				}
			}
			if net.ParseIP(e.GetAddress()) == nil {
				t.bad(r, fmt.Sprintf("spec.endpoints[%d].address", i), "%q: resolution STATIC needs an IP address (unix sockets are not supported)", e.GetAddress())
				continue
			}
			cc.Endpoints = append(cc.Endpoints, upstream.EndpointConfig{
				Address: net.JoinHostPort(e.GetAddress(), strconv.Itoa(p)),
				Weight:  int(e.GetWeight()),
				Labels:  e.GetLabels(),
			})
		}
		if len(cc.Endpoints) == 0 {
			t.bad(r, "spec.endpoints", "resolution STATIC needs at least one endpoint")
			cc.Endpoints = []upstream.EndpointConfig{{Address: "127.0.0.1:1"}} // keeps the cluster valid; never reached
		}
		return cc
	case networking.ServiceEntry_DNS, networking.ServiceEntry_DNS_ROUND_ROBIN:
		eps := se.GetEndpoints()
		switch len(eps) {
		case 0:
			return &upstream.ClusterConfig{DNS: &upstream.DNSConfig{Name: fqdn, Port: target}}
		case 1:
			p := target
			if sp != nil {
				if ep, ok := eps[0].GetPorts()[sp.GetName()]; ok {
					p = int(ep)
				}
			}
			return &upstream.ClusterConfig{DNS: &upstream.DNSConfig{Name: eps[0].GetAddress(), Port: p, Labels: eps[0].GetLabels()}}
		default:
			t.bad(r, "spec.endpoints", "resolution DNS with more than one endpoint is not supported (one DNS name per cluster)")
		}
	default:
		t.bad(r, "spec.resolution", "%s: no cluster for %s (the proxy needs STATIC or DNS to know the endpoints)", se.GetResolution(), fqdn)
	}
	return &upstream.ClusterConfig{DNS: &upstream.DNSConfig{Name: fqdn, Port: target}}
}

// destinationRule finds the DestinationRule for fqdn (exact host before
// wildcard, the workload's namespace before the host's, then the root
// namespace) and applies its policy for port to cc.
func (t *translator) destinationRule(cc *upstream.ClusterConfig, fqdn string, port int) {
	var pick *Resource
	best := -1
	for _, r := range t.drs {
		dr := r.Spec.(*networking.DestinationRule)
		if !t.exported(r.Namespace, dr.GetExportTo()) {
			continue
		}
		h := t.fqdn(dr.GetHost(), r.Namespace)
		if !hostMatches(h, fqdn) {
			continue
		}
		score := 0
		if h == fqdn {
			score += 4
		}
		switch r.Namespace {
		case t.o.Namespace:
			score += 2
		case t.nsOf(fqdn):
			score++
		}
		if score > best {
			pick, best = r, score
		}
	}
	if pick == nil {
		return
	}
	dr := pick.Spec.(*networking.DestinationRule)
	tp := dr.GetTrafficPolicy()
	t.trafficPolicy(pick, "spec.trafficPolicy", cc, tp.GetLoadBalancer(), tp.GetConnectionPool(), tp.GetOutlierDetection(), tp.GetTls())
	for i, pl := range tp.GetPortLevelSettings() {
		if int(pl.GetPort().GetNumber()) != port {
			continue
		}
		t.trafficPolicy(pick, fmt.Sprintf("spec.trafficPolicy.portLevelSettings[%d]", i), cc, pl.GetLoadBalancer(), pl.GetConnectionPool(), pl.GetOutlierDetection(), pl.GetTls())
	}
	for _, s := range dr.GetSubsets() {
		cc.Subsets = append(cc.Subsets, upstream.SubsetConfig{Name: s.GetName(), Labels: s.GetLabels()})
	}
}

func dur(d *durationpb.Duration) time.Duration {
	if d == nil {
		return 0
	}
	return d.AsDuration()
}

func (t *translator) trafficPolicy(r *Resource, at string, cc *upstream.ClusterConfig, lb *networking.LoadBalancerSettings,
	cp *networking.ConnectionPoolSettings, od *networking.OutlierDetection, tls *networking.ClientTLSSettings) {
	if lb != nil {
		switch lb.GetSimple() {
		case networking.LoadBalancerSettings_UNSPECIFIED:
		case networking.LoadBalancerSettings_ROUND_ROBIN:
			cc.LBPolicy = upstream.RoundRobin
		case networking.LoadBalancerSettings_LEAST_REQUEST, networking.LoadBalancerSettings_LEAST_CONN:
			cc.LBPolicy = upstream.LeastRequest
		case networking.LoadBalancerSettings_RANDOM:
			cc.LBPolicy = upstream.Random
		default:
			t.bad(r, at+".loadBalancer.simple", "%s is not supported (ROUND_ROBIN, LEAST_REQUEST, RANDOM are)", lb.GetSimple())
		}
	}
	if tcp := cp.GetTcp(); tcp != nil {
		if tcp.GetMaxConnections() > 0 {
			cc.CircuitBreakers.MaxConnections = int(tcp.GetMaxConnections())
		}
		if d := dur(tcp.GetConnectTimeout()); d > 0 {
			cc.ConnectTimeout = d
		}
	}
	if h := cp.GetHttp(); h != nil {
		if h.GetHttp1MaxPendingRequests() > 0 {
			cc.CircuitBreakers.MaxPendingRequests = int(h.GetHttp1MaxPendingRequests())
		}
		if h.GetHttp2MaxRequests() > 0 {
			cc.CircuitBreakers.MaxRequests = int(h.GetHttp2MaxRequests())
		}
		if h.GetMaxRetries() > 0 {
			cc.CircuitBreakers.MaxRetries = int(h.GetMaxRetries())
		}
		if d := dur(h.GetIdleTimeout()); d > 0 {
			cc.IdleTimeout = d
		}
		switch h.GetH2UpgradePolicy() {
		case networking.ConnectionPoolSettings_HTTPSettings_UPGRADE:
			cc.Protocol = upstream.HTTP2
		case networking.ConnectionPoolSettings_HTTPSettings_DO_NOT_UPGRADE:
			cc.Protocol = upstream.HTTP1
		}
	}
	if od != nil {
		o := &upstream.OutlierConfig{}
		if cc.OutlierDetection != nil {
			*o = *cc.OutlierDetection
		}
		if od.GetConsecutiveErrors() > 0 { // deprecated: counted gateway errors
			o.ConsecutiveGatewayErrors = int(od.GetConsecutiveErrors())
		}
		if v := od.GetConsecutiveGatewayErrors(); v != nil {
			o.ConsecutiveGatewayErrors = int(v.GetValue())
		}
		if v := od.GetConsecutive_5XxErrors(); v != nil {
			o.Consecutive5xx = int(v.GetValue())
			if v.GetValue() == 0 { // Istio: 0 turns 5xx ejection off
				o.Consecutive5xx = math.MaxInt32
			}
		}
		if d := dur(od.GetInterval()); d > 0 {
			o.Interval = d
		}
		if d := dur(od.GetBaseEjectionTime()); d > 0 {
			o.BaseEjectionTime = d
		}
		if od.GetMaxEjectionPercent() > 0 {
			o.MaxEjectionPercent = int(od.GetMaxEjectionPercent())
		}
		cc.OutlierDetection = o
	}
	if tls != nil {
		switch tls.GetMode() {
		case networking.ClientTLSSettings_DISABLE:
			cc.TLS = nil
		case networking.ClientTLSSettings_ISTIO_MUTUAL:
			if t.o.Certs.CertFile == "" {
				t.bad(r, at+".tls.mode", "ISTIO_MUTUAL needs the workload's certificates (--istio-certs)")
				return
			}
			cc.TLS = &mtls.ClientConfig{Files: t.o.Certs, ServerName: tls.GetSni(), MatchSANs: tls.GetSubjectAltNames()}
		case networking.ClientTLSSettings_MUTUAL:
			cc.TLS = &mtls.ClientConfig{Files: mtls.Files{CertFile: tls.GetClientCertificate(), KeyFile: tls.GetPrivateKey(), CAFile: tls.GetCaCertificates()},
				ServerName: tls.GetSni(), MatchSANs: tls.GetSubjectAltNames()}
		default:
			t.bad(r, at+".tls.mode", "%s is not supported (DISABLE, MUTUAL, ISTIO_MUTUAL are)", tls.GetMode())
		}
	}
}

// ---- VirtualService ----

func (t *translator) virtualServices(rs []*Resource) {
	t.routed = map[string]bool{}
	type vsHosts struct {
		r     *Resource
		vs    *networking.VirtualService
		hosts []string // FQDNs
		rank  int      // 0 exact, 1 wildcard, 2 "*"
	}
	var vss []vsHosts
	for _, r := range rs {
		vs := r.Spec.(*networking.VirtualService)
		if !t.exported(r.Namespace, vs.GetExportTo()) {
			continue
		}
		if gw := vs.GetGateways(); len(gw) > 0 && !contains(gw, "mesh") {
			continue // applies to gateways only
		}
		v := vsHosts{r: r, vs: vs}
		for _, h := range vs.GetHosts() {
			f := t.fqdn(h, r.Namespace)
			if !t.visible(r.Namespace, f) {
				continue
			}
			v.hosts = append(v.hosts, f)
			switch {
			case f == "*" && v.rank < 2:
				v.rank = 2
			case strings.HasPrefix(f, "*") && v.rank < 1:
				v.rank = 1
			}
		}
		if len(vs.GetHosts()) == 0 {
			t.bad(r, "spec.hosts", "at least one host is required")
			continue
		}
		if len(v.hosts) == 0 {
			continue // outside the Sidecar's egress scope
		}
		vss = append(vss, v)
	}
	// Istio picks the most specific host: exact names before wildcards.
	sort.SliceStable(vss, func(i, j int) bool { return vss[i].rank < vss[j].rank })
	for _, v := range vss {
		var match []string
		for _, h := range v.hosts {
			if h == "*" {
				match = nil
				break
			}
			match = append(match, t.hostNames(h)...)
			t.routed[h] = true
		}
		for i, hr := range v.vs.GetHttp() {
			t.httpRoute(v.r, i, hr, match)
		}
		for i, tr := range v.vs.GetTls() {
			t.tlsRoute(v.r, i, tr)
		}
		if len(v.vs.GetTcp()) > 0 {
			t.bad(v.r, "spec.tcp", "tcp routes are not supported (the proxy routes raw TCP by original destination or a listener's cluster)")
		}
	}
}

func (t *translator) httpRoute(r *Resource, i int, hr *networking.HTTPRoute, hosts []string) {
	at := fmt.Sprintf("spec.http[%d]", i)
	base := config.Route{Match: config.Match{Hosts: hosts}}
	// destinations
	dests := hr.GetRoute()
	if len(dests) == 0 {
		t.bad(r, at+".route", "a route needs at least one destination (redirect, directResponse and delegate are not supported)")
		return
	}
	var fqdn string
	var port int
	total := 0
	for j, d := range dests {
		h := t.fqdn(d.GetDestination().GetHost(), r.Namespace)
		p := int(d.GetDestination().GetPort().GetNumber())
		if p == 0 {
			p = t.defaultPort(h)
		}
		if j == 0 {
			fqdn, port = h, p
		} else if h != fqdn || p != port {
			t.bad(r, fmt.Sprintf("%s.route[%d].destination", at, j), "weights across different hosts or ports are not supported (split by subset of one host)")
			return
		}
		total += int(d.GetWeight())
	}
	if d := dests[0].GetDestination(); d.GetHost() == "" {
		t.bad(r, at+".route[0].destination.host", "required")
		return
	}
	if strings.Contains(fqdn, "*") {
		t.bad(r, at+".route[0].destination.host", "%q: a destination must be one host", fqdn)
		return
	}
	if !t.visible(r.Namespace, fqdn) {
		t.bad(r, at+".route[0].destination.host", "%q is outside the Sidecar's egress hosts", fqdn)
		return
	}
	if _, se := t.serviceEntryFor(fqdn); se == nil || se.GetResolution() != networking.ServiceEntry_NONE {
		base.Cluster = t.cluster(fqdn, port)
	}
	if len(dests) == 1 {
		base.Policy.Subset = dests[0].GetDestination().GetSubset()
	} else {
		if total == 0 {
			t.bad(r, at+".route", "weights must add up to more than 0")
			return
		}
		for j, d := range dests {
			if d.GetDestination().GetSubset() == "" {
				t.bad(r, fmt.Sprintf("%s.route[%d].destination.subset", at, j), "a weighted split needs a subset on every destination")
				return
			}
			base.Policy.WeightedSubsets = append(base.Policy.WeightedSubsets, upstream.WeightedSubset{Subset: d.GetDestination().GetSubset(), Weight: int(d.GetWeight())})
		}
	}
	if base.Cluster != "" {
		cc := t.clusters[base.Cluster]
		for _, s := range append([]string{base.Policy.Subset}, subsetsOf(base.Policy.WeightedSubsets)...) {
			if s == "" {
				continue
			}
			found := false
			for _, cs := range cc.Subsets {
				found = found || cs.Name == s
			}
			if !found {
				t.bad(r, at+".route", "subset %q of %s: no DestinationRule defines it", s, fqdn)
				return
			}
		}
	}
	// headers: set = remove + add
	var hops []*networking.Headers
	if h := hr.GetHeaders(); h != nil {
		hops = append(hops, h)
	}
	for j, d := range dests {
		if d.GetHeaders() != nil {
			if len(dests) > 1 {
				t.bad(r, fmt.Sprintf("%s.route[%d].headers", at, j), "per-destination headers in a weighted split are not supported (put them on the http route)")
				return
			}
			hops = append(hops, d.GetHeaders())
		}
	}
	for _, h := range hops {
		rq, rs := h.GetRequest(), h.GetResponse()
		addOps(&base.RequestHeadersAdd, &base.RequestHeadersRemove, rq)
		addOps(&base.ResponseHeadersAdd, &base.ResponseHeadersRemove, rs)
	}
	// timeout and retries
	base.Policy.Timeout = dur(hr.GetTimeout())
	if rt := hr.GetRetries(); rt != nil {
		rp := &upstream.RetryPolicy{Attempts: int(rt.GetAttempts()), PerTryTimeout: dur(rt.GetPerTryTimeout()), RetryNonIdempotent: true}
		on := rt.GetRetryOn()
		if on == "" && rp.Attempts > 0 {
			d := upstream.DefaultRetry()
			rp.RetryOn, rp.RetriableStatusCodes = d.RetryOn, d.RetriableStatusCodes
		}
		for _, one := range strings.Split(on, ",") {
			one = strings.TrimSpace(one)
			switch {
			case one == "":
			case one == "retriable-4xx":
				rp.RetriableStatusCodes = append(rp.RetriableStatusCodes, 409)
				rp.RetryOn = appendOnce(rp.RetryOn, "retriable-status-codes")
			case one == "unavailable" || one == "cancelled" || one == "deadline-exceeded" || one == "resource-exhausted" || one == "internal":
				// gRPC status retries: the proxy does not read grpc-status; keep the
				// HTTP-level ones and say so
				t.bad(r, at+".retries.retryOn", "%q (a gRPC status) is not supported", one)
			default:
				if n, err := strconv.Atoi(one); err == nil {
					rp.RetriableStatusCodes = append(rp.RetriableStatusCodes, n)
					rp.RetryOn = appendOnce(rp.RetryOn, "retriable-status-codes")
				} else {
					rp.RetryOn = appendOnce(rp.RetryOn, one)
				}
			}
		}
		base.Policy.Retries = rp
	}
	// fault
	if f := hr.GetFault(); f != nil {
		fc := &fault.Config{}
		if d := f.GetDelay(); d != nil {
			pct := 100.0
			if d.GetPercentage() != nil {
				pct = d.GetPercentage().GetValue()
			} else if d.GetPercent() != 0 {
				pct = float64(d.GetPercent())
			}
			fc.Delay = &fault.Delay{Fixed: dur(d.GetFixedDelay()), Percent: pct}
			if d.GetExponentialDelay() != nil {
				t.bad(r, at+".fault.delay.exponentialDelay", "not supported by the proxy")
			}
		}
		if a := f.GetAbort(); a != nil {
			pct := 100.0
			if a.GetPercentage() != nil {
				pct = a.GetPercentage().GetValue()
			}
			if a.GetHttpStatus() == 0 {
				t.bad(r, at+".fault.abort", "only httpStatus aborts are supported")
			}
			fc.Abort = &fault.Abort{HTTPStatus: int(a.GetHttpStatus()), Percent: pct}
		}
		base.Fault = fc
	}
	name := hr.GetName()
	if name == "" {
		name = strconv.Itoa(i)
	}
	prefix := r.Namespace + "/" + r.Name + "/" + name
	matches := hr.GetMatch()
	if len(matches) == 0 {
		base.Name = prefix
		t.res.Routes = append(t.res.Routes, base)
		return
	}
	for j, m := range matches {
		mat := fmt.Sprintf("%s.match[%d]", at, j)
		rt := base
		rt.Match.Headers = nil
		if !t.sourceMatches(m) {
			continue // the match can never apply to this workload
		}
		if g := m.GetGateways(); len(g) > 0 && !contains(g, "mesh") {
			continue
		}
		if u := m.GetUri(); u != nil {
			switch {
			case u.GetExact() != "":
				rt.Match.Path.Exact = u.GetExact()
			case u.GetPrefix() != "":
				rt.Match.Path.Prefix = u.GetPrefix()
			default:
				t.bad(r, mat+".uri", "only exact and prefix are supported")
				continue
			}
		}
		keys := make([]string, 0, len(m.GetHeaders()))
		for k := range m.GetHeaders() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			sm := m.GetHeaders()[k]
			hm := config.HeaderMatch{Name: k, Exact: sm.GetExact(), Prefix: sm.GetPrefix()}
			if sm.GetExact() == "" && sm.GetPrefix() == "" {
				yes := true
				hm.Present = &yes
			}
			rt.Match.Headers = append(rt.Match.Headers, hm)
		}
		keys = keys[:0]
		for k := range m.GetWithoutHeaders() {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			no := false
			rt.Match.Headers = append(rt.Match.Headers, config.HeaderMatch{Name: k, Present: &no})
		}
		rt.Match.Port = int(m.GetPort())
		rt.Name = prefix
		if m.GetName() != "" {
			rt.Name += "/" + m.GetName()
		} else if len(matches) > 1 {
			rt.Name += "/" + strconv.Itoa(j)
		}
		t.res.Routes = append(t.res.Routes, rt)
	}
}

func subsetsOf(ws []upstream.WeightedSubset) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.Subset)
	}
	return out
}

func appendOnce(ss []string, s string) []string {
	if contains(ss, s) {
		return ss
	}
	return append(ss, s)
}

func addOps(add *[]config.Header, remove *[]string, op *networking.Headers_HeaderOperations) {
	if op == nil {
		return
	}
	for _, k := range sortedKeys(op.GetSet()) {
		*remove = append(*remove, k)
		*add = append(*add, config.Header{Name: k, Value: op.GetSet()[k]})
	}
	for _, k := range sortedKeys(op.GetAdd()) {
		*add = append(*add, config.Header{Name: k, Value: op.GetAdd()[k]})
	}
	*remove = append(*remove, op.GetRemove()...)
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// sourceMatches evaluates a match's sourceLabels and sourceNamespace against
// the workload: they are facts about this proxy, known at load time.
func (t *translator) sourceMatches(m *networking.HTTPMatchRequest) bool {
	if sl := m.GetSourceLabels(); len(sl) > 0 && !selects(sl, t.o.Labels) {
		return false
	}
	if ns := m.GetSourceNamespace(); ns != "" && ns != t.o.Namespace {
		return false
	}
	return true
}

func (t *translator) tlsRoute(r *Resource, i int, tr *networking.TLSRoute) {
	at := fmt.Sprintf("spec.tls[%d]", i)
	if len(tr.GetRoute()) != 1 {
		t.bad(r, at+".route", "exactly one destination is supported for tls routes")
		return
	}
	d := tr.GetRoute()[0].GetDestination()
	fqdn := t.fqdn(d.GetHost(), r.Namespace)
	port := int(d.GetPort().GetNumber())
	if port == 0 {
		port = t.defaultPort(fqdn)
	}
	cl := t.cluster(fqdn, port)
	for _, m := range tr.GetMatch() {
		if len(m.GetSniHosts()) == 0 {
			t.bad(r, at+".match", "sniHosts is required")
			continue
		}
		t.res.SNI = append(t.res.SNI, config.SNIRoute{Names: m.GetSniHosts(), Cluster: cl})
	}
}

// serviceEntryRoutes routes hosts a ServiceEntry declares and no
// VirtualService routes, and hosts only a DestinationRule names that a
// ServiceEntry defines, so the DestinationRule's policy applies to them.
func (t *translator) serviceEntryRoutes() {
	for _, r := range t.ses {
		se := r.Spec.(*networking.ServiceEntry)
		if !t.exported(r.Namespace, se.GetExportTo()) || se.GetResolution() == networking.ServiceEntry_NONE {
			continue
		}
		if len(se.GetWorkloadSelector().GetLabels()) > 0 {
			continue // reported as unsupported
		}
		for _, h := range se.GetHosts() {
			f := strings.ToLower(h)
			if t.routed[f] || strings.Contains(f, "*") || !t.visible(r.Namespace, f) {
				continue
			}
			ports := se.GetPorts()
			for _, p := range ports {
				rt := config.Route{Name: r.Namespace + "/" + r.Name + "/" + f + ":" + strconv.Itoa(int(p.GetNumber())),
					Match: config.Match{Hosts: t.hostNames(f)}, Cluster: t.cluster(f, int(p.GetNumber()))}
				if len(ports) > 1 {
					rt.Match.Port = int(p.GetNumber())
				}
				t.res.Routes = append(t.res.Routes, rt)
			}
		}
	}
}

// ---- security ----

// policyApplies is Istio's selection for workload policies: a policy in the
// root namespace applies mesh-wide, one in the workload's namespace to it,
// both narrowed by a selector.
func (t *translator) policyApplies(r *Resource, sel map[string]string) bool {
	if r.Namespace != t.o.Namespace && r.Namespace != t.o.RootNamespace {
		return false
	}
	return selects(sel, t.o.Labels)
}

func (t *translator) peerAuthentication(rs []*Resource) {
	// Most specific wins: workload selector, then namespace, then mesh.
	var ws, ns, mesh *Resource
	for _, r := range rs {
		pa := r.Spec.(*security.PeerAuthentication)
		sel := pa.GetSelector().GetMatchLabels()
		switch {
		case r.Namespace == t.o.Namespace && len(sel) > 0 && selects(sel, t.o.Labels):
			if ws == nil {
				ws = r
			}
		case r.Namespace == t.o.Namespace && len(sel) == 0:
			if ns == nil {
				ns = r
			}
		case r.Namespace == t.o.RootNamespace && len(sel) == 0:
			if mesh == nil {
				mesh = r
			}
		}
		if len(pa.GetPortLevelMtls()) > 0 && len(sel) == 0 {
			t.bad(r, "spec.portLevelMtls", "Istio applies portLevelMtls only with a workload selector")
		}
	}
	mode := security.PeerAuthentication_MutualTLS_UNSET
	var from *Resource
	for _, r := range []*Resource{ws, ns, mesh} {
		if r == nil {
			continue
		}
		m := r.Spec.(*security.PeerAuthentication).GetMtls().GetMode()
		if m != security.PeerAuthentication_MutualTLS_UNSET {
			mode, from = m, r
			break
		}
	}
	if ws == nil && ns == nil && mesh == nil {
		return
	}
	if from == nil {
		mode = security.PeerAuthentication_MutualTLS_PERMISSIVE // Istio's default
		from = ws
		if from == nil {
			from = ns
		}
		if from == nil {
			from = mesh
		}
	}
	if ws != nil {
		for port, pm := range ws.Spec.(*security.PeerAuthentication).GetPortLevelMtls() {
			if m := pm.GetMode(); m != security.PeerAuthentication_MutualTLS_UNSET && m != mode {
				t.bad(ws, fmt.Sprintf("spec.portLevelMtls[%d]", port), "%s differs from the workload's %s: per-port modes on one inbound listener are not supported", m, mode)
			}
		}
	}
	var m string
	switch mode {
	case security.PeerAuthentication_MutualTLS_STRICT:
		m = mtls.Strict
	case security.PeerAuthentication_MutualTLS_PERMISSIVE:
		m = mtls.Permissive
	case security.PeerAuthentication_MutualTLS_DISABLE:
		t.res.MTLS = &mtls.ServerConfig{Mode: mtls.Disable}
		return
	}
	if t.o.Certs.CertFile == "" {
		if mode == security.PeerAuthentication_MutualTLS_STRICT {
			t.bad(from, "spec.mtls.mode", "STRICT needs the workload's certificates (--istio-certs)")
		}
		return // PERMISSIVE without certificates: plaintext only, as a workload without a sidecar
	}
	t.res.MTLS = &mtls.ServerConfig{Mode: m, Files: t.o.Certs}
}

func (t *translator) authorization(rs []*Resource) {
	var pols []authz.Policy
	any := false
	for _, r := range rs {
		ap := r.Spec.(*security.AuthorizationPolicy)
		if !t.policyApplies(r, ap.GetSelector().GetMatchLabels()) {
			continue
		}
		any = true
		p := authz.Policy{Name: r.Namespace + "/" + r.Name}
		switch ap.GetAction() {
		case security.AuthorizationPolicy_ALLOW:
			p.Action = "ALLOW"
		case security.AuthorizationPolicy_DENY:
			p.Action = "DENY"
		case security.AuthorizationPolicy_AUDIT:
			continue // Istio: marks requests for an audit log; never changes the decision
		case security.AuthorizationPolicy_CUSTOM:
			t.bad(r, "spec.action", "CUSTOM (external authorization) is not supported: the configuration is refused rather than run without the check")
			continue
		default:
			t.bad(r, "spec.action", "%s is not supported", ap.GetAction())
			continue
		}
		for _, rule := range ap.GetRules() {
			var ar authz.Rule
			for _, f := range rule.GetFrom() {
				s := f.GetSource()
				ar.From = append(ar.From, authz.From{Source: authz.Source{
					Principals: s.GetPrincipals(), NotPrincipals: s.GetNotPrincipals(),
					RequestPrincipals: s.GetRequestPrincipals(), NotRequestPrincipals: s.GetNotRequestPrincipals(),
					Namespaces: s.GetNamespaces(), NotNamespaces: s.GetNotNamespaces(),
					IPBlocks: s.GetIpBlocks(), NotIPBlocks: s.GetNotIpBlocks(),
				}})
			}
			for _, to := range rule.GetTo() {
				o := to.GetOperation()
				ar.To = append(ar.To, authz.To{Operation: authz.Operation{
					Hosts: o.GetHosts(), NotHosts: o.GetNotHosts(), Methods: o.GetMethods(), NotMethods: o.GetNotMethods(),
					Paths: o.GetPaths(), NotPaths: o.GetNotPaths(),
				}})
			}
			for _, w := range rule.GetWhen() {
				ar.When = append(ar.When, authz.Condition{Key: w.GetKey(), Values: w.GetValues(), NotValues: w.GetNotValues()})
			}
			p.Rules = append(p.Rules, ar)
		}
		one := authz.Config{Policies: []authz.Policy{p}}
		if err := one.Validate(); err != nil {
			t.bad(r, "spec.rules", "%v", err)
			continue
		}
		pols = append(pols, p)
	}
	if any {
		t.res.Authorization = &authz.Config{Policies: pols}
	}
}

func (t *translator) requestAuthentication(rs []*Resource) {
	var provs []jwtauth.Provider
	for _, r := range rs {
		ra := r.Spec.(*security.RequestAuthentication)
		if !t.policyApplies(r, ra.GetSelector().GetMatchLabels()) {
			continue
		}
		for i, jr := range ra.GetJwtRules() {
			p := jwtauth.Provider{Issuer: jr.GetIssuer(), Audiences: jr.GetAudiences(), JWKSURI: jr.GetJwksUri(),
				FromParams: jr.GetFromParams(), Forward: jr.GetForwardOriginalToken()}
			if jr.GetJwksUri() == "" {
				t.bad(r, fmt.Sprintf("spec.jwtRules[%d].jwksUri", i), "required (inline jwks is not supported)")
				continue
			}
			for _, h := range jr.GetFromHeaders() {
				p.FromHeaders = append(p.FromHeaders, jwtauth.HeaderRef{Name: h.GetName(), Prefix: h.GetPrefix()})
			}
			for _, c := range jr.GetOutputClaimToHeaders() {
				p.ClaimHeaders = append(p.ClaimHeaders, jwtauth.ClaimHeader{Header: c.GetHeader(), Claim: c.GetClaim()})
			}
			provs = append(provs, p)
		}
	}
	if len(provs) > 0 {
		c := &jwtauth.Config{Providers: provs}
		if err := c.Validate(); err != nil {
			t.ps = append(t.ps, Problem{Resource: KindRequestAuthentication, Msg: err.Error()})
			return
		}
		t.res.JWT = c
	}
}
