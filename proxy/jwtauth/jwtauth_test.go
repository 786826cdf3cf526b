package jwtauth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

type signer struct {
	kid string
	alg jose.SignatureAlgorithm
	key any
	pub any
}

func newRSA(t testing.TB, kid string) signer {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return signer{kid, jose.RS256, k, &k.PublicKey}
}

func newEC(t testing.TB, kid string) signer {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return signer{kid, jose.ES256, k, &k.PublicKey}
}

func (s signer) sign(t testing.TB, claims map[string]any) string {
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if s.kid != "" {
		opts = opts.WithHeader("kid", s.kid)
	}
	sg, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: s.key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(sg).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func jwks(t testing.TB, ss ...signer) []byte {
	var set jose.JSONWebKeySet
	for _, s := range ss {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: s.pub, KeyID: s.kid, Algorithm: string(s.alg), Use: "sig"})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func claims(iss, sub, aud string, exp time.Duration) map[string]any {
	return map[string]any{"iss": iss, "sub": sub, "aud": aud, "exp": time.Now().Add(exp).Unix(), "iat": time.Now().Unix(), "group": "admins", "level": 3}
}

// echo answers 200 with the principal and the headers the app sees.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	p := "none"
	if res := FromContext(r.Context()); res != nil {
		p = res.Principal()
	}
	fmt.Fprintf(w, "principal=%s group=%s auth=%q", p, r.Header.Get("x-jwt-group"), r.Header.Get("Authorization"))
})

