// Package authz enforces authorization policies with Istio's
// AuthorizationPolicy semantics, configured in the proxy's YAML (the field
// names are Istio's, so a policy's spec can be pasted):
//
//   - A policy has an action, ALLOW or DENY, and rules. A rule matches when
//     any of its from sources, any of its to operations and all of its when
//     conditions match; an empty part matches everything.
//   - DENY wins: a request matching any DENY rule is denied.
//   - If any ALLOW policy exists, a request must match one of their rules
//     (default deny); an ALLOW policy without rules allows nothing.
//   - Otherwise the request is allowed.
//
// Denied requests get 403 "RBAC: access denied". Sources come from the
// verified mTLS peer (mtls.PeerFrom: principals, namespaces) and the
// verified JWT (jwtauth.FromContext: requestPrincipals, request.auth.*).
// Values match exactly, by prefix ("abc*"), suffix ("*abc") or presence ("*").
package authz

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sidecarkit/sidecarkit/proxy/jwtauth"
	"github.com/sidecarkit/sidecarkit/proxy/mtls"
	"github.com/sidecarkit/sidecarkit/proxy/pathnorm"
	"github.com/sidecarkit/sidecarkit/shared/config"
)

// Config is the proxy's "authorization:" section.
type Config struct {
	Policies []Policy `yaml:"policies"`
}

// Policy is one AuthorizationPolicy.
type Policy struct {
	Name   string `yaml:"name"`
	Action string `yaml:"action"` // ALLOW (default) | DENY
	Rules  []Rule `yaml:"rules"`
}

// Rule is one entry of a policy's rules.
type Rule struct {
	From []From      `yaml:"from,omitempty"`
	To   []To        `yaml:"to,omitempty"`
	When []Condition `yaml:"when,omitempty"`
}

// From wraps a source, as in Istio.
type From struct {
	Source Source `yaml:"source"`
}

// Source matches who sends the request.
type Source struct {
	Principals           []string `yaml:"principals,omitempty"` // "cluster.local/ns/x/sa/y"
	NotPrincipals        []string `yaml:"notPrincipals,omitempty"`
	RequestPrincipals    []string `yaml:"requestPrincipals,omitempty"` // "<iss>/<sub>" of the JWT
	NotRequestPrincipals []string `yaml:"notRequestPrincipals,omitempty"`
	Namespaces           []string `yaml:"namespaces,omitempty"`
	NotNamespaces        []string `yaml:"notNamespaces,omitempty"`
	IPBlocks             []string `yaml:"ipBlocks,omitempty"` // CIDR or IP of the direct peer
	NotIPBlocks          []string `yaml:"notIpBlocks,omitempty"`
}

// To wraps an operation, as in Istio.
type To struct {
	Operation Operation `yaml:"operation"`
}

// Operation matches what is asked.
type Operation struct {
	Hosts      []string `yaml:"hosts,omitempty"`
	NotHosts   []string `yaml:"notHosts,omitempty"`
	Methods    []string `yaml:"methods,omitempty"`
	NotMethods []string `yaml:"notMethods,omitempty"`
	Paths      []string `yaml:"paths,omitempty"`
	NotPaths   []string `yaml:"notPaths,omitempty"`
}

// Condition is one "when" entry: key is request.headers[<name>],
// source.principal, source.namespace, source.ip, request.auth.principal,
// request.auth.audiences, request.auth.presenter or
// request.auth.claims[<name>] (nested: [a][b]).
type Condition struct {
	Key       string   `yaml:"key"`
	Values    []string `yaml:"values,omitempty"`
	NotValues []string `yaml:"notValues,omitempty"`
}

var keyRE = regexp.MustCompile(`^(source\.principal|source\.namespace|source\.ip|request\.auth\.principal|request\.auth\.audiences|request\.auth\.presenter|request\.headers\[[^\[\]]+\]|request\.auth\.claims(\[[^\[\]]+\])+)$`)

