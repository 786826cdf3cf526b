package authz_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/sidecarkit/sidecarkit/proxy/config"
	"github.com/sidecarkit/sidecarkit/proxy/mtls"
	"github.com/sidecarkit/sidecarkit/proxy/mtls/mtlstest"
	"github.com/sidecarkit/sidecarkit/proxy/server"
	"github.com/sidecarkit/sidecarkit/shared/app"
)

// seen is what the recording app received for one request.
type seen struct {
	Method, URI, Proto string
	Header             http.Header
}

// recordingApp serves HTTP/1.1 and h2c and records, by the X-Case header,
// the exact method, request-target and headers it received.
type recordingApp struct {
	mu   sync.Mutex
	got  map[string]seen
	addr string
}

func startRecordingApp(t *testing.T) *recordingApp {
	t.Helper()
	a := &recordingApp{got: map[string]seen{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protos, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.got[r.Header.Get("X-Case")] = seen{r.Method, r.RequestURI, r.Proto, r.Header.Clone()}
		a.mu.Unlock()
		io.WriteString(w, "app")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	a.addr = ln.Addr().String()
	return a
}

func (a *recordingApp) lookup(id string) (seen, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, ok := a.got[id]
	return s, ok
}

// syncBuf collects the proxy's log.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// runProxy runs the real proxy (server.Run) on a YAML file, reloading it
// when the file changes, until the test ends.
func runProxy(t *testing.T, yamlPath string, args ...string) (map[string]net.Addr, *syncBuf) {
	t.Helper()
	args = append([]string{"--config", yamlPath, "--inbound-addr", "127.0.0.1:0", "--outbound-addr", "127.0.0.1:0", "--prometheus-addr", "", "--drain-timeout", "2s", "--drain-delay", "0s"}, args...)
	c, err := config.Reparse(args, nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	log := &syncBuf{}
	rt := app.NewRuntime("proxy", slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan map[string]net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, rt, c, server.Options{
			ConfigPath: yamlPath,
			Reload:     func() (*config.Config, error) { return config.Reparse(args, nil) },
			Ready:      func(a map[string]net.Addr) { ready <- a },
		})
	}()
	var addrs map[string]net.Addr
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("proxy stopped at start: %v\n%s", err, log.String())
	case <-time.After(30 * time.Second):
		t.Fatal("proxy did not start")
	}
	t.Cleanup(func() {
		rt.Stop()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cancel()
			<-done
		}
		cancel()
		if t.Failed() {
			t.Logf("proxy log:\n%s", log.String())
		}
	})
	return addrs, log
}

// bypassPolicies: the app serves secrets under /admin; DENY /admin* and
// DELETE; ALLOW public paths, /privileged for x-role=admin only, /jwt-only
// for a verified token.
const bypassPolicies = `
      policies:
        - name: deny-admin
          action: DENY
          rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
        - name: deny-delete
          action: DENY
          rules: [{to: [{operation: {methods: [DELETE]}}]}]
        - name: public
          action: ALLOW
          rules: [{to: [{operation: {paths: ["/", "/public*", "/api/*"]}}]}]
        - name: privileged
          action: ALLOW
          rules: [{to: [{operation: {paths: ["/privileged*"]}}], when: [{key: "request.headers[x-role]", values: [admin]}]}]
        - name: jwt-only
          action: ALLOW
          rules: [{to: [{operation: {paths: ["/jwt-only*"]}}], from: [{source: {requestPrincipals: ["https://issuer.example/*"]}}]}]
`

type bypassCase struct {
	name           string
	method, target string
	hdr            [][2]string // lower-case names; repeated names are separate fields/lines
	want           int         // status the client gets
	app            string      // request-target the app must receive; "" = the app must not be reached
	appHdr         [2]string   // a header the app must receive with exactly these values joined by ","
	proto          string      // "h1" or "h2" to limit the case to one protocol
}

