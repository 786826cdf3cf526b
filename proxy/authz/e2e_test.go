package authz_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/sidecarkit/sidecarkit/proxy/authz"
	"github.com/sidecarkit/sidecarkit/proxy/jwtauth"
	"github.com/sidecarkit/sidecarkit/proxy/mtls"
	"github.com/sidecarkit/sidecarkit/proxy/mtls/mtlstest"
	"gopkg.in/yaml.v3"
)

// TestThroughRealMTLSAndJWT runs the inbound chain a listener builds —
// mTLS STRICT termination → jwtauth → authz → app — over real TLS
// connections with SPIFFE client certificates and signed tokens.
func TestThroughRealMTLSAndJWT(t *testing.T) {
	ca := mtlstest.NewCA(t, "mesh")
	srv, err := mtls.NewServer(mtls.ServerConfig{Mode: mtls.Strict, Files: ca.Workload(t, "spiffe://cluster.local/ns/shop/sa/checkout")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	os.WriteFile(jwks, set, 0o644)
	jwtA, err := jwtauth.New(jwtauth.Config{Providers: []jwtauth.Provider{{Issuer: "https://issuer.example", JWKSFile: jwks}}}, jwtauth.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer jwtA.Close()
	sign := func(sub string, groups ...string) string {
		sg, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
		s, _ := jwt.Signed(sg).Claims(map[string]any{"iss": "https://issuer.example", "sub": sub, "groups": groups, "exp": time.Now().Add(time.Hour).Unix()}).Serialize()
		return s
	}

	var cfg authz.Config
	if err := yaml.Unmarshal([]byte(`
policies:
- name: no-delete
  action: DENY
  rules: [{to: [{operation: {methods: [DELETE]}}], from: [{source: {notNamespaces: [ops]}}]}]
- name: frontend-reads
  action: ALLOW
  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/frontend]}}], to: [{operation: {methods: [GET], paths: ["/api/*"]}}]}]
- name: ops
  action: ALLOW
  rules: [{from: [{source: {namespaces: [ops]}}]}]
- name: jwt-admins
  action: ALLOW
  rules: [{from: [{source: {requestPrincipals: ["https://issuer.example/*"]}}], when: [{key: "request.auth.claims[groups]", values: [admins]}]}]
`), &cfg); err != nil {
		t.Fatal(err)
	}
	az, err := authz.New(cfg, authz.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app") })
	inner, _ := net.Listen("tcp", "127.0.0.1:0")
	hs := &http.Server{ConnContext: mtls.ConnContext, Handler: jwtA.Middleware(az.Middleware(app))}
	go hs.Serve(mtls.NewListener(inner, srv, nil))
	defer hs.Close()
	addr := inner.Addr().String()

	clientFor := func(id string) *http.Client {
		c, err := mtls.NewClient(mtls.ClientConfig{Files: ca.Workload(t, id)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		tr := &http.Transport{DialTLSContext: func(ctx context.Context, n, a string) (net.Conn, error) {
			return tls.Dial(n, a, c.TLSConfig())
		}}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	frontend := clientFor("spiffe://cluster.local/ns/shop/sa/frontend")
	ops := clientFor("spiffe://cluster.local/ns/ops/sa/admin")
	other := clientFor("spiffe://cluster.local/ns/web/sa/anyone")
	do := func(c *http.Client, method, path, token string) (int, string) {
		req, _ := http.NewRequest(method, "https://"+addr+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		name         string
		client       *http.Client
		method, path string
		token        string
		code         int
		body         string
	}{
		{"frontend GET /api", frontend, "GET", "/api/items", "", 200, "app"},
		{"frontend POST /api", frontend, "POST", "/api/items", "", 403, "RBAC: access denied"},
		{"frontend GET /admin", frontend, "GET", "/admin", "", 403, "RBAC: access denied"},
		{"frontend DELETE", frontend, "DELETE", "/api/items", "", 403, "RBAC: access denied"},
		{"ops POST", ops, "POST", "/anything", "", 200, "app"},
		{"ops DELETE", ops, "DELETE", "/api/items", "", 200, "app"},
		{"other ns, no token", other, "GET", "/api/items", "", 403, "RBAC: access denied"},
		{"other ns, admin JWT", other, "POST", "/x", sign("alice", "admins"), 200, "app"},
		{"other ns, user JWT", other, "POST", "/x", sign("bob", "users"), 403, "RBAC: access denied"},
		{"other ns, admin JWT, DELETE", other, "DELETE", "/x", sign("alice", "admins"), 403, "RBAC: access denied"},
		{"forged JWT", other, "GET", "/x", sign("alice", "admins")[:60] + "x.y", 401, "Jwt verification fails"},
	} {
		code, body := do(c.client, c.method, c.path, c.token)
		if code != c.code || !strings.HasPrefix(body, c.body) {
			t.Errorf("%s: %d %q, want %d %q", c.name, code, body, c.code, c.body)
		}
	}
}
