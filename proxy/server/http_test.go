package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestExplicitHTTP1HeadersAndAccessLog(t *testing.T) {
	app, _ := startEcho(t, "app")
	up, _ := startEcho(t, "upstream")
	p := startProxy(t, "", "--app", app, "--upstream", "http://"+up)

	// Inbound: X-Request-ID generated and echoed, Via, XFF, traceparent started, hop-by-hop removed.
	req, _ := http.NewRequest("GET", p.url("inbound")+"/hello", nil)
	req.Header.Set("Connection", "keep-alive, X-Hop")
	req.Header.Set("X-Hop", "secret-hop")
	req.Header.Set("Keep-Alive", "timeout=5")
	resp, e := getJSON(t, nil, req)
	if resp.StatusCode != 200 || e.Backend != "app" || e.Path != "/hello" {
		t.Fatalf("inbound: %d %+v", resp.StatusCode, e)
	}
	rid := e.Header.Get("X-Request-Id")
	if len(rid) != 36 || resp.Header.Get("X-Request-Id") != rid {
		t.Errorf("x-request-id upstream %q, echoed %q", rid, resp.Header.Get("X-Request-Id"))
	}
	if got := e.Header.Get("Via"); got != "1.1 sidecarkit" {
		t.Errorf("via upstream = %q", got)
	}
	if !strings.Contains(resp.Header.Get("Via"), "sidecarkit") {
		t.Errorf("via on response = %q", resp.Header.Get("Via"))
	}
	if got := e.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("xff = %q", got)
	}
	if got := e.Header.Get("X-Forwarded-Proto"); got != "http" {
		t.Errorf("xfp = %q", got)
	}
	if tp := e.Header.Get("Traceparent"); !validTraceparentForTest(tp) {
		t.Errorf("traceparent = %q", tp)
	}
	for _, h := range []string{"X-Hop", "Keep-Alive", "Connection"} {
		if e.Header.Get(h) != "" {
			t.Errorf("hop-by-hop header %s forwarded: %q", h, e.Header.Get(h))
		}
	}
	// The app is dialed from 127.0.0.6.
	if !strings.HasPrefix(e.RemoteAddr, "127.0.0.6:") {
		t.Errorf("app saw remote %s, want 127.0.0.6", e.RemoteAddr)
	}

	// Outbound, with a given request id, a traceparent and B3 kept.
	req, _ = http.NewRequest("POST", p.url("outbound")+"/x", strings.NewReader("abc"))
	req.Header.Set("X-Request-Id", "rid-1")
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req.Header.Set("Traceparent", tp)
	req.Header.Set("Tracestate", "a=b")
	req.Header.Set("X-B3-Traceid", "4bf92f3577b34da6a3ce929d0e0e4736")
	resp, e = getJSON(t, nil, req)
	if resp.StatusCode != 200 || e.Backend != "upstream" || e.BodyLen != 3 {
		t.Fatalf("outbound: %d %+v", resp.StatusCode, e)
	}
	if e.Header.Get("X-Request-Id") != "rid-1" || resp.Header.Get("X-Request-Id") != "rid-1" {
		t.Errorf("request id not kept: %q / %q", e.Header.Get("X-Request-Id"), resp.Header.Get("X-Request-Id"))
	}
	if e.Header.Get("Traceparent") != tp || e.Header.Get("Tracestate") != "a=b" || e.Header.Get("X-B3-Traceid") == "" {
		t.Errorf("trace headers not propagated: %v", e.Header)
	}
	if e.Header.Get("X-Forwarded-For") != "" {
		t.Errorf("outbound added XFF %q", e.Header.Get("X-Forwarded-For"))
	}

	// B3 only: traceparent derived from it.
	req, _ = http.NewRequest("GET", p.url("outbound")+"/b3", nil)
	req.Header.Set("X-B3-Traceid", "463ac35c9f6413ad")
	req.Header.Set("X-B3-Spanid", "a2fb4a1d1a96d312")
	req.Header.Set("X-B3-Sampled", "0")
	_, e = getJSON(t, nil, req)
	if got := e.Header.Get("Traceparent"); got != "00-0000000000000000463ac35c9f6413ad-a2fb4a1d1a96d312-00" {
		t.Errorf("traceparent from b3 = %q", got)
	}

	// Access log lines.
	waitFor(t, func() bool { return len(p.log.Lines("access")) >= 3 })
	var found bool
	for _, l := range p.log.Lines("access") {
		if l["request_id"] == "rid-1" {
			found = true
			if l["method"] != "POST" || l["status"].(float64) != 200 || l["bytes_received"].(float64) != 3 ||
				l["cluster"] != "upstream" || l["upstream_host"] != up || l["response_flags"] != "-" || l["listener"] != "outbound" {
				t.Errorf("access line: %v", l)
			}
		}
	}
	if !found {
		t.Errorf("no access line for rid-1:\n%s", p.log.String())
	}
}

