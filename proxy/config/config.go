// Package config is the proxy's configuration: the one-line flags for the
// simple case, the YAML schema (listeners, routes, clusters) for the rest,
// and Validate, which reports every problem at once naming the key and value.
//
// Flags and the YAML file share keys (see shared/config). The structured
// sections `listeners`, `routes` and `clusters` are YAML-only. When
// `listeners` is empty the proxy derives its listeners from the flags
// (Effective); that is the usual sidecar setup.
package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sidecarkit/sidecarkit/proxy/authz"
	"github.com/sidecarkit/sidecarkit/proxy/fault"
	"github.com/sidecarkit/sidecarkit/proxy/jwtauth"
	"github.com/sidecarkit/sidecarkit/proxy/mtls"
	"github.com/sidecarkit/sidecarkit/proxy/pathnorm"
	"github.com/sidecarkit/sidecarkit/proxy/ratelimit"
	"github.com/sidecarkit/sidecarkit/proxy/tracing"
	"github.com/sidecarkit/sidecarkit/proxy/upstream"
	skconfig "github.com/sidecarkit/sidecarkit/shared/config"
)

// Modes of the proxy.
const (
	ModeExplicit    = "explicit"
	ModeTransparent = "transparent"
)

// Listener directions.
const (
	Inbound  = "inbound"
	Outbound = "outbound"
)

// Listener protocols.
const (
	ProtoAuto = "auto" // sniff: HTTP/1.1, h2c prior knowledge, TLS, else raw TCP
	ProtoHTTP = "http" // HTTP/1.1 or h2c only; anything else is a protocol error
	ProtoTCP  = "tcp"  // raw TCP passthrough, never inspected
)

// Config is the proxy's whole configuration.
type Config struct {
	// Mode: explicit (listen and forward to configured addresses) or
	// transparent (traffic redirected by iptables; route by SO_ORIGINAL_DST).
	Mode           string
	InboundAddr    string // inbound listener address (":15006")
	OutboundAddr   string // outbound listener address ("127.0.0.1:15001")
	App            string // explicit inbound: the app's address, host:port ("" = no inbound listener)
	Upstream       string // explicit outbound one-liner: every request goes to this http://host:port
	SourceAddr     string // source IP for dialing the app inbound (127.0.0.6; "" = kernel's choice)
	SourceAddr6    string // the same for IPv6 (::6)
	PrometheusAddr string // /stats/prometheus listener (":15090"; "" = off)

	AccessLog       bool
	AccessLogSample float64 // fraction of successful requests logged; requests with response flags always are

	DetectTimeout       time.Duration // how long to wait for the client's first bytes before treating it as raw TCP
	HeaderReadTimeout   time.Duration // a client must send a full request head within this
	IdleTimeout         time.Duration // an idle keep-alive connection is closed after this
	ConnectTimeout      time.Duration // passthrough upstream connect timeout
	MaxHeaderBytes      int           // request head larger than this -> 431
	MaxRequestBodyBytes int64         // default body cap (0: none); routes override
	OutboundPassthrough bool          // transparent outbound: unmatched traffic goes to its original destination (else 404 NR)
	Pprof               bool          // serve net/http/pprof under /debug/pprof/ on the admin port
	HTTP1Server         string        // "proxy" (package h1) or "net/http"
	// PathNormalization and PathEscapedSlashes: how request paths are
	// normalised before every decision and forwarded (package pathnorm;
	// Istio's meshConfig.pathNormalization).
	PathNormalization  string
	PathEscapedSlashes string
	// InboundHTTPPorts are app ports declared HTTP on every inbound
	// listener (Istio's port naming / appProtocol): never sniffed.
	InboundHTTPPorts []string

	// Istio resources (package istio): a directory of VirtualService,
	// DestinationRule, ... YAML files translated into routes, clusters and
	// listener policies, and the workload they are read for.
	IstioConfig    string         // --istio-config DIR ("" = none)
	IstioNamespace string         // the workload's namespace (short host names, policy selection)
	IstioLabels    string         // the workload's labels, k=v,k=v (selectors)
	IstioCerts     string         // directory with cert-chain.pem, key.pem, root-cert.pem (PeerAuthentication, ISTIO_MUTUAL)
	Tracing        tracing.Config // spans per request over OTLP (package tracing); off without an endpoint

	Listeners []Listener               `yaml:"listeners"`
	Routes    []Route                  `yaml:"routes"`
	Clusters  []upstream.ClusterConfig `yaml:"clusters"`
}

