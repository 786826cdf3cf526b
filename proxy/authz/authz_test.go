package authz

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/sidecarkit/sidecarkit/proxy/jwtauth"
	"github.com/sidecarkit/sidecarkit/proxy/mtls"
	"github.com/sidecarkit/sidecarkit/proxy/pathnorm"
	"gopkg.in/yaml.v3"
)

func parse(t testing.TB, src string) *Engine {
	t.Helper()
	var cfg Config
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("yaml: %v", err)
	}
	e, err := New(cfg, Deps{})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

const frontend = "cluster.local/ns/shop/sa/frontend"
const admin = "cluster.local/ns/ops/sa/admin"

// Pasted in Istio's shape.
const policies = `
policies:
- name: deny-delete-from-outside-ops
  action: DENY
  rules:
  - to:
    - operation:
        methods: ["DELETE"]
    from:
    - source:
        notNamespaces: ["ops"]
- name: deny-debug-header
  action: DENY
  rules:
  - when:
    - key: request.headers[x-debug]
      values: ["*"]
- name: frontend-reads
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/shop/sa/frontend"]
    to:
    - operation:
        methods: ["GET", "HEAD"]
        paths: ["/api/*", "/healthz"]
        notPaths: ["/api/internal*"]
- name: ops-everything
  action: ALLOW
  rules:
  - from:
    - source:
        namespaces: ["ops"]
- name: jwt-admins
  action: ALLOW
  rules:
  - from:
    - source:
        requestPrincipals: ["https://issuer.example/*"]
    when:
    - key: request.auth.claims[groups]
      values: ["admins"]
    to:
    - operation:
        hosts: ["shop.example.com"]
`

func TestIstioSemantics(t *testing.T) {
	e := parse(t, policies)
	jwtAdmin := &jwtauth.Result{Issuer: "https://issuer.example", Subject: "alice", Claims: map[string]any{"groups": []any{"users", "admins"}}}
	jwtUser := &jwtauth.Result{Issuer: "https://issuer.example", Subject: "bob", Claims: map[string]any{"groups": []any{"users"}}}
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	for _, c := range []struct {
		name string
		in   Input
		want bool
		by   string
	}{
		{"frontend GET api", Input{Principal: frontend, Namespace: "shop", Method: "GET", Path: "/api/items"}, true, "frontend-reads"},
		{"frontend GET exact path", Input{Principal: frontend, Namespace: "shop", Method: "GET", Path: "/healthz"}, true, "frontend-reads"},
		{"frontend POST", Input{Principal: frontend, Namespace: "shop", Method: "POST", Path: "/api/items"}, false, ""},
		{"frontend notPaths", Input{Principal: frontend, Namespace: "shop", Method: "GET", Path: "/api/internal/x"}, false, ""},
		{"frontend other path", Input{Principal: frontend, Namespace: "shop", Method: "GET", Path: "/apix"}, false, ""},
		{"plaintext (no principal)", Input{Method: "GET", Path: "/api/items"}, false, ""},
		{"ops anything", Input{Principal: admin, Namespace: "ops", Method: "POST", Path: "/x"}, true, "ops-everything"},
		{"ops DELETE", Input{Principal: admin, Namespace: "ops", Method: "DELETE", Path: "/x"}, true, "ops-everything"},
		{"DENY wins over ALLOW", Input{Principal: admin, Namespace: "ops", Method: "GET", Path: "/", Header: hdr("X-Debug", "1")}, false, "deny-debug-header"},
		{"frontend DELETE denied", Input{Principal: frontend, Namespace: "shop", Method: "DELETE", Path: "/api/items"}, false, "deny-delete-from-outside-ops"},
		{"jwt admin", Input{RequestPrincipal: jwtAdmin.Principal(), Auth: jwtAdmin, Method: "POST", Host: "Shop.Example.com:8080"}, true, "jwt-admins"},
		{"jwt admin other host", Input{RequestPrincipal: jwtAdmin.Principal(), Auth: jwtAdmin, Method: "POST", Host: "other"}, false, ""},
		{"jwt user", Input{RequestPrincipal: jwtUser.Principal(), Auth: jwtUser, Method: "POST", Host: "shop.example.com"}, false, ""},
	} {
		got, by := e.Decide(c.in)
		if got != c.want || by != c.by {
			t.Errorf("%s: allowed=%v by %q, want %v by %q", c.name, got, by, c.want, c.by)
		}
	}

	// No policies: allow. ALLOW without rules: allow nothing. DENY rules:[{}]: deny all.
	if ok, _ := parse(t, "policies: []").Decide(Input{Method: "GET"}); !ok {
		t.Error("no policy must allow")
	}
	if ok, _ := parse(t, "policies: [{name: allow-nothing, action: ALLOW}]").Decide(Input{Method: "GET", Principal: admin}); ok {
		t.Error("ALLOW without rules must allow nothing")
	}
	if ok, _ := parse(t, "policies: [{name: deny-all, action: DENY, rules: [{}]}]").Decide(Input{Method: "GET"}); ok {
		t.Error("DENY with an empty rule must deny everything")
	}
	if ok, _ := parse(t, "policies: [{name: deny-none, action: DENY}]").Decide(Input{Method: "GET"}); !ok {
		t.Error("DENY without rules must deny nothing")
	}
	ipPol := parse(t, "policies: [{name: lan, action: ALLOW, rules: [{from: [{source: {ipBlocks: [10.0.0.0/8, 127.0.0.1]}}]}]}]")
	if ok, _ := ipPol.Decide(Input{SourceIP: net.ParseIP("10.1.2.3")}); !ok {
		t.Error("ipBlocks CIDR")
	}
	if ok, _ := ipPol.Decide(Input{SourceIP: net.ParseIP("192.168.1.1")}); ok {
		t.Error("ipBlocks outside")
	}
}