func validTraceparentForTest(v string) bool {
	return len(v) == 55 && strings.HasPrefix(v, "00-") && v[35] == '-' && v[52] == '-'
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 1500; i++ {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("condition not reached in 30s")
}

func TestRoutesMatchAndHeaders(t *testing.T) {
	a, _ := startEcho(t, "a")
	b, _ := startEcho(t, "b")
	c, _ := startEcho(t, "c")
	yaml := fmt.Sprintf(`
routes:
  - name: canary
    match:
      hosts: [orders]
      headers: [{name: x-canary, exact: "true"}]
    cluster: c
  - name: api
    match:
      hosts: [orders, "*.orders.svc"]
      path: {prefix: /api/}
    cluster: b
    request_headers_add: [{name: x-env, value: prod}]
    request_headers_remove: [x-debug]
    response_headers_add: [{name: x-served-by, value: sidecar}]
    response_headers_remove: [x-backend]
  - name: exact
    match: {path: {exact: /only}}
    cluster: a
clusters:
  - name: a
    endpoints: [{address: %s}]
  - name: b
    endpoints: [{address: %s}]
  - name: c
    endpoints: [{address: %s}]
`, a, b, c)
	p := startProxy(t, yaml)
	cases := []struct {
		host, path string
		hdr        map[string]string
		want       string
		status     int
	}{
		{"orders", "/api/v1", nil, "b", 200},
		{"x.orders.svc:8080", "/api/v1", nil, "b", 200},
		{"orders", "/api/v1", map[string]string{"X-Canary": "true"}, "c", 200},
		{"orders", "/other", nil, "", 404},
		{"any", "/only", nil, "a", 200},
		{"any", "/only/not", nil, "", 404},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest("GET", p.url("outbound")+tc.path, nil)
		req.Host = tc.host
		req.Header.Set("X-Debug", "1")
		for k, v := range tc.hdr {
			req.Header.Set(k, v)
		}
		resp, e := getJSON(t, nil, req)
		if resp.StatusCode != tc.status || e.Backend != tc.want {
			t.Errorf("%s%s %v: got %d %q, want %d %q", tc.host, tc.path, tc.hdr, resp.StatusCode, e.Backend, tc.status, tc.want)
			continue
		}
		if tc.want == "b" {
			if e.Header.Get("X-Env") != "prod" || e.Header.Get("X-Debug") != "" {
				t.Errorf("request headers add/remove: %v", e.Header)
			}
			if resp.Header.Get("X-Served-By") != "sidecar" || resp.Header.Get("X-Backend") != "" {
				t.Errorf("response headers add/remove: %v", resp.Header)
			}
		}
		if tc.status == 404 {
			waitFor(t, func() bool {
				for _, l := range p.log.Lines("access") {
					if l["response_flags"] == "NR" {
						return true
					}
				}
				return false
			})
		}
	}
}

func TestH2CPriorKnowledge(t *testing.T) {
	app, _ := startEcho(t, "app")
	p := startProxy(t, "", "--app", app)
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: &protos}}
	req, _ := http.NewRequest("POST", p.url("inbound")+"/grpc-ish", strings.NewReader("hello"))
	resp, e := getJSON(t, c, req)
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("status %d proto %s", resp.StatusCode, resp.Proto)
	}
	if e.Proto != "HTTP/2.0" || e.BodyLen != 5 || e.Header.Get("Via") != "2 sidecarkit" {
		t.Errorf("app saw %+v", e)
	}
}