// Listener is one listening socket.
type Listener struct {
	Name      string `yaml:"name"`
	Address   string `yaml:"address"`
	Direction string `yaml:"direction"` // inbound | outbound
	// Transparent listeners read each connection's original destination
	// (SO_ORIGINAL_DST) and use it as the default target.
	Transparent bool `yaml:"transparent"`
	// Target is where traffic that matches no route goes: host:port of the
	// app (inbound) or an upstream. Empty for transparent listeners (the
	// original destination) or when only routes decide.
	Target string `yaml:"target"`
	// Cluster is the default cluster for traffic that matches no route
	// (instead of Target), including raw TCP.
	Cluster  string `yaml:"cluster"`
	Protocol string `yaml:"protocol"` // auto (default) | http | tcp
	// Ports declare the protocol of destination ports (the original
	// destination's, or the target's): a declared port is never sniffed,
	// like an Istio Service port named http-*/tcp-* or with appProtocol.
	Ports []PortProtocol `yaml:"ports"`
	// SNI routes outbound TLS by server name to a cluster; the TLS bytes pass
	// through untouched.
	SNI []SNIRoute `yaml:"sni"`
	// MTLS terminates mutual TLS on an inbound listener (STRICT or
	// PERMISSIVE); the verified peer goes to the app in X-Forwarded-Client-Cert.
	MTLS *mtls.ServerConfig `yaml:"mtls"`
	// JWT authenticates and Authorization authorizes every HTTP request on
	// the listener before routing (Istio's RequestAuthentication and
	// AuthorizationPolicy for the workload).
	JWT           *jwtauth.Config `yaml:"jwt"`
	Authorization *authz.Config   `yaml:"authorization"`
}

// PortProtocol declares the protocol of one destination port.
type PortProtocol struct {
	Port     int    `yaml:"port"`
	Protocol string `yaml:"protocol"` // http | tcp
}

// DeclaredProtocol returns the protocol l declares for a connection to
// port (the original destination's port; 0 when the connection was not
// redirected, then the target's port counts): "http", "tcp", or "" (sniff).
func (l Listener) DeclaredProtocol(port int) string {
	if port == 0 && l.Target != "" {
		if _, p, err := net.SplitHostPort(l.Target); err == nil {
			port, _ = strconv.Atoi(p)
		}
	}
	for _, pp := range l.Ports {
		if pp.Port == port && port != 0 {
			return pp.Protocol
		}
	}
	switch l.Protocol {
	case ProtoHTTP, ProtoTCP:
		return l.Protocol
	}
	return ""
}

// HasL7Policy reports whether l has authorization or JWT, which apply to
// HTTP requests.
func (l Listener) HasL7Policy() bool { return l.Authorization != nil || l.JWT != nil }

// Warnings returns what is valid but probably not meant: an HTTP policy on
// a listener that sniffs (non-HTTP connections get Istio's TCP semantics
// there, not the HTTP rules).
func Warnings(c *Config) []string {
	var w []string
	for _, l := range c.Effective() {
		if !l.HasL7Policy() || l.Protocol == ProtoHTTP {
			continue
		}
		w = append(w, fmt.Sprintf("listener %s: authorization/jwt on a protocol %q listener: connections not detected as HTTP get TCP semantics (DENY rules with HTTP fields match, ALLOW rules with them do not, required JWT refuses); declare protocol: http or ports", l.Name, orAuto(l.Protocol)))
	}
	return w
}

func orAuto(p string) string {
	if p == "" {
		return ProtoAuto
	}
	return p
}

// SNIRoute sends TLS connections whose ClientHello names one of Names to Cluster.
type SNIRoute struct {
	Names   []string `yaml:"names"` // exact, or "*.example.com"
	Cluster string   `yaml:"cluster"`
}

