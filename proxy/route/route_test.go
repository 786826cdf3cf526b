package route

import (
	"net/http"
	"testing"

	"github.com/sidecarkit/sidecarkit/proxy/config"
)

func TestMatch(t *testing.T) {
	yes, no := true, false
	routes := []config.Route{
		{Name: "canary", Match: config.Match{Hosts: []string{"orders"}, Headers: []config.HeaderMatch{{Name: "x-canary", Exact: "true"}}}},
		{Name: "api", Match: config.Match{Hosts: []string{"Orders", "*.orders.svc"}, Path: config.PathMatch{Prefix: "/api/"}}},
		{Name: "exact", Match: config.Match{Path: config.PathMatch{Exact: "/only"}}},
		{Name: "port", Match: config.Match{Port: 9090}},
		{Name: "debug", Match: config.Match{Headers: []config.HeaderMatch{{Name: "x-debug", Present: &yes}, {Name: "x-prod", Present: &no}, {Name: "ua", Prefix: "curl/"}}}},
		{Name: "inbound-only", Listeners: []string{"inbound"}},
	}
	out := Compile(routes, "outbound", config.Outbound)
	if out.Len() != 5 {
		t.Fatalf("outbound has %d routes, want 5", out.Len())
	}
	h := func(kv ...string) http.Header {
		x := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			x.Add(kv[i], kv[i+1])
		}
		return x
	}
	cases := []struct {
		host, path string
		hdr        http.Header
		port       int
		want       string
	}{
		{"orders", "/api/x", h("X-Canary", "true"), 80, "canary"},
		// Repeated headers are joined with "," before matching (Istio).
		{"orders", "/api/x", h("X-Canary", "false", "X-Canary", "true"), 80, "api"},
		{"orders", "/api/x", h("X-Canary", "true", "X-Canary", "true"), 80, "api"},
		{"x", "/", h("X-Debug", "1", "Ua", "curl/8", "Ua", "x"), 1, "debug"},
		{"x", "/", h("X-Debug", "1", "Ua", "wget", "Ua", "curl/8"), 1, ""},
		{"orders:8080", "/api/x", nil, 80, "api"},
		{"ORDERS", "/api/x", nil, 80, "api"},
		{"a.orders.svc", "/api/", nil, 80, "api"},
		{"orders.svc", "/api/", nil, 80, ""},
		{"x", "/only", nil, 80, "exact"},
		{"x", "/only/", nil, 80, ""},
		{"x", "/", nil, 9090, "port"},
		{"x", "/", h("X-Debug", "1", "Ua", "curl/8"), 1, "debug"},
		{"x", "/", h("X-Debug", "1", "X-Prod", "1", "Ua", "curl/8"), 1, ""},
		{"[::1]:80", "/only", nil, 1, "exact"},
	}
	for _, c := range cases {
		r := out.Match(c.host, c.path, c.hdr, c.port)
		got := ""
		if r != nil {
			got = r.Name
		}
		if got != c.want {
			t.Errorf("Match(%q, %q, %v, %d) = %q, want %q", c.host, c.path, c.hdr, c.port, got, c.want)
		}
	}
	in := Compile(routes, "inbound", config.Inbound)
	if in.Len() != 1 || in.Match("x", "/", nil, 1).Name != "inbound-only" {
		t.Errorf("inbound table wrong")
	}
}

func TestHeadersAndSNI(t *testing.T) {
	r := &Route{Route: config.Route{
		RequestHeadersAdd: []config.Header{{Name: "x-env", Value: "prod"}}, RequestHeadersRemove: []string{"x-debug"},
		ResponseHeadersAdd: []config.Header{{Name: "x-by", Value: "sk"}}, ResponseHeadersRemove: []string{"server"},
	}}
	h := http.Header{"X-Debug": {"1"}}
	r.ApplyRequestHeaders(h)
	if h.Get("X-Env") != "prod" || h.Get("X-Debug") != "" {
		t.Errorf("request headers %v", h)
	}
	h = http.Header{"Server": {"x"}}
	r.ApplyResponseHeaders(h)
	if h.Get("X-By") != "sk" || h.Get("Server") != "" {
		t.Errorf("response headers %v", h)
	}
	sni := []config.SNIRoute{{Names: []string{"api.example.com"}, Cluster: "a"}, {Names: []string{"*.example.com"}, Cluster: "b"}}
	for name, want := range map[string]string{"api.example.com": "a", "X.Example.com": "b", "example.com": "", "other.org": ""} {
		if got := MatchSNI(sni, name); got != want {
			t.Errorf("MatchSNI(%q) = %q, want %q", name, got, want)
		}
	}
}

func FuzzStripPort(f *testing.F) {
	for _, s := range []string{"a:80", "[::1]:443", "[::1]", "host", ":", "]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		StripPort(s)
	})
}