// TestPolicyBypass sends every known bypass attempt of issue 22 as raw
// HTTP/1.1 bytes and raw HTTP/2 frames to STRICT, PERMISSIVE (mTLS and
// plaintext) and plaintext listeners of the real proxy, and checks both
// the decision and what the app received (or that it received nothing).
func TestPolicyBypass(t *testing.T) {
	ca := mtlstest.NewCA(t, "mesh")
	srvFiles := ca.Workload(t, "spiffe://cluster.local/ns/shop/sa/orders")
	cliFiles := ca.Workload(t, "spiffe://cluster.local/ns/shop/sa/web")
	a := startRecordingApp(t)

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	set, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	dir := t.TempDir()
	jwks := filepath.Join(dir, "jwks.json")
	os.WriteFile(jwks, set, 0o644)
	sign := func(k *ecdsa.PrivateKey, sub string) string {
		sg, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, (&jose.SignerOptions{}).WithHeader("kid", "k1"))
		s, _ := jwt.Signed(sg).Claims(map[string]any{"iss": "https://issuer.example", "sub": sub, "exp": time.Now().Add(time.Hour).Unix()}).Serialize()
		return s
	}
	good, forged := sign(key, "alice"), sign(other, "mallory")

	mtlsLine := func(mode string) string {
		return fmt.Sprintf("mtls: {mode: %s, cert_file: %s, key_file: %s, ca_file: %s}", mode, srvFiles.CertFile, srvFiles.KeyFile, srvFiles.CAFile)
	}
	var y strings.Builder
	y.WriteString("listeners:\n")
	for _, l := range []struct{ name, mtls string }{{"strict", mtlsLine("STRICT")}, {"permissive", mtlsLine("PERMISSIVE")}, {"plain", ""}} {
		fmt.Fprintf(&y, "  - name: %s\n    address: 127.0.0.1:0\n    direction: inbound\n    target: %s\n", l.name, a.addr)
		if l.mtls != "" {
			fmt.Fprintf(&y, "    %s\n", l.mtls)
		}
		fmt.Fprintf(&y, "    jwt: {providers: [{issuer: https://issuer.example, jwks_file: %s}]}\n    authorization:%s", jwks, bypassPolicies)
	}
	cfgPath := filepath.Join(dir, "proxy.yaml")
	os.WriteFile(cfgPath, []byte(y.String()), 0o644)
	addrs, _ := runProxy(t, cfgPath)

	cli, err := mtls.NewClient(mtls.ClientConfig{Files: cliFiles}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })

	cases := []bypassCase{
		{name: "control: public path", method: "GET", target: "/public/x", want: 200, app: "/public/x"},
		{name: "control: /admin", method: "GET", target: "/admin", want: 403},
		{name: "dot-dot after admin", method: "GET", target: "/admin/..", want: 200, app: "/"},
		{name: "dot-dot into admin", method: "GET", target: "/public/../admin", want: 403},
		{name: "encoded dots into admin", method: "GET", target: "/public/%2e%2e/admin", want: 403},
		{name: "encoded slash after admin", method: "GET", target: "/admin%2f..", want: 403},
		{name: "encoded slash, lower-case hex kept encoded", method: "GET", target: "/public%2fx", want: 200, app: "/public%2Fx"},
		{name: "backslash dot-dot into admin", method: "GET", target: `/public\..\admin`, want: 403},
		{name: "encoded letter", method: "GET", target: "/%61dmin", want: 403},
		{name: "seed: POST /admin/../api/v1/charge", method: "POST", target: "/admin/../api/v1/charge", want: 200, app: "/api/v1/charge"},
		{name: "seed: POST /admin%2f..%2fapi/v1/charge", method: "POST", target: "/admin%2f..%2fapi/v1/charge", want: 403},
		{name: "absolute-form dot-dot into admin", method: "GET", target: "http://orders.shop/public/../admin", want: 403, proto: "h1"},
		{name: "trailing dot segment", method: "GET", target: "/admin/.", want: 403},
		{name: "encoded ? then dot-dot", method: "GET", target: "/public%3F/../admin", want: 403},
		{name: "';' segment is not a dot segment (as Istio)", method: "GET", target: "/public/..;/admin", want: 200, app: "/public/..;/admin"},
		{name: "encoded NUL", method: "GET", target: "/public/%00", want: 400},
		{name: "query keeps its bytes", method: "GET", target: "/public/x?next=/admin/../x", want: 200, app: "/public/x?next=/admin/../x"},
		{name: "DELETE", method: "DELETE", target: "/public/x", want: 403},
		{name: "lower-case method get on /admin", method: "get", target: "/admin", want: 400},
		{name: "lower-case method post on /admin", method: "post", target: "/admin", want: 400},
		{name: "lower-case method delete", method: "delete", target: "/public/x", want: 400, proto: "h2"},
		{name: "mixed-case method Delete", method: "Delete", target: "/public/x", want: 400, proto: "h2"},
		{name: "x-role admin", method: "GET", target: "/privileged", hdr: [][2]string{{"x-role", "admin"}}, want: 200, app: "/privileged", appHdr: [2]string{"X-Role", "admin"}},
		{name: "x-role user + admin", method: "GET", target: "/privileged", hdr: [][2]string{{"x-role", "user"}, {"x-role", "admin"}}, want: 403},
		{name: "x-role admin + user", method: "GET", target: "/privileged", hdr: [][2]string{{"x-role", "admin"}, {"x-role", "user"}}, want: 403},
		{name: "no token on jwt-only", method: "GET", target: "/jwt-only", want: 403},
		{name: "dot-dot into jwt-only, no token", method: "GET", target: "/public/../jwt-only", want: 403},
		{name: "valid ?access_token", method: "GET", target: "/jwt-only?access_token=" + good, want: 200, app: "/jwt-only?access_token=" + good},
		{name: "forged ?access_token", method: "GET", target: "/public/x?access_token=" + forged, want: 401},
		{name: "valid header + forged ?access_token", method: "GET", target: "/jwt-only?access_token=" + forged, hdr: [][2]string{{"authorization", "Bearer " + good}}, want: 401},
		{name: "two Authorization headers", method: "GET", target: "/jwt-only", hdr: [][2]string{{"authorization", "Bearer " + good}, {"authorization", "Bearer " + forged}}, want: 401},
		{name: "forged XFCC", method: "GET", target: "/public/xfcc", hdr: [][2]string{{"x-forwarded-client-cert", "By=spoofed;URI=spiffe://cluster.local/ns/ops/sa/admin"}}, want: 200, app: "/public/xfcc"},
	}

	type conn struct {
		mode, listener string
		tls            bool
	}
	conns := []conn{{"STRICT/mTLS", "strict", true}, {"PERMISSIVE/mTLS", "permissive", true}, {"PERMISSIVE/plaintext", "permissive", false}, {"plaintext", "plain", false}}
	n := 0
	for _, cn := range conns {
		for _, proto := range []string{"h1", "h2"} {
			for _, c := range cases {
				if c.proto != "" && c.proto != proto {
					continue
				}
				n++
				id := fmt.Sprintf("case-%d", n)
				dial := func() (net.Conn, error) {
					addr := addrs[cn.listener].String()
					if !cn.tls {
						return net.DialTimeout("tcp", addr, 5*time.Second)
					}
					cfg := cli.TLSConfig()
					cfg.NextProtos = []string{"http/1.1"}
					if proto == "h2" {
						cfg.NextProtos = []string{"h2"}
					}
					return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
				}
				hdr := append([][2]string{{"x-case", id}}, c.hdr...)
				var status int
				var err error
				if proto == "h1" {
					status, err = rawH1(dial, c.method, c.target, hdr)
				} else {
					status, err = rawH2(dial, cn.tls, c.method, c.target, hdr)
				}
				got, reached := a.lookup(id)
				protoName := map[string]string{"h1": "HTTP/1.1", "h2": "h2c"}[proto]
				if cn.tls && proto == "h2" {
					protoName = "h2 (TLS)"
				}
				appGot := "—"
				if reached {
					appGot = got.Method + " " + got.URI
					if len(appGot) > 60 {
						appGot = appGot[:40] + "…"
					}
					if c.appHdr[0] != "" {
						appGot += fmt.Sprintf(", %s: %s", c.appHdr[0], strings.Join(got.Header.Values(c.appHdr[0]), ","))
					}
				}
				t.Logf("| %s | %s | %s | %d | %s |", c.name, cn.mode, protoName, status, appGot)
				where := fmt.Sprintf("%s, %s, %s %q", c.name, cn.mode, protoName, c.method+" "+c.target)
				if err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				if status != c.want {
					t.Errorf("%s: status %d, want %d (app got %v)", where, status, c.want, appGot)
				}
				switch {
				case c.app == "" && reached:
					t.Errorf("%s: the app received %s %s (want nothing)", where, got.Method, got.URI)
				case c.app != "" && !reached:
					t.Errorf("%s: the app received nothing, want %s", where, c.app)
				case c.app != "" && got.URI != c.app:
					t.Errorf("%s: the app received %q, want %q", where, got.URI, c.app)
				}
				if reached && c.appHdr[0] != "" {
					if v := strings.Join(got.Header.Values(c.appHdr[0]), ","); v != c.appHdr[1] {
						t.Errorf("%s: the app received %s: %q, want %q", where, c.appHdr[0], v, c.appHdr[1])
					}
				}
				if reached {
					xfcc := got.Header.Values("X-Forwarded-Client-Cert")
					switch {
					case cn.tls && (len(xfcc) != 1 || !strings.Contains(xfcc[0], "URI=spiffe://cluster.local/ns/shop/sa/web") || strings.Contains(xfcc[0], "spoofed")):
						t.Errorf("%s: XFCC at the app %q, want only the proxy's", where, xfcc)
					case !cn.tls && len(xfcc) != 0:
						t.Errorf("%s: XFCC at the app %q on a plaintext connection", where, xfcc)
					}
				}
			}
		}
	}
}