// Route matches HTTP requests on some listeners and says where they go.
type Route struct {
	Name string `yaml:"name"`
	// Listeners this route applies to (by name); empty means every outbound listener.
	Listeners []string `yaml:"listeners"`
	Match     Match    `yaml:"match"`
	// Cluster receives the matched requests; empty means the listener's
	// default (its Target/Cluster or the original destination).
	Cluster string `yaml:"cluster"`

	RequestHeadersAdd     []Header `yaml:"request_headers_add"`
	RequestHeadersRemove  []string `yaml:"request_headers_remove"`
	ResponseHeadersAdd    []Header `yaml:"response_headers_add"`
	ResponseHeadersRemove []string `yaml:"response_headers_remove"`

	// MaxRequestBodyBytes > 0 caps the request body: 413 before anything is
	// forwarded. A body without Content-Length is buffered up to the cap.
	MaxRequestBodyBytes int64 `yaml:"max_request_body_bytes"`
	// Policy: timeout, retries and subset selection, applied by the cluster
	// (keys timeout, retries, header_subsets, weighted_subsets, subset).
	Policy upstream.RoutePolicy `yaml:",inline"`
	// RateLimit (local token bucket → 429) and Fault (delay/abort) apply to
	// the route's requests, in that order, before they are forwarded.
	RateLimit *ratelimit.Config `yaml:"rate_limit"`
	Fault     *fault.Config     `yaml:"fault"`
}

// Match selects requests. Every set field must match.
type Match struct {
	Hosts   []string      `yaml:"hosts"` // exact (port ignored) or "*.suffix"; empty matches any
	Path    PathMatch     `yaml:"path"`
	Headers []HeaderMatch `yaml:"headers"`
	Port    int           `yaml:"port"` // destination port (original destination or listener port)
}

// PathMatch matches the request path exactly or by prefix.
type PathMatch struct {
	Exact  string `yaml:"exact"`
	Prefix string `yaml:"prefix"`
}

// HeaderMatch matches one request header.
type HeaderMatch struct {
	Name    string `yaml:"name"`
	Exact   string `yaml:"exact"`
	Prefix  string `yaml:"prefix"`
	Present *bool  `yaml:"present"` // true: must be present; false: must be absent
}

// Header is a name and value to add.
type Header struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

// PathOptions are the request path normalisation options.
func (c *Config) PathOptions() pathnorm.Options {
	return pathnorm.Options{Mode: c.PathNormalization, EscapedSlashes: c.PathEscapedSlashes}
}