func call(h http.Handler, token string, hdr ...string) (int, string) {
	r := httptest.NewRequest("GET", "/api", nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func TestFileJWKS(t *testing.T) {
	rs := newRSA(t, "rsa-1")
	dir := t.TempDir()
	file := filepath.Join(dir, "jwks.json")
	os.WriteFile(file, jwks(t, rs), 0o644)
	var logs bytes.Buffer
	var mu sync.Mutex
	a, err := New(Config{Providers: []Provider{{Issuer: "https://issuer.example", Audiences: []string{"shop"}, JWKSFile: file,
		ClaimHeaders: []ClaimHeader{{Header: "x-jwt-group", Claim: "group"}}}}},
		Deps{Log: slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	h := a.Middleware(echo)

	good := rs.sign(t, claims("https://issuer.example", "alice", "shop", time.Hour))
	code, body := call(h, good, "x-jwt-group", "forged")
	if code != 200 || body != `principal=https://issuer.example/alice group=admins auth=""` {
		t.Fatalf("valid token: %d %s", code, body)
	}
	// No token: passes without a principal, and a forged claim header is dropped.
	if code, body := call(h, "", "x-jwt-group", "admins"); code != 200 || body != `principal=none group= auth=""` {
		t.Fatalf("no token: %d %s", code, body)
	}
	other := newRSA(t, "rsa-1") // same kid, different key: a forgery
	ec := newEC(t, "")
	for name, tok := range map[string]string{
		"expired":        rs.sign(t, claims("https://issuer.example", "alice", "shop", -2*time.Hour)),
		"wrong audience": rs.sign(t, claims("https://issuer.example", "alice", "billing", time.Hour)),
		"wrong issuer":   rs.sign(t, claims("https://evil.example", "alice", "shop", time.Hour)),
		"forged":         other.sign(t, claims("https://issuer.example", "alice", "shop", time.Hour)),
		"unknown key":    ec.sign(t, claims("https://issuer.example", "alice", "shop", time.Hour)),
		"garbage":        "not.a.jwt",
		"truncated":      good[:len(good)-10],
		"hs256":          hs256(t, claims("https://issuer.example", "alice", "shop", time.Hour)),
	} {
		code, body := call(h, tok)
		if code != 401 || !strings.Contains(body, "Jwt") {
			t.Errorf("%s token: %d %s", name, code, body)
		}
	}
	mu.Lock()
	if strings.Contains(logs.String(), good[:40]) {
		t.Fatal("a token was logged")
	}
	mu.Unlock()

	// Rotation: a new key in the file is picked up.
	ec2 := newEC(t, "ec-2")
	os.WriteFile(file+".tmp", jwks(t, rs, ec2), 0o644)
	os.Rename(file+".tmp", file)
	future := time.Now().Add(2 * time.Second)
	os.Chtimes(file, future, future)
	a.providers[0].kick <- struct{}{}
	tok := ec2.sign(t, claims("https://issuer.example", "bob", "shop", time.Hour))
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _ := call(h, tok); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("rotated JWKS file not picked up")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hs256(t testing.TB, c map[string]any) string {
	sg, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("0123456789abcdef0123456789abcdef")}, nil)
	s, _ := jwt.Signed(sg).Claims(c).Serialize()
	return s
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestURLJWKSAndRequire(t *testing.T) {
	ec := newEC(t, "ec-1")
	var mu sync.Mutex
	current := jwks(t, ec)
	fetches := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		fetches++
		w.Write(current)
	}))
	defer srv.Close()
	a, err := New(Config{Require: true, Providers: []Provider{{Issuer: "iss", JWKSURI: srv.URL, Forward: true}}}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	h := a.Middleware(echo)
	tok := ec.sign(t, claims("iss", "svc", "any", time.Hour))
	if code, body := call(h, tok); code != 200 || !strings.Contains(body, `auth="Bearer `) {
		t.Fatalf("ES256 via jwks_uri with forward_original_token: %d %s", code, body)
	}
	if code, body := call(h, ""); code != 401 || body != "Jwt is missing" {
		t.Fatalf("required token missing: %d %s", code, body)
	}
	// Cached: many requests, one fetch.
	for range 20 {
		call(h, tok)
	}
	mu.Lock()
	if fetches != 1 {
		t.Fatalf("JWKS fetched %d times", fetches)
	}
	// The issuer rotates to a new key: a token with the unknown kid is
	// refused and triggers a refresh; after it the token is accepted.
	ec2 := newEC(t, "ec-2")
	current = jwks(t, ec, ec2)
	mu.Unlock()
	tok2 := ec2.sign(t, claims("iss", "svc", "any", time.Hour))
	if code, _ := call(h, tok2); code != 401 {
		t.Fatalf("unknown kid before the refresh: %d", code)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if code, _ := call(h, tok2); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("rotated JWKS at the URL never fetched")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestValidate(t *testing.T) {
	err := (&Config{Providers: []Provider{{}, {Issuer: "a", JWKSFile: "f", JWKSURI: "ftp://x"}, {Issuer: "a", JWKSURI: "http://h/jwks", Refresh: -1}}}).Validate()
	for _, want := range []string{`jwt.providers[0].issuer ""`, "exactly one of jwks_file or jwks_uri", `jwt.providers[1].jwks_uri "ftp://x"`, `jwt.providers[2].issuer "a": duplicate`, "jwks_refresh"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	if _, err := New(Config{Providers: []Provider{{Issuer: "x", JWKSFile: "/does/not/exist"}}}, Deps{}); err == nil || !strings.Contains(err.Error(), "/does/not/exist") {
		t.Fatalf("missing jwks_file: %v", err)
	}
}

func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"BBBB"}]}`))
	f.Add(jwks(f, newEC(f, "k")))
	f.Fuzz(func(t *testing.T, b []byte) {
		set, err := ParseJWKS(b)
		if err == nil && len(set.Keys) == 0 {
			t.Fatal("accepted an empty set")
		}
	})
}

func FuzzVerify(f *testing.F) {
	ec := newEC(f, "k")
	dir := f.TempDir()
	file := filepath.Join(dir, "jwks.json")
	os.WriteFile(file, jwks(f, ec), 0o644)
	a, err := New(Config{Providers: []Provider{{Issuer: "iss", JWKSFile: file}}}, Deps{})
	if err != nil {
		f.Fatal(err)
	}
	defer a.Close()
	f.Add(ec.sign(f, claims("iss", "s", "a", time.Hour)))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, tok string) {
		res, err := a.Verify(tok)
		if err == nil && res.Issuer != "iss" {
			t.Fatalf("verified a token of another issuer: %+v", res)
		}
	})
}

// TestTokenLocations: the access_token query parameter is read by default
// (Envoy's default), every token present must verify, and a repeated token
// header is one (invalid) token — the proxy never verifies one token while
// the app reads another.
func TestTokenLocations(t *testing.T) {
	rs := newRSA(t, "rsa-1")
	file := filepath.Join(t.TempDir(), "jwks.json")
	os.WriteFile(file, jwks(t, rs), 0o644)
	good := rs.sign(t, claims("https://issuer.example", "alice", "shop", time.Hour))
	bad := newRSA(t, "rsa-1").sign(t, claims("https://issuer.example", "mallory", "shop", time.Hour))
	mk := func(p Provider, require bool) http.Handler {
		p.Issuer, p.JWKSFile = "https://issuer.example", file
		a, err := New(Config{Providers: []Provider{p}, Require: require}, Deps{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		return a.Middleware(echo)
	}
	def := mk(Provider{}, false)
	defRequired := mk(Provider{}, true)
	headerOnly := mk(Provider{FromHeaders: []HeaderRef{{Name: "Authorization", Prefix: "Bearer "}}}, false)
	custom := mk(Provider{FromParams: []string{"jwt"}}, false)
	for _, c := range []struct {
		name   string
		h      http.Handler
		target string
		auth   []string
		code   int
		body   string
	}{
		{"default: valid query token", def, "/api?access_token=" + good, nil, 200, "principal=https://issuer.example/alice"},
		{"default: invalid query token", def, "/api?access_token=" + bad, nil, 401, "Jwt verification fails"},
		{"default: required, query token", defRequired, "/api?access_token=" + good, nil, 200, "principal=https://issuer.example/alice"},
		{"default: encoded param name", def, "/api?access%5Ftoken=" + bad, nil, 401, "Jwt verification fails"},
		{"default: two query tokens, one bad", def, "/api?access_token=" + good + "&access_token=" + bad, nil, 401, "Jwt"},
		{"default: good header, bad query", def, "/api?access_token=" + bad, []string{"Bearer " + good}, 401, "Jwt"},
		{"repeated Authorization", def, "/api", []string{"Bearer " + good, "Bearer " + bad}, 401, "Jwt"},
		{"Basic then Bearer", def, "/api", []string{"Basic eDp5", "Bearer " + bad}, 401, "Jwt"},
		{"Basic only", def, "/api", []string{"Basic eDp5"}, 200, "principal=none"},
		{"header only: query ignored", headerOnly, "/api?access_token=" + bad, nil, 200, "principal=none"},
		{"custom param", custom, "/api?jwt=" + bad, nil, 401, "Jwt"},
		{"custom param: access_token not read", custom, "/api?access_token=" + bad, nil, 200, "principal=none"},
	} {
		r := httptest.NewRequest("GET", c.target, nil)
		for _, v := range c.auth {
			r.Header.Add("Authorization", v)
		}
		w := httptest.NewRecorder()
		c.h.ServeHTTP(w, r)
		if w.Code != c.code || !strings.HasPrefix(w.Body.String(), c.body) {
			t.Errorf("%s: %d %q, want %d %q", c.name, w.Code, w.Body.String(), c.code, c.body)
		}
	}
}