func TestMalformedRequests(t *testing.T) {
	app, hits := startEcho(t, "app")
	p := startProxy(t, "routes: [{name: capped, listeners: [inbound], match: {path: {prefix: /capped}}, max_request_body_bytes: 10}]\n",
		"--app", app, "--max-header-bytes", "4096")
	addr := p.addrs["inbound"].String()
	raw := func(req string) string {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, req)
		line, _ := bufio.NewReader(c).ReadString('\n')
		return strings.TrimSpace(line)
	}
	cases := []struct{ name, req, want string }{
		{"cl and te", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"two content lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", "HTTP/1.1 400"},
		{"bad request line", "GET /x HTTP/1.1 junk\r\nHost: a\r\n\r\n", "HTTP/1.1 400"},
		{"bad header name", "GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n", "HTTP/1.1 400"},
		{"no host", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400"},
		{"huge header", "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("a", 20000) + "\r\n\r\n", "HTTP/1.1 431"},
		{"body over cap", "POST /capped HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world", "HTTP/1.1 413"},
		{"chunked body over cap", "POST /capped HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n", "HTTP/1.1 413"},
	}
	for _, tc := range cases {
		if got := raw(tc.req); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	if n := hits.get(); n != 0 {
		t.Errorf("the app received %d malformed requests", n)
	}
	// Within the cap it is forwarded.
	if got := raw("POST /capped HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"); got != "HTTP/1.1 200 OK" {
		t.Errorf("small chunked body: %q", got)
	}
}

func TestHeaderReadTimeout(t *testing.T) {
	app, _ := startEcho(t, "app")
	p := startProxy(t, "", "--app", app, "--header-read-timeout", "300ms", "--detect-timeout", "300ms")
	c, err := net.Dial("tcp", p.addrs["inbound"].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n") // never finishes the head
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("the proxy did not close the slow connection: %v", err)
	}
	_ = b
}

func TestUpstreamFailureFlags(t *testing.T) {
	dead := deadAddr(t)
	p := startProxy(t, "", "--app", dead, "--upstream", "http://"+dead)
	for _, l := range []string{"inbound", "outbound"} {
		resp, err := http.Get(p.url(l) + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Errorf("%s: status %d, want 503", l, resp.StatusCode)
		}
	}
	waitFor(t, func() bool {
		n := 0
		for _, l := range p.log.Lines("access") {
			if strings.Contains(l["response_flags"].(string), "UF") {
				n++
			}
		}
		return n == 2
	})
}

func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func TestRawTCPHalfCloseAndServerFirst(t *testing.T) {
	// A backend that reads everything until EOF, then answers and closes:
	// only works when the proxy passes the client's half-close on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.Write([]byte("220 hello\n")) // server speaks first
				b, _ := io.ReadAll(c)
				fmt.Fprintf(c, "got %d bytes", len(b))
			}()
		}
	}()
	p := startProxy(t, "", "--app", ln.Addr().String(), "--detect-timeout", "200ms")
	c, err := net.Dial("tcp", p.addrs["inbound"].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	greet, err := br.ReadString('\n')
	if err != nil || greet != "220 hello\n" {
		t.Fatalf("server-first greeting: %q %v", greet, err)
	}
	payload := strings.Repeat("\x00binary\xff", 100000)
	io.WriteString(c, payload)
	c.(*net.TCPConn).CloseWrite()
	rest, _ := io.ReadAll(br)
	if want := fmt.Sprintf("got %d bytes", len(payload)); string(rest) != want {
		t.Fatalf("got %q, want %q", rest, want)
	}
}

func TestTLSPassthroughBySNI(t *testing.T) {
	mk := func(name string) *httptest.Server {
		s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, name)
		}))
		s.StartTLS()
		t.Cleanup(s.Close)
		return s
	}
	a, b := mk("a"), mk("b")
	yaml := fmt.Sprintf(`
listeners:
  - name: outbound
    address: 127.0.0.1:0
    direction: outbound
    cluster: a
    sni:
      - names: ["*.b.example"]
        cluster: b
clusters:
  - name: a
    endpoints: [{address: %s}]
  - name: b
    endpoints: [{address: %s}]
`, strings.TrimPrefix(a.URL, "https://"), strings.TrimPrefix(b.URL, "https://"))
	p := startProxy(t, yaml)
	for sni, want := range map[string]string{"x.b.example": "b", "other.example": "a"} {
		c := &http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: sni},
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "tcp", p.addrs["outbound"].String())
			},
		}}
		resp, err := c.Get("https://" + sni + "/")
		if err != nil {
			t.Fatalf("sni %s: %v", sni, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != want {
			t.Errorf("sni %s reached %q, want %q", sni, body, want)
		}
		c.CloseIdleConnections()
	}
	waitFor(t, func() bool {
		for _, l := range p.log.Lines("access") {
			if l["server_name"] == "x.b.example" && l["protocol"] == "tls" && l["cluster"] == "b" {
				return true
			}
		}
		return false
	})
}