// Bind registers the proxy's options on l. The flag names are stable
// (initnet runs `proxy --mode transparent`); see README.md.
func Bind(l *skconfig.Loader, c *Config) {
	l.String(&c.Mode, "mode", ModeExplicit, "explicit (listen, forward to --app / --upstream / routes) or transparent (iptables-redirected traffic, routed by original destination)")
	l.String(&c.InboundAddr, "inbound-addr", ":15006", "inbound listener address (traffic to the app)")
	l.String(&c.OutboundAddr, "outbound-addr", "", "outbound listener address (the app's outgoing traffic); default 127.0.0.1:15001, in transparent mode :15001 (IPv4 and IPv6, for ip6tables REDIRECT to ::1)")
	l.String(&c.App, "app", "", "explicit mode: the app's address host:port; enables the inbound listener")
	l.String(&c.Upstream, "upstream", "", "explicit mode one-liner: send every outbound request to this http://host:port")
	l.String(&c.SourceAddr, "source-addr", "127.0.0.6", "source IP when dialing the app inbound (initnet exempts it); empty: kernel's choice")
	l.String(&c.SourceAddr6, "source-addr6", "::6", "IPv6 source when dialing the app at [::1] (initnet exempts it); used only if configured on lo, else the kernel's choice")
	l.String(&c.PrometheusAddr, "prometheus-addr", ":15090", "listener for GET /stats/prometheus (empty: off)")
	l.Bool(&c.AccessLog, "access-log", true, "write a JSON access log line per request to stdout")
	l.Float(&c.AccessLogSample, "access-log-sample", 1, "fraction (0..1) of requests without response flags that are logged")
	l.Duration(&c.DetectTimeout, "detect-timeout", time.Second, "wait this long for a client's first bytes before treating the connection as raw TCP (server-speaks-first protocols)")
	l.Duration(&c.HeaderReadTimeout, "header-read-timeout", 10*time.Second, "a client must send a whole request head within this")
	l.Duration(&c.IdleTimeout, "idle-timeout", 5*time.Minute, "close downstream keep-alive connections idle this long")
	l.Duration(&c.ConnectTimeout, "connect-timeout", 5*time.Second, "upstream connect timeout for passthrough and the app")
	l.Int(&c.MaxHeaderBytes, "max-header-bytes", 64<<10, "request head larger than this answers 431")
	l.Var(int64Value{&c.MaxRequestBodyBytes}, "max-request-body-bytes", "default request body cap in bytes, 413 above it (0: none; routes override)")
	l.Bool(&c.OutboundPassthrough, "outbound-passthrough", true, "transparent mode: outbound traffic no route matches goes to its original destination (false: 404 with flag NR)")
	l.String(&c.HTTP1Server, "http1-server", "proxy", "HTTP/1.x downstream server: proxy (package h1; the net/http fallback was removed, it cannot be made as strict)")
	l.String(&c.PathNormalization, "path-normalization", pathnorm.Base, "request path normalisation before authorization, JWT, routing and rate limits, and forwarded as normalised (Istio's meshConfig.pathNormalization): NONE, BASE (RFC 3986 dot segments, \\ to /, unreserved escapes decoded), MERGE_SLASHES (BASE + // to /) or DECODE_AND_MERGE_SLASHES (%2F and %5C decoded first)")
	l.String(&c.PathEscapedSlashes, "path-escaped-slashes", pathnorm.Keep, "%2F and %5C in a path (BASE, MERGE_SLASHES): keep (forwarded encoded) or reject (400)")
	l.Strings(&c.InboundHTTPPorts, "inbound-http-ports", nil, "app ports declared HTTP on inbound listeners (comma-separated): never sniffed, non-HTTP bytes get 400")
	l.Bool(&c.Pprof, "pprof", false, "serve Go profiles (net/http/pprof) under /debug/pprof/ on the admin port")
	l.String(&c.IstioConfig, "istio-config", "", "directory of Istio resources (VirtualService, DestinationRule, Sidecar, ServiceEntry, PeerAuthentication, AuthorizationPolicy, RequestAuthentication) translated into routes, clusters and listener policies; reloaded on change")
	l.String(&c.IstioNamespace, "istio-namespace", "default", "the workload's namespace for the Istio resources (short host names, policy selection)")
	l.String(&c.IstioLabels, "istio-labels", "", "the workload's pod labels for Istio selectors, key=value,key=value")
	l.String(&c.IstioCerts, "istio-certs", "", "directory with the workload's cert-chain.pem, key.pem and root-cert.pem (Istio's layout) for PeerAuthentication and ISTIO_MUTUAL")
	tracing.Bind(l, &c.Tracing)
	l.Section(&c.Listeners, "listeners", "listeners (name, address, direction, transparent, target, cluster, protocol, sni); default derived from the flags")
	l.Section(&c.Routes, "routes", "HTTP routes (name, listeners, match{hosts,path,headers,port}, cluster, header add/remove, max_request_body_bytes, timeout)")
	l.Section(&c.Clusters, "clusters", "upstream clusters (name, endpoints, protocol)")
}

type int64Value struct{ p *int64 }

func (v int64Value) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return fmt.Errorf("not a whole number")
	}
	*v.p = n
	return nil
}

func (v int64Value) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatInt(*v.p, 10)
}

// Effective returns the listeners the proxy runs: the YAML `listeners` if
// any, else those the flags describe.
func (c *Config) Effective() []Listener {
	ls := c.effective()
	if len(c.InboundHTTPPorts) == 0 {
		return ls
	}
	out := make([]Listener, len(ls))
	for i, l := range ls {
		if l.Direction == Inbound {
			l.Ports = append([]PortProtocol(nil), l.Ports...)
			for _, p := range c.InboundHTTPPorts {
				if n, err := strconv.Atoi(strings.TrimSpace(p)); err == nil && l.DeclaredProtocol(n) == "" {
					l.Ports = append(l.Ports, PortProtocol{Port: n, Protocol: ProtoHTTP})
				}
			}
		}
		out[i] = l
	}
	return out
}

func (c *Config) effective() []Listener {
	if len(c.Listeners) > 0 {
		return c.Listeners
	}
	out := c.OutboundAddress()
	var ls []Listener
	switch c.Mode {
	case ModeTransparent:
		ls = append(ls,
			Listener{Name: Inbound, Address: c.InboundAddr, Direction: Inbound, Transparent: true, Protocol: ProtoAuto},
			Listener{Name: Outbound, Address: out, Direction: Outbound, Transparent: true, Protocol: ProtoAuto})
	default:
		if c.App != "" {
			ls = append(ls, Listener{Name: Inbound, Address: c.InboundAddr, Direction: Inbound, Target: c.App, Protocol: ProtoAuto})
		}
		if c.Upstream != "" || len(c.Routes) > 0 {
			ol := Listener{Name: Outbound, Address: out, Direction: Outbound, Protocol: ProtoAuto}
			if c.Upstream != "" {
				ol.Cluster = UpstreamCluster
			}
			ls = append(ls, ol)
		}
	}
	return ls
}