// Validate reports every problem, naming the key and value.
func (c *Config) Validate() error {
	var p config.Problems
	for i, pol := range c.Policies {
		at := fmt.Sprintf("authorization.policies[%d]", i)
		switch pol.Action {
		case "", "ALLOW", "DENY":
		default:
			p.Add(at+".action", pol.Action, "want ALLOW or DENY")
		}
		for j, r := range pol.Rules {
			rat := fmt.Sprintf("%s.rules[%d]", at, j)
			for k, f := range r.From {
				for _, b := range append(append([]string{}, f.Source.IPBlocks...), f.Source.NotIPBlocks...) {
					if _, err := parseBlock(b); err != nil {
						p.Add(fmt.Sprintf("%s.from[%d].source.ipBlocks", rat, k), b, "want an IP or CIDR")
					}
				}
			}
			for k, w := range r.When {
				wat := fmt.Sprintf("%s.when[%d]", rat, k)
				if !keyRE.MatchString(w.Key) {
					p.Add(wat+".key", w.Key, "unsupported key (want request.headers[..], source.principal, source.namespace, source.ip, request.auth.principal|audiences|presenter|claims[..])")
				}
				if len(w.Values) == 0 && len(w.NotValues) == 0 {
					p.Add(wat+".values", "", "values or notValues is needed")
				}
			}
		}
	}
	return p.Err()
}

func parseBlock(s string) (*net.IPNet, error) {
	if !strings.Contains(s, "/") {
		ip := net.ParseIP(s)
		if ip == nil {
			return nil, fmt.Errorf("bad IP")
		}
		bits := 32
		if ip.To4() == nil {
			bits = 128
		}
		return &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)}, nil
	}
	_, n, err := net.ParseCIDR(s)
	return n, err
}

// Input is what a decision looks at.
type Input struct {
	Principal        string // mTLS peer, Istio form
	Namespace        string
	SourceIP         net.IP
	RequestPrincipal string // JWT iss/sub
	Auth             *jwtauth.Result
	Method, Path     string
	Host             string
	Header           http.Header
}

// InputOf gathers a request's Input from its context and fields. The path
// is the request's escaped path as it will be forwarded: the proxy has
// normalised it (package pathnorm) before the listener chain runs, so the
// decision and the app see the same path.
func InputOf(r *http.Request) Input {
	in := Input{Method: r.Method, Path: pathnorm.RawPath(r.URL), Host: r.Host, Header: r.Header}
	if p := mtls.PeerFrom(r.Context()); p != nil {
		in.Principal, in.Namespace = p.Identity.Principal(), p.Identity.Namespace
	}
	if res := jwtauth.FromContext(r.Context()); res != nil {
		in.Auth, in.RequestPrincipal = res, res.Principal()
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		in.SourceIP = net.ParseIP(host)
	}
	return in
}

// Engine decides requests against the policies.
type Engine struct {
	allow, deny []Policy
	log         *slog.Logger
	results     *prometheus.CounterVec
}

// Deps are what an Engine needs from its host.
type Deps struct {
	Log      *slog.Logger
	Registry prometheus.Registerer
}

// New validates cfg and returns its engine.
func New(cfg Config, d Deps) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{log: d.Log}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	for _, p := range cfg.Policies {
		if p.Action == "DENY" {
			e.deny = append(e.deny, p)
		} else {
			e.allow = append(e.allow, p)
		}
	}
	reg := d.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	rv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sidecarkit_proxy_authz_total", Help: "Authorization decisions."}, []string{"result"})
	if err := reg.Register(rv); err != nil {
		are, ok := err.(prometheus.AlreadyRegisteredError)
		if !ok {
			return nil, err
		}
		rv = are.ExistingCollector.(*prometheus.CounterVec)
	}
	e.results = rv
	return e, nil
}

// Decide returns whether in is allowed and the policy that decided ("" for
// the default).
func (e *Engine) Decide(in Input) (bool, string) {
	for _, p := range e.deny {
		if p.matches(in) {
			return false, p.Name
		}
	}
	if len(e.allow) == 0 {
		return true, ""
	}
	for _, p := range e.allow {
		if p.matches(in) {
			return true, p.Name
		}
	}
	return false, ""
}

// Middleware answers 403 "RBAC: access denied" to denied requests.
func (e *Engine) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok, policy := e.Decide(InputOf(r))
		if !ok {
			e.results.WithLabelValues("denied").Inc()
			e.log.Debug("request denied by authorization policy", "policy", policy, "method", r.Method, "path", r.URL.Path)
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, "RBAC: access denied")
			return
		}
		e.results.WithLabelValues("allowed").Inc()
		next.ServeHTTP(w, r)
	})
}

func (p Policy) matches(in Input) bool {
	for _, r := range p.Rules {
		if r.matches(in) {
			return true
		}
	}
	return false
}