func TestMiddleware403(t *testing.T) {
	e := parse(t, policies)
	h := e.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("app")) }))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/api/items", nil))
	if w.Code != 403 || w.Body.String() != "RBAC: access denied" {
		t.Fatalf("got %d %q", w.Code, w.Body.String())
	}
	// A verified JWT in the context is used.
	r := httptest.NewRequest("GET", "http://shop.example.com/", nil)
	r = r.WithContext(jwtauth.WithResult(r.Context(), &jwtauth.Result{Issuer: "https://issuer.example", Subject: "a", Claims: map[string]any{"groups": "admins"}}))
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 || w.Body.String() != "app" {
		t.Fatalf("jwt admin: %d %q", w.Code, w.Body.String())
	}
}

// TestDecidesOnForwardedPath: authorization judges the path the proxy
// forwards — normalised once by pathnorm before the chain — so a dot
// segment, an encoded letter or a backslash cannot reach /admin past a
// DENY, and "%2F" stays part of its segment (forwarded encoded too).
func TestDecidesOnForwardedPath(t *testing.T) {
	e := parse(t, policies)
	var got string
	h := e.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.URL.RequestURI(); w.Write([]byte("app")) }))
	id, _ := mtls.ParseSPIFFE("spiffe://" + frontend)
	for target, want := range map[string]int{"/api/items": 200, "/api/items/../../admin": 403, "/api//items": 200, "/%61pi/items": 200, `/api\..\admin`: 403, "/api%2f..%2fadmin": 403} {
		r := httptest.NewRequest("GET", "/", nil)
		u, err := url.ParseRequestURI(target)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pathnorm.Apply(u, pathnorm.Options{}); err != nil {
			t.Fatal(err)
		}
		r.URL = u
		r = r.WithContext(mtls.WithPeer(r.Context(), &mtls.Peer{Identity: id}))
		w := httptest.NewRecorder()
		got = ""
		h.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("frontend GET %s: %d, want %d", target, w.Code, want)
		}
		if w.Code == 200 && got != pathnorm.RawPath(u) {
			t.Errorf("GET %s: decided on %q, app got %q", target, pathnorm.RawPath(u), got)
		}
	}
}

// TestRepeatedHeadersJoined: Istio joins repeated header values with ","
// before matching, so a second value cannot satisfy an exact match.
func TestRepeatedHeadersJoined(t *testing.T) {
	e := parse(t, `
policies:
- name: admins
  action: ALLOW
  rules: [{when: [{key: "request.headers[x-role]", values: [admin]}]}]
- name: no-debug
  action: DENY
  rules: [{when: [{key: "request.headers[x-debug]", notValues: ["off"]}]}]
`)
	for _, c := range []struct {
		h    http.Header
		want bool
	}{
		{http.Header{"X-Role": {"admin"}, "X-Debug": {"off"}}, true},
		{http.Header{"X-Role": {"user", "admin"}, "X-Debug": {"off"}}, false},
		{http.Header{"X-Role": {"admin", "admin"}, "X-Debug": {"off"}}, false},
		{http.Header{"X-Role": {"admin"}, "X-Debug": {"off"}}, true},
		{http.Header{"X-Role": {"admin"}, "X-Debug": {"off", "on"}}, false},
	} {
		if ok, _ := e.Decide(Input{Method: "GET", Path: "/", Header: c.h}); ok != c.want {
			t.Errorf("%v: allowed %v, want %v", c.h, ok, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	err := (&Config{Policies: []Policy{{Action: "AUDIT", Rules: []Rule{{
		From: []From{{Source: Source{IPBlocks: []string{"10.0.0.0/33"}}}},
		When: []Condition{{Key: "request.body"}, {Key: "request.headers[x]"}},
	}}}}}).Validate()
	for _, want := range []string{`policies[0].action "AUDIT"`, `ipBlocks "10.0.0.0/33"`, `when[0].key "request.body"`, `when[1].values`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}

func FuzzConfig(f *testing.F) {
	f.Add([]byte(policies))
	f.Add([]byte("policies: [{action: DENY, rules: [{when: [{key: 'request.auth.claims[a][b]', values: ['*']}]}]}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var cfg Config
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if dec.Decode(&cfg) != nil {
			return
		}
		e, err := New(cfg, Deps{})
		if err != nil {
			return
		}
		e.Decide(Input{Method: "GET", Path: "/x", Header: http.Header{"X": {"y"}}, Auth: &jwtauth.Result{Claims: map[string]any{"a": map[string]any{"b": "c"}}}})
	})
}