// OutboundAddress is --outbound-addr, or its mode's default.
func (c *Config) OutboundAddress() string {
	switch {
	case c.OutboundAddr != "":
		return c.OutboundAddr
	case c.Mode == ModeTransparent:
		return ":15001"
	}
	return "127.0.0.1:15001"
}

// UpstreamCluster is the name of the cluster --upstream defines.
const UpstreamCluster = "upstream"

// EffectiveClusters returns the YAML clusters plus the one --upstream
// defines (named "upstream") unless the YAML has a cluster of that name.
func (c *Config) EffectiveClusters() []upstream.ClusterConfig {
	if c.Upstream == "" {
		return c.Clusters
	}
	for _, cl := range c.Clusters {
		if cl.Name == UpstreamCluster {
			return c.Clusters
		}
	}
	u, err := url.Parse(c.Upstream)
	if err != nil {
		return c.Clusters
	}
	return append(append([]upstream.ClusterConfig(nil), c.Clusters...),
		upstream.ClusterConfig{Name: UpstreamCluster, Endpoints: []upstream.EndpointConfig{{Address: u.Host}}})
}

// Validate reports every problem in c, each naming its key and value.
func Validate(c *Config) error {
	var p skconfig.Problems
	switch c.Mode {
	case ModeExplicit, ModeTransparent:
	default:
		p.Add("mode", c.Mode, "want explicit or transparent")
	}
	for _, a := range []struct{ k, v string }{{"inbound-addr", c.InboundAddr}, {"outbound-addr", c.OutboundAddress()}} {
		if err := checkHostPort(a.v, true); err != nil {
			p.Add(a.k, a.v, "%v", err)
		}
	}
	if c.PrometheusAddr != "" {
		if err := checkHostPort(c.PrometheusAddr, true); err != nil {
			p.Add("prometheus-addr", c.PrometheusAddr, "%v", err)
		}
	}
	if c.App != "" {
		if err := checkHostPort(c.App, false); err != nil {
			p.Add("app", c.App, "%v", err)
		}
	}
	if c.Upstream != "" {
		u, err := url.Parse(c.Upstream)
		switch {
		case err != nil:
			p.Add("upstream", c.Upstream, "not a URL: %v", err)
		case u.Scheme != "http" || u.Host == "":
			p.Add("upstream", c.Upstream, "want http://host:port")
		case u.Port() == "":
			p.Add("upstream", c.Upstream, "want an explicit port (http://host:port)")
		case u.Path != "" && u.Path != "/":
			p.Add("upstream", c.Upstream, "a path is not supported; routes rewrite nothing")
		}
	}
	if c.SourceAddr != "" {
		if a, err := netip.ParseAddr(c.SourceAddr); err != nil || !a.Is4() {
			p.Add("source-addr", c.SourceAddr, "not an IPv4 address")
		}
	}
	if c.SourceAddr6 != "" {
		if a, err := netip.ParseAddr(c.SourceAddr6); err != nil || !a.Is6() {
			p.Add("source-addr6", c.SourceAddr6, "not an IPv6 address")
		}
	}
	if c.AccessLogSample < 0 || c.AccessLogSample > 1 {
		p.Add("access-log-sample", c.AccessLogSample, "want a fraction between 0 and 1")
	}
	for _, d := range []struct {
		k string
		v time.Duration
	}{{"detect-timeout", c.DetectTimeout}, {"header-read-timeout", c.HeaderReadTimeout}, {"idle-timeout", c.IdleTimeout}, {"connect-timeout", c.ConnectTimeout}} {
		if d.v <= 0 {
			p.Add(d.k, d.v, "must be positive")
		}
	}
	if c.MaxHeaderBytes < 1024 {
		p.Add("max-header-bytes", c.MaxHeaderBytes, "must be at least 1024")
	}
	switch c.HTTP1Server {
	case "proxy":
	case "net/http":
		p.Add("http1-server", c.HTTP1Server, "the net/http fallback was removed: http.Server cannot refuse every request's Content-Length + Transfer-Encoding, frame chunked bodies strictly or answer 408 (want proxy)")
	default:
		p.Add("http1-server", c.HTTP1Server, "want proxy")
	}
	for _, ps := range c.InboundHTTPPorts {
		if n, err := strconv.Atoi(strings.TrimSpace(ps)); err != nil || n < 1 || n > 65535 {
			p.Add("inbound-http-ports", ps, "want a port number 1-65535")
		}
	}
	if err := (pathnorm.Options{Mode: c.PathNormalization}).Validate(); err != nil {
		p.Add("path-normalization", c.PathNormalization, "want NONE, BASE, MERGE_SLASHES or DECODE_AND_MERGE_SLASHES")
	} else if err := c.PathOptions().Validate(); err != nil {
		p.Add("path-escaped-slashes", c.PathEscapedSlashes, "want keep or reject (reject does not go with DECODE_AND_MERGE_SLASHES, which decodes them)")
	}
	if c.MaxRequestBodyBytes < 0 {
		p.Add("max-request-body-bytes", c.MaxRequestBodyBytes, "must not be negative")
	}

	clusters := map[string]bool{}
	if c.Upstream != "" {
		clusters[UpstreamCluster] = true
	}
	for i, cl := range c.Clusters {
		key := fmt.Sprintf("clusters[%d]", i)
		if cl.Name == "" {
			p.Add(key+".name", cl.Name, "required")
		} else if clusters[cl.Name] && !(cl.Name == UpstreamCluster && c.Upstream != "") {
			p.Add(key+".name", cl.Name, "duplicate cluster name")
		}
		clusters[cl.Name] = true
		if err := cl.Validate(); err != nil {
			p = append(p, fmt.Errorf("%s: %w", key, err))
		}
	}

	if len(c.Listeners) == 0 && c.Mode == ModeExplicit && c.App == "" && c.Upstream == "" && len(c.Routes) == 0 && c.IstioConfig == "" {
		p.Addf("nothing to do: set --app (inbound), --upstream or routes (outbound), --mode transparent, or listeners")
	}
	listeners := map[string]Listener{}
	for i, l := range c.Listeners {
		key := fmt.Sprintf("listeners[%d]", i)
		if l.Name == "" {
			p.Add(key+".name", l.Name, "required")
		} else if _, dup := listeners[l.Name]; dup {
			p.Add(key+".name", l.Name, "duplicate listener name")
		}
		listeners[l.Name] = l
		if err := checkHostPort(l.Address, true); err != nil {
			p.Add(key+".address", l.Address, "%v", err)
		}
		switch l.Direction {
		case Inbound, Outbound:
		default:
			p.Add(key+".direction", l.Direction, "want inbound or outbound")
		}
		switch l.Protocol {
		case "", ProtoAuto, ProtoHTTP, ProtoTCP:
		default:
			p.Add(key+".protocol", l.Protocol, "want auto, http or tcp")
		}
		for j, pp := range l.Ports {
			pk := fmt.Sprintf("%s.ports[%d]", key, j)
			if pp.Port < 1 || pp.Port > 65535 {
				p.Add(pk+".port", pp.Port, "want a port number 1-65535")
			}
			if pp.Protocol != ProtoHTTP && pp.Protocol != ProtoTCP {
				p.Add(pk+".protocol", pp.Protocol, "want http or tcp")
			}
		}
		if l.Target != "" {
			if err := checkHostPort(l.Target, false); err != nil {
				p.Add(key+".target", l.Target, "%v", err)
			}
			if l.Cluster != "" {
				p.Add(key+".target", l.Target, "set target or cluster, not both")
			}
		}
		if l.Cluster != "" && !clusters[l.Cluster] {
			p.Add(key+".cluster", l.Cluster, "no such cluster")
		}
		if l.Protocol == ProtoTCP && !l.Transparent && l.Target == "" && l.Cluster == "" {
			p.Add(key+".protocol", l.Protocol, "a tcp listener needs transparent, target or cluster")
		}
		if l.MTLS != nil {
			if l.Direction != Inbound {
				p.Add(key+".mtls", l.MTLS.Mode, "mTLS termination is for inbound listeners (clusters originate it)")
			}
			if err := l.MTLS.Validate(); err != nil {
				p = append(p, fmt.Errorf("%s: %w", key, err))
			}
		}
		if l.JWT != nil {
			if err := l.JWT.Validate(); err != nil {
				p = append(p, fmt.Errorf("%s.jwt: %w", key, err))
			}
		}
		if l.Authorization != nil {
			if err := l.Authorization.Validate(); err != nil {
				p = append(p, fmt.Errorf("%s.authorization: %w", key, err))
			}
		}
		for j, s := range l.SNI {
			sk := fmt.Sprintf("%s.sni[%d]", key, j)
			if len(s.Names) == 0 {
				p.Add(sk+".names", s.Names, "at least one server name is required")
			}
			if !clusters[s.Cluster] {
				p.Add(sk+".cluster", s.Cluster, "no such cluster")
			}
		}
	}
	if len(c.Listeners) == 0 {
		for _, l := range c.Effective() {
			listeners[l.Name] = l
		}
	}

	routes := map[string]bool{}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		if r.Name == "" {
			p.Add(key+".name", r.Name, "required")
		} else if routes[r.Name] {
			p.Add(key+".name", r.Name, "duplicate route name")
		}
		routes[r.Name] = true
		for _, ln := range r.Listeners {
			if _, ok := listeners[ln]; !ok {
				p.Add(key+".listeners", ln, "no such listener")
			}
		}
		if r.Cluster != "" && !clusters[r.Cluster] {
			p.Add(key+".cluster", r.Cluster, "no such cluster")
		}
		if r.Match.Path.Exact != "" && r.Match.Path.Prefix != "" {
			p.Add(key+".match.path", r.Match.Path.Exact, "set exact or prefix, not both")
		}
		for _, pth := range []string{r.Match.Path.Exact, r.Match.Path.Prefix} {
			if pth != "" && !strings.HasPrefix(pth, "/") {
				p.Add(key+".match.path", pth, "must start with /")
			}
		}
		for _, h := range r.Match.Hosts {
			if h == "" || strings.ContainsAny(h, " /") || (strings.Contains(h, "*") && !strings.HasPrefix(h, "*.")) {
				p.Add(key+".match.hosts", h, "want a host name or *.suffix")
			}
		}
		for j, h := range r.Match.Headers {
			hk := fmt.Sprintf("%s.match.headers[%d]", key, j)
			if !validToken(h.Name) {
				p.Add(hk+".name", h.Name, "not a header name")
			}
			set := 0
			if h.Exact != "" {
				set++
			}
			if h.Prefix != "" {
				set++
			}
			if h.Present != nil {
				set++
			}
			if set > 1 {
				p.Add(hk, h.Name, "set one of exact, prefix, present")
			}
		}
		if r.Match.Port < 0 || r.Match.Port > 65535 {
			p.Add(key+".match.port", r.Match.Port, "not a port")
		}
		for j, h := range append(append([]Header(nil), r.RequestHeadersAdd...), r.ResponseHeadersAdd...) {
			if !validToken(h.Name) {
				p.Add(fmt.Sprintf("%s.headers_add[%d].name", key, j), h.Name, "not a header name")
			}
			if strings.ContainsAny(h.Value, "\r\n\x00") {
				p.Add(fmt.Sprintf("%s.headers_add[%d].value", key, j), h.Name, "value contains CR, LF or NUL")
			}
		}
		for _, h := range append(append([]string(nil), r.RequestHeadersRemove...), r.ResponseHeadersRemove...) {
			if !validToken(h) {
				p.Add(key+".headers_remove", h, "not a header name")
			}
		}
		if r.MaxRequestBodyBytes < 0 {
			p.Add(key+".max_request_body_bytes", r.MaxRequestBodyBytes, "must not be negative")
		}
		var cc *upstream.ClusterConfig
		for i := range c.Clusters {
			if c.Clusters[i].Name == r.Cluster {
				cc = &c.Clusters[i]
			}
		}
		if err := r.Policy.Validate(cc); err != nil {
			p = append(p, fmt.Errorf("%s: %w", key, err))
		}
		if r.RateLimit != nil {
			if err := r.RateLimit.Validate(); err != nil {
				p = append(p, fmt.Errorf("%s.rate_limit: %w", key, err))
			}
		}
		if r.Fault != nil {
			if err := r.Fault.Validate(); err != nil {
				p = append(p, fmt.Errorf("%s.fault: %w", key, err))
			}
		}
	}
	c.Tracing.Validate(&p)
	return p.Err()
}

func checkHostPort(s string, listen bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("want host:port")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (!listen && n == 0) {
		return fmt.Errorf("bad port %q", port)
	}
	if !listen && host == "" {
		return fmt.Errorf("want host:port with a host")
	}
	return nil
}

func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}