func (r Rule) matches(in Input) bool {
	if len(r.From) > 0 && !anyOf(r.From, func(f From) bool { return f.Source.matches(in) }) {
		return false
	}
	if len(r.To) > 0 && !anyOf(r.To, func(t To) bool { return t.Operation.matches(in) }) {
		return false
	}
	for _, c := range r.When {
		if !c.matches(in) {
			return false
		}
	}
	return true
}

func anyOf[T any](xs []T, f func(T) bool) bool {
	for _, x := range xs {
		if f(x) {
			return true
		}
	}
	return false
}

func (s Source) matches(in Input) bool {
	return field(s.Principals, s.NotPrincipals, []string{in.Principal}, false) &&
		field(s.RequestPrincipals, s.NotRequestPrincipals, []string{in.RequestPrincipal}, false) &&
		field(s.Namespaces, s.NotNamespaces, []string{in.Namespace}, false) &&
		ipField(s.IPBlocks, s.NotIPBlocks, in.SourceIP)
}

func (o Operation) matches(in Input) bool {
	host := in.Host
	hosts := []string{host}
	if h, _, err := net.SplitHostPort(host); err == nil {
		hosts = append(hosts, h)
	}
	return field(o.Hosts, o.NotHosts, hosts, true) &&
		field(o.Methods, o.NotMethods, []string{in.Method}, false) &&
		field(o.Paths, o.NotPaths, []string{in.Path}, false)
}

// field: with values, one of have must match one of them; with notValues,
// none may.
func field(values, notValues, have []string, fold bool) bool {
	if len(values) > 0 && !matchAny(values, have, fold) {
		return false
	}
	if len(notValues) > 0 && matchAny(notValues, have, fold) {
		return false
	}
	return true
}

func matchAny(patterns, have []string, fold bool) bool {
	for _, p := range patterns {
		for _, h := range have {
			if match(p, h, fold) {
				return true
			}
		}
	}
	return false
}

// match is Istio's string match: "*" presence, "x*" prefix, "*x" suffix, exact.
func match(pattern, v string, fold bool) bool {
	if fold {
		pattern, v = strings.ToLower(pattern), strings.ToLower(v)
	}
	switch {
	case pattern == "*":
		return v != ""
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(v, pattern[:len(pattern)-1])
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(v, pattern[1:])
	}
	return v == pattern
}

func ipField(blocks, notBlocks []string, ip net.IP) bool {
	in := func(bs []string) bool {
		for _, b := range bs {
			if n, err := parseBlock(b); err == nil && ip != nil && n.Contains(ip) {
				return true
			}
		}
		return false
	}
	if len(blocks) > 0 && !in(blocks) {
		return false
	}
	return len(notBlocks) == 0 || !in(notBlocks)
}

func (c Condition) matches(in Input) bool {
	have := c.values(in)
	return field(c.Values, c.NotValues, have, false)
}

// values returns the request's values for the condition key.
func (c Condition) values(in Input) []string {
	k := c.Key
	switch {
	case k == "source.principal":
		return []string{in.Principal}
	case k == "source.namespace":
		return []string{in.Namespace}
	case k == "source.ip":
		if in.SourceIP == nil {
			return nil
		}
		return []string{in.SourceIP.String()}
	case k == "request.auth.principal":
		return []string{in.RequestPrincipal}
	case strings.HasPrefix(k, "request.headers["):
		// Repeated headers are joined with "," before matching (Envoy's
		// getAllOfHeaderAsString, as Istio does): "x-role: user" plus
		// "x-role: admin" is "user,admin", which does not equal "admin".
		vs := in.Header.Values(k[len("request.headers[") : len(k)-1])
		switch len(vs) {
		case 0:
			return nil
		case 1:
			return vs
		}
		return []string{strings.Join(vs, ",")}
	}
	if in.Auth == nil {
		return nil
	}
	switch {
	case k == "request.auth.audiences":
		return in.Auth.Audience
	case k == "request.auth.presenter":
		s, _ := in.Auth.Claims["azp"].(string)
		return []string{s}
	case strings.HasPrefix(k, "request.auth.claims["):
		path := strings.Split(strings.TrimSuffix(strings.TrimPrefix(k, "request.auth.claims["), "]"), "][")
		var cur any = in.Auth.Claims
		for _, p := range path {
			m, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			cur = m[p]
		}
		return claimValues(cur)
	}
	return nil
}

func claimValues(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, claimValues(e)...)
		}
		return out
	case nil:
		return nil
	case map[string]any:
		return nil
	}
	return []string{fmt.Sprint(v)}
}