// rawH1 sends one request as raw HTTP/1.1 bytes and returns the status (0
// when the connection closed without an answer).
func rawH1(dial func() (net.Conn, error), method, target string, hdr [][2]string) (int, error) {
	c, err := dial()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: orders.shop\r\n", method, target)
	for _, h := range hdr {
		fmt.Fprintf(&b, "%s: %s\r\n", h[0], h[1])
	}
	b.WriteString("Content-Length: 0\r\nConnection: close\r\n\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return 0, nil
		}
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// rawH2 sends one request as raw HTTP/2 frames (x/net/http2's Framer and
// hpack, no client logic) and returns the :status (0 for a stream reset or
// GOAWAY without an answer).
func rawH2(dial func() (net.Conn, error), isTLS bool, method, target string, hdr [][2]string) (int, error) {
	c, err := dial()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if tc, ok := c.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol != "h2" {
		return 0, fmt.Errorf("ALPN negotiated %q, not h2", tc.ConnectionState().NegotiatedProtocol)
	}
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return 0, err
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		return 0, err
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	scheme := "http"
	if isTLS {
		scheme = "https"
	}
	for _, f := range [][2]string{{":method", method}, {":scheme", scheme}, {":authority", "orders.shop"}, {":path", target}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	for _, h := range hdr {
		enc.WriteField(hpack.HeaderField{Name: h[0], Value: h[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		return 0, err
	}
	status := 0
	dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == ":status" {
			fmt.Sscan(f.Value, &status)
		}
	})
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			if status != 0 || err == io.EOF {
				return status, nil
			}
			return status, err
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			if f.StreamID == 1 {
				if _, err := dec.Write(f.HeaderBlockFragment()); err != nil {
					return 0, err
				}
				if f.StreamEnded() {
					return status, nil
				}
			}
		case *http2.DataFrame:
			if f.StreamID == 1 && f.StreamEnded() {
				return status, nil
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				return status, nil
			}
		case *http2.GoAwayFrame:
			if status == 0 {
				return 0, nil
			}
		}
	}
}

// TestBypassWithCurl: the same path decisions with curl as the client
// (--path-as-is keeps the dot segments; --http2-prior-knowledge for h2c).
func TestBypassWithCurl(t *testing.T) {
	bin, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("curl is needed (apt package curl): %v", err)
		}
		t.Skipf("curl not installed: %v", err)
	}
	a := startRecordingApp(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "proxy.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf("listeners:\n  - name: plain\n    address: 127.0.0.1:0\n    direction: inbound\n    target: %s\n    authorization:%s", a.addr, bypassPolicies)), 0o644)
	addrs, _ := runProxy(t, cfgPath)
	base := "http://" + addrs["plain"].String()
	for i, c := range []struct {
		args []string
		want string
		app  string
	}{
		{[]string{"--path-as-is", base + "/public/../admin"}, "403", ""},
		{[]string{"--path-as-is", base + "/admin/../api/v1/charge", "-X", "POST"}, "200", "/api/v1/charge"},
		{[]string{base + "/admin%2f.."}, "403", ""},
		{[]string{"--path-as-is", "--http2-prior-knowledge", base + "/public/../admin"}, "403", ""},
		{[]string{"--http2-prior-knowledge", "-X", "delete", base + "/public/x"}, "400", ""},
		{[]string{"--http2-prior-knowledge", "-H", "x-role: user", "-H", "x-role: admin", base + "/privileged"}, "403", ""},
	} {
		id := fmt.Sprintf("curl-%d", i)
		args := append([]string{"-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "x-case: " + id, "--max-time", "10"}, c.args...)
		out, err := exec.Command(bin, args...).Output()
		got, reached := a.lookup(id)
		if err != nil || string(out) != c.want {
			t.Errorf("curl %v: %q %v, want %s", c.args, out, err, c.want)
		}
		if c.app == "" && reached || c.app != "" && got.URI != c.app {
			t.Errorf("curl %v: app got %q (reached %v), want %q", c.args, got.URI, reached, c.app)
		}
	}
}

// TestRateLimitAcrossReload: route rate-limit buckets are keyed by the
// normalised path (a dot segment or an encoded letter draws from the same
// bucket), and a configuration reload keeps the bucket of a route whose
// rate_limit did not change, while a changed one starts full.
func TestRateLimitAcrossReload(t *testing.T) {
	a := startRecordingApp(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "proxy.yaml")
	write := func(extra string) {
		y := fmt.Sprintf(`listeners:
  - name: plain
    address: 127.0.0.1:0
    direction: inbound
    target: %s
routes:
  - name: api
    listeners: [plain]
    match: {path: {prefix: /api/}}
    rate_limit: {max_tokens: 3, fill_interval: 1h}
  - name: other
    listeners: [plain]
    match: {path: {prefix: /other/}}
    rate_limit: {max_tokens: %s, fill_interval: 1h}
`, a.addr, extra)
		if err := os.WriteFile(cfgPath+".tmp", []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(cfgPath+".tmp", cfgPath); err != nil {
			t.Fatal(err)
		}
	}
	write("1")
	addrs, log := runProxy(t, cfgPath)
	base := "http://" + addrs["plain"].String()
	get := func(path string) int {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	// Three tokens, spent through three spellings of /api/, over
	// HTTP/1.1 (raw bytes), h2c (raw frames) and Go's client.
	dial := func() (net.Conn, error) { return net.Dial("tcp", addrs["plain"].String()) }
	if code, err := rawH1(dial, "GET", `/x\..\api/a`, nil); code != 200 {
		t.Fatalf("HTTP/1.1 GET /x\\..\\api/a: %d %v, want 200", code, err)
	}
	if code, err := rawH2(dial, false, "GET", "/x/../api/b", nil); code != 200 {
		t.Fatalf("h2c GET /x/../api/b: %d %v, want 200", code, err)
	}
	if code := get("/%61pi/c"); code != 200 {
		t.Fatalf("GET /%%61pi/c: %d, want 200", code)
	}
	if code := get("/api/d"); code != 429 {
		t.Fatalf("fourth /api request: %d, want 429 (bucket keyed by the normalised path)", code)
	}
	if code := get("/other/a"); code != 200 {
		t.Fatalf("/other: %d", code)
	}
	if code := get("/other/b"); code != 429 {
		t.Fatalf("/other second: %d, want 429", code)
	}
	// Reload: "other" changes its bucket size, "api" does not.
	reloads := strings.Count(log.String(), `"config reloaded"`)
	write("2")
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(log.String(), `"config reloaded"`) == reloads {
		if time.Now().After(deadline) {
			t.Fatal("configuration not reloaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := get("/api/e"); code != 429 {
		t.Errorf("unchanged route after reload: %d, want 429 (its bucket must survive)", code)
	}
	if code := get("/other/c"); code != 200 {
		t.Errorf("changed route after reload: %d, want 200 (new, full bucket)", code)
	}
}

// TestPathNormalizationOptions: MERGE_SLASHES, DECODE_AND_MERGE_SLASHES,
// --path-escaped-slashes reject and NONE, each deciding on and forwarding
// the same path, over HTTP/1.1 and h2c.
func TestPathNormalizationOptions(t *testing.T) {
	a := startRecordingApp(t)
	for _, c := range []struct {
		args   []string
		target string
		want   int
		app    string
	}{
		{[]string{"--path-normalization", "MERGE_SLASHES"}, "//admin", 403, ""},
		{[]string{"--path-normalization", "MERGE_SLASHES"}, "/public//x", 200, "/public/x"},
		{[]string{"--path-normalization", "MERGE_SLASHES"}, "/public/x%2F%2Fy", 200, "/public/x%2F%2Fy"},
		{[]string{"--path-normalization", "DECODE_AND_MERGE_SLASHES"}, "/admin%2f..%2fapi/v1/charge", 200, "/api/v1/charge"},
		{[]string{"--path-normalization", "DECODE_AND_MERGE_SLASHES"}, "/public%2f..%2fadmin", 403, ""},
		{[]string{"--path-normalization", "DECODE_AND_MERGE_SLASHES"}, "/public%5c..%5cadmin", 403, ""},
		{[]string{"--path-escaped-slashes", "reject"}, "/public%2fx", 400, ""},
		{[]string{"--path-escaped-slashes", "reject"}, "/public/x", 200, "/public/x"},
		{[]string{"--path-normalization", "BASE"}, "//admin", 403, ""},                          // "//admin" is not allowed by any ALLOW rule
		{[]string{"--path-normalization", "NONE"}, "/public/../admin", 200, "/public/../admin"}, // as received, both ways
	} {
		dir := t.TempDir()
		cfgPath := filepath.Join(dir, "proxy.yaml")
		os.WriteFile(cfgPath, []byte(fmt.Sprintf("listeners:\n  - name: plain\n    address: 127.0.0.1:0\n    direction: inbound\n    target: %s\n    authorization:%s", a.addr, bypassPolicies)), 0o644)
		addrs, _ := runProxy(t, cfgPath, c.args...)
		dial := func() (net.Conn, error) { return net.Dial("tcp", addrs["plain"].String()) }
		for _, proto := range []string{"h1", "h2"} {
			id := fmt.Sprintf("%v-%s-%s", c.args, c.target, proto)
			hdr := [][2]string{{"x-case", id}}
			var status int
			var err error
			if proto == "h1" {
				status, err = rawH1(dial, "GET", c.target, hdr)
			} else {
				status, err = rawH2(dial, false, "GET", c.target, hdr)
			}
			got, reached := a.lookup(id)
			if err != nil || status != c.want {
				t.Errorf("%v %s %s: %d %v, want %d", c.args, proto, c.target, status, err, c.want)
			}
			if c.app == "" && reached || c.app != "" && got.URI != c.app {
				t.Errorf("%v %s %s: app got %q (reached %v), want %q", c.args, proto, c.target, got.URI, reached, c.app)
			}
		}
	}
}
