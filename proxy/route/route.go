// Package route decides, as a pure function of the request's host, path,
// headers and destination port, which configured route an HTTP request takes
// on a listener. Routes are tried in configuration order; the first match wins.
package route

import (
	"net/http"
	"strings"

	"github.com/sidecarkit/sidecarkit/proxy/config"
)

// Route is a compiled route.
type Route struct {
	config.Route
	hosts   []hostMatch
	headers []headerMatch
}

type hostMatch struct {
	exact  string // lower case
	suffix string // ".example.com" for "*.example.com"
}

type headerMatch struct {
	name    string // canonical
	exact   string
	prefix  string
	present *bool
}

// Table is the ordered routes of one listener.
type Table struct{ routes []*Route }

// Compile returns the routes that apply to the listener named listener
// (direction dir): those naming it, and for outbound listeners those naming
// no listener.
func Compile(routes []config.Route, listener, dir string) *Table {
	t := &Table{}
	for _, r := range routes {
		if !applies(r, listener, dir) {
			continue
		}
		cr := &Route{Route: r}
		for _, h := range r.Match.Hosts {
			h = strings.ToLower(h)
			if strings.HasPrefix(h, "*.") {
				cr.hosts = append(cr.hosts, hostMatch{suffix: h[1:]})
			} else {
				cr.hosts = append(cr.hosts, hostMatch{exact: h})
			}
		}
		for _, h := range r.Match.Headers {
			cr.headers = append(cr.headers, headerMatch{name: http.CanonicalHeaderKey(h.Name), exact: h.Exact, prefix: h.Prefix, present: h.Present})
		}
		t.routes = append(t.routes, cr)
	}
	return t
}

func applies(r config.Route, listener, dir string) bool {
	if len(r.Listeners) == 0 {
		return dir == config.Outbound
	}
	for _, l := range r.Listeners {
		if l == listener {
			return true
		}
	}
	return false
}

// Len is the number of routes.
func (t *Table) Len() int { return len(t.routes) }

// Match returns the first route matching the request, or nil. host may carry
// a port; path is the escaped path as normalised by the proxy (pathnorm) and
// forwarded; port is the destination port (0: unknown, port matches fail).
func (t *Table) Match(host, path string, h http.Header, port int) *Route {
	if len(t.routes) == 0 {
		return nil
	}
	host = StripPort(host)
	for _, r := range t.routes {
		if r.match(host, path, h, port) {
			return r
		}
	}
	return nil
}

func (r *Route) match(host, path string, h http.Header, port int) bool {
	m := &r.Route.Match
	if m.Port != 0 && m.Port != port {
		return false
	}
	if len(r.hosts) > 0 {
		ok := false
		for _, hm := range r.hosts {
			if hm.exact != "" && strings.EqualFold(hm.exact, host) ||
				hm.suffix != "" && len(host) > len(hm.suffix) && strings.EqualFold(host[len(host)-len(hm.suffix):], hm.suffix) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if m.Path.Exact != "" && path != m.Path.Exact {
		return false
	}
	if m.Path.Prefix != "" && !strings.HasPrefix(path, m.Path.Prefix) {
		return false
	}
	for _, hm := range r.headers {
		vs := h[hm.name]
		switch {
		case hm.present != nil:
			if (len(vs) > 0) != *hm.present {
				return false
			}
		case hm.exact != "":
			if len(vs) == 0 || joined(vs) != hm.exact {
				return false
			}
		case hm.prefix != "":
			if len(vs) == 0 || !strings.HasPrefix(joined(vs), hm.prefix) {
				return false
			}
		default:
			if len(vs) == 0 {
				return false
			}
		}
	}
	return true
}

// joined is a repeated header's values joined with "," (Envoy's
// getAllOfHeaderAsString, which Istio's header matches see): a second
// "x-canary: true" line cannot turn a "false" into a match.
func joined(vs []string) string {
	if len(vs) == 1 {
		return vs[0]
	}
	return strings.Join(vs, ",")
}

// StripPort returns host without a trailing :port (IPv6 brackets removed).
func StripPort(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return host
}

// ApplyRequestHeaders removes then adds the route's request headers.
func (r *Route) ApplyRequestHeaders(h http.Header) {
	for _, n := range r.RequestHeadersRemove {
		h.Del(n)
	}
	for _, a := range r.RequestHeadersAdd {
		h.Add(a.Name, a.Value)
	}
}

// ApplyResponseHeaders removes then adds the route's response headers.
func (r *Route) ApplyResponseHeaders(h http.Header) {
	for _, n := range r.ResponseHeadersRemove {
		h.Del(n)
	}
	for _, a := range r.ResponseHeadersAdd {
		h.Add(a.Name, a.Value)
	}
}

// MatchSNI returns the cluster for a TLS server name, or "".
func MatchSNI(routes []config.SNIRoute, name string) string {
	name = strings.ToLower(name)
	for _, r := range routes {
		for _, n := range r.Names {
			n = strings.ToLower(n)
			if n == name || strings.HasPrefix(n, "*.") && len(name) > len(n)-1 && strings.HasSuffix(name, n[1:]) {
				return r.Cluster
			}
		}
	}
	return ""
}
