package server

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// recorder is a recording upstream: a raw TCP server that keeps every byte
// it receives and answers each complete HTTP/1 request it parses with 200.
// It is the outside witness of what the proxy let through.
type recorder struct {
	ln   net.Listener
	mu   sync.Mutex
	raw  bytes.Buffer
	reqs []string // "METHOD PATH body=N" of each complete request
}

func startRecorder(t *testing.T) *recorder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return r
}

type teeWriter struct{ r *recorder }

func (w teeWriter) Write(p []byte) (int, error) {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	return w.r.raw.Write(p)
}

func (r *recorder) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(io.TeeReader(c, teeWriter{r}))
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			io.Copy(io.Discard, br) // keep recording what arrives
			return
		}
		n, err := io.Copy(io.Discard, req.Body)
		if err != nil {
			io.Copy(io.Discard, br)
			return
		}
		r.mu.Lock()
		r.reqs = append(r.reqs, fmt.Sprintf("%s %s body=%d", req.Method, req.URL.Path, n))
		r.mu.Unlock()
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	}
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.raw.Reset()
	r.reqs = nil
}

func (r *recorder) got() (string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.raw.String(), append([]string(nil), r.reqs...)
}

// step is a write after an optional pause.
type step struct {
	pause time.Duration
	data  string
}

type hostileCase struct {
	name   string
	steps  []step
	status int  // 0: no response expected
	closed bool // the proxy closed the connection after the answer
	// upstream: the complete requests the recorder must have seen, exactly.
	upstream []string
	// never: strings that must not appear anywhere in the upstream's bytes;
	// must: strings that must.
	never, must []string
	listeners   []string // default: every HTTP listener
}

func send(s ...string) []step {
	var out []step
	for _, d := range s {
		out = append(out, step{data: d})
	}
	return out
}

const smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

func hostileCases() []hostileCase {
	pad := func(n int) string { return "X-Pad: " + strings.Repeat("p", n) + "\r\n" }
	var cs []hostileCase
	cs = append(cs,
		hostileCase{name: "plain GET", steps: send("GET /ok HTTP/1.1\r\nHost: a\r\n\r\n"), status: 200, upstream: []string{"GET /ok body=0"},
			must: []string{"X-Request-Id:", "Via: 1.1 sidecarkit"}, never: []string{"User-Agent"}},
		hostileCase{name: "DENY /admin", steps: send("GET /admin/secret HTTP/1.1\r\nHost: a\r\n\r\n"), status: 403},
		hostileCase{name: "G, pause past detect-timeout, rest (/admin)", steps: []step{{0, "G"}, {700 * time.Millisecond, "ET /admin/secret HTTP/1.1\r\nHost: a\r\n\r\n"}}, status: 403},
		hostileCase{name: "lower-case method get /admin", steps: send("get /admin HTTP/1.1\r\nHost: a\r\n\r\n"), status: 400, closed: true},
		hostileCase{name: "unknown method FOO /admin", steps: send("FOO /admin HTTP/1.1\r\nHost: a\r\n\r\n"), status: 400, closed: true},
		hostileCase{name: "QUERY /admin", steps: send("QUERY /admin HTTP/1.1\r\nHost: a\r\n\r\n"), status: 403},
		hostileCase{name: "leading CRLF, GET /admin", steps: send("\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n"), status: 403},
		hostileCase{name: "slowloris from the first byte", steps: slow("GET /ok HTTP/1.1\r\nHost: a\r\n"), status: 408, closed: true},
		hostileCase{name: "slowloris after the request line", steps: append(send("GET /ok HTTP/1.1\r\n"), slow("Host: a\r\nX-A: b\r\n")...), status: 408, closed: true},
		hostileCase{name: "CL.TE", steps: send("POST /ok HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG" + smuggled), status: 400, closed: true},
		hostileCase{name: "TE.CL", steps: send("POST /ok HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n" + smuggled + "\r\n0\r\n\r\n"), status: 400, closed: true},
		hostileCase{name: "TE.TE obfuscated (chunked + x)", steps: send("POST /ok HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n" + smuggled), status: 501, closed: true},
		hostileCase{name: "TE xchunked", steps: send("POST /ok HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + smuggled), status: 501, closed: true},
		hostileCase{name: "TE gzip, chunked (unknown coding)", steps: send("POST /ok HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + smuggled), status: 501, closed: true},
		hostileCase{name: "CL.CL differing", steps: send("POST /ok HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 40\r\n\r\n" + smuggled), status: 400, closed: true},
		hostileCase{name: "chunk extension with BWS (5 ; ext=1)", steps: send("POST /ok HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5 ; ext=1\r\nhello\r\n0\r\n\r\n"), status: 200, upstream: []string{"POST /ok body=5"}},
		hostileCase{name: "Connection names X-Request-ID, Via, X-Forwarded-For, traceparent", steps: send("GET /ok HTTP/1.1\r\nHost: a\r\nConnection: X-Request-ID, Via, X-Forwarded-For, traceparent\r\nX-Request-ID: keep-me\r\n\r\n"), status: 200, upstream: []string{"GET /ok body=0"},
			must: []string{"X-Request-Id: keep-me", "Via: 1.1 sidecarkit", "Traceparent: 00-"}},
		hostileCase{name: "client aborts mid-body", steps: append(send("POST /ok HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789"), step{data: "<FIN>"}), status: 0, closed: true},
		hostileCase{name: "non-HTTP bytes on a listener with a DENY paths policy", steps: send("\x00\x01\x02\x03binary"), status: 0, closed: true, never: []string{"binary"}},
	)
	for _, size := range []int{0, 4200, 20000} {
		cs = append(cs, hostileCase{name: fmt.Sprintf("CL+TE with a %d-byte pad header", size),
			steps:  send("POST /ok HTTP/1.1\r\nHost: a\r\n" + pad(size) + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled),
			status: 400, closed: true})
	}
	for _, size := range []string{"0x10", "-5", strings.Repeat("F", 18), "+5", " 5", "5\n"} {
		cs = append(cs, hostileCase{name: fmt.Sprintf("bad chunk size %q then a request", size),
			steps:  send("POST /ok HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + size + "\r\nhello\r\n0\r\n\r\n" + smuggled),
			status: 400, closed: true})
	}
	// --max-header-bytes 32768 in the suite: exactly at the limit passes, one more byte is 431.
	line := "GET /ok HTTP/1.1\r\nHost: a\r\n"
	at := 32768 - len(line) - len("X-Pad: \r\n") - 2
	cs = append(cs,
		hostileCase{name: "head of exactly --max-header-bytes", steps: send(line + pad(at) + "\r\n"), status: 200, upstream: []string{"GET /ok body=0"}},
		hostileCase{name: "head one byte over --max-header-bytes", steps: send(line + pad(at+1) + "\r\n"), status: 431, closed: true},
		hostileCase{name: "forged X-Forwarded-Client-Cert", steps: send("GET /ok HTTP/1.1\r\nHost: a\r\nX-Forwarded-Client-Cert: By=spiffe://evil;URI=spiffe://evil\r\n\r\n"), status: 200,
			upstream: []string{"GET /ok body=0"}, never: []string{"spiffe://evil"}, listeners: []string{"inbound", "transparent"}},
	)
	return cs
}

// slow sends s one byte at a time, 150 ms apart.
func slow(s string) []step {
	var out []step
	for i := range len(s) {
		out = append(out, step{150 * time.Millisecond, s[i : i+1]})
	}
	return out
}

func writeJWKS(t *testing.T, dir string) string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.Public(), KeyID: "k", Algorithm: "ES256", Use: "sig"}}})
	p := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// hostileProxy starts the proxy with the suite's listeners in front of rec:
// inbound (explicit, target), outbound (explicit, a cluster, no retries),
// transparent (inbound, not redirected here: its target), each with a DENY
// /admin* policy and a JWT provider (token optional); and jwt-required.
func hostileProxy(t *testing.T, rec *recorder) *running {
	jwks := writeJWKS(t, t.TempDir())
	policy := `
    authorization: {policies: [{name: deny-admin, action: DENY, rules: [{to: [{operation: {paths: ["/admin*"]}}]}]}]}
    jwt: {providers: [{issuer: https://issuer.example, jwks_file: ` + jwks + `}]}`
	addr := rec.ln.Addr().String()
	yaml := `
listeners:
  - name: inbound
    address: 127.0.0.1:0
    direction: inbound
    target: ` + addr + policy + `
  - name: outbound
    address: 127.0.0.1:0
    direction: outbound
    cluster: rec` + policy + `
  - name: transparent
    address: 127.0.0.1:0
    direction: inbound
    transparent: true
    target: ` + addr + policy + `
  - name: jwt-required
    address: 127.0.0.1:0
    direction: inbound
    target: ` + addr + `
    jwt: {require: true, providers: [{issuer: https://issuer.example, jwks_file: ` + jwks + `}]}
clusters:
  - name: rec
    endpoints: [{address: ` + addr + `}]
routes:
  - name: rec
    listeners: [outbound]
    cluster: rec
    retries: {attempts: 0}
`
	return startProxy(t, yaml, "--detect-timeout", "300ms", "--header-read-timeout", "2s", "--max-header-bytes", "32768", "--access-log=false")
}

// exchange sends c's steps on a fresh connection and returns the status
// ("0" when none) and whether the proxy closed the connection.
func runHostile(t *testing.T, addr string, c hostileCase) (int, bool) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	for _, s := range c.steps {
		time.Sleep(s.pause)
		if s.data == "<FIN>" {
			conn.(*net.TCPConn).CloseWrite()
			continue
		}
		if _, err := io.WriteString(conn, s.data); err != nil {
			break // the proxy closed early (408/431): what it answered is read below
		}
	}
	br := bufio.NewReader(conn)
	status := 0
	if resp, err := http.ReadResponse(br, nil); err == nil {
		status = resp.StatusCode
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// Closed: EOF (or reset) within a moment; open: the read times out.
	conn.SetReadDeadline(time.Now().Add(400 * time.Millisecond))
	_, err = br.ReadByte()
	closed := err != nil && !isTimeoutErr(err)
	return status, closed
}

func isTimeoutErr(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestHostileClients is the table-driven hostile-client suite: raw bytes
// against every listener kind, a recording upstream, assertions on the
// status, the connection's fate and exactly what reached the upstream.
func TestHostileClients(t *testing.T) {
	rec := startRecorder(t)
	p := hostileProxy(t, rec)
	var table strings.Builder
	fmt.Fprintf(&table, "| case | listener | h1 server | status | closed | at upstream |\n|---|---|---|---|---|---|\n")
	for _, c := range hostileCases() {
		ls := c.listeners
		if ls == nil {
			ls = []string{"inbound", "outbound", "transparent"}
		}
		for _, l := range ls {
			t.Run(c.name+"/"+l, func(t *testing.T) {
				rec.reset()
				status, closed := runHostile(t, p.addrs[l].String(), c)
				time.Sleep(50 * time.Millisecond) // let the upstream side settle
				raw, reqs := rec.got()
				fmt.Fprintf(&table, "| %s | %s | proxy | %s | %v | %s |\n", c.name, l, orDash(status), closed, strings.Join(orNone(reqs), ", "))
				if status != c.status {
					t.Logf("upstream raw: %q", raw)
					t.Errorf("status %d, want %d", status, c.status)
				}
				if closed != c.closed {
					t.Errorf("closed %v, want %v", closed, c.closed)
				}
				if strings.Join(reqs, "|") != strings.Join(c.upstream, "|") {
					t.Errorf("upstream got requests %q, want %q\nraw: %q", reqs, c.upstream, raw)
				}
				for _, s := range append(c.never, "/smuggled", "/admin") {
					if strings.Contains(raw, s) {
						t.Errorf("upstream bytes contain %q:\n%q", s, raw)
					}
				}
				for _, s := range c.must {
					if !strings.Contains(raw, s) {
						t.Errorf("upstream bytes lack %q:\n%q", s, raw)
					}
				}
			})
		}
	}
	t.Run("jwt-required refuses non-HTTP", func(t *testing.T) {
		rec.reset()
		status, closed := runHostile(t, p.addrs["jwt-required"].String(), hostileCase{steps: send("\x00\x01binary")})
		raw, _ := rec.got()
		fmt.Fprintf(&table, "| non-HTTP bytes | jwt-required | proxy | %s | %v | %s |\n", orDash(status), closed, orNoneRaw(raw))
		if status != 0 || !closed || raw != "" {
			t.Errorf("status %d closed %v upstream %q", status, closed, raw)
		}
	})
	t.Run("jwt-required lower-case method", func(t *testing.T) {
		rec.reset()
		status, closed := runHostile(t, p.addrs["jwt-required"].String(), hostileCase{steps: send("get /admin HTTP/1.1\r\nHost: a\r\n\r\n")})
		raw, _ := rec.got()
		fmt.Fprintf(&table, "| lower-case method get /admin | jwt-required | proxy | %s | %v | %s |\n", orDash(status), closed, orNoneRaw(raw))
		if status != 400 || raw != "" {
			t.Errorf("status %d closed %v upstream %q", status, closed, raw)
		}
	})
	t.Logf("hostile-client results:\n%s", table.String())
	if os.Getenv("HOSTILE_TABLE") != "" {
		os.WriteFile(os.Getenv("HOSTILE_TABLE"), []byte(table.String()), 0o644)
	}
}

func orDash(s int) string {
	if s == 0 {
		return "—"
	}
	return fmt.Sprint(s)
}

func orNone(r []string) []string {
	if len(r) == 0 {
		return []string{"nothing"}
	}
	return r
}

func orNoneRaw(raw string) string {
	if raw == "" {
		return "nothing"
	}
	return fmt.Sprintf("%d bytes", len(raw))
}

// TestSlowlorisFromFirstByte opens 500 connections that each send a
// request one byte at a time from the first byte, while a probe keeps
// asking for a page: every slow connection must be answered 408 and closed
// (none becomes a raw TCP pipe), the probes must keep succeeding, and the
// process's RSS must stay bounded.
func TestSlowlorisFromFirstByte(t *testing.T) {
	rec := startRecorder(t)
	p := startProxy(t, "", "--app", rec.ln.Addr().String(), "--detect-timeout", "300ms", "--header-read-timeout", "3s", "--access-log=false")
	addr := p.addrs["inbound"].String()
	const n = 500
	rss0 := rssBytes(t)
	var wg sync.WaitGroup
	results := make(chan int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				results <- -1
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			req := fmt.Sprintf("GET /slow%d HTTP/1.1\r\nHost: a\r\n", i)
			for j := range len(req) {
				if _, err := c.Write([]byte{req[j]}); err != nil {
					break
				}
				time.Sleep(400 * time.Millisecond)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				results <- 0
				return
			}
			results <- resp.StatusCode
		}()
	}
	// Probes while the slow connections are open.
	var peak int64
	client := &http.Client{Timeout: 20 * time.Second}
	var worst time.Duration
	for range 10 {
		time.Sleep(200 * time.Millisecond)
		start := time.Now()
		resp, err := client.Get(p.url("inbound") + "/probe")
		if err != nil {
			t.Fatalf("probe during the slowloris: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("probe status %d", resp.StatusCode)
		}
		worst = max(worst, time.Since(start))
		peak = max(peak, rssBytes(t))
	}
	wg.Wait()
	close(results)
	count := map[int]int{}
	for s := range results {
		count[s]++
	}
	t.Logf("500 slow connections: results %v; probe worst latency %v; RSS %d MiB -> peak %d MiB", count, worst, rss0>>20, peak>>20)
	if count[408] != n {
		t.Errorf("want all %d slow connections answered 408, got %v", n, count)
	}
	_, reqs := rec.got()
	for _, r := range reqs {
		if strings.Contains(r, "/slow") {
			t.Errorf("a slow request reached the upstream: %s", r)
		}
	}
	// Bounded: well under 1 MiB per slow connection (the goroutines,
	// buffers and sockets of both sides of the test live in this process).
	if grow := peak - rss0; grow > n<<20 {
		t.Errorf("RSS grew by %d MiB for %d slow connections", grow>>20, n)
	}
}

func rssBytes(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestClientErrorsDoNotEject: malformed and aborted client bodies on an
// outbound route are the client's fault — 20 of them must not eject the
// only (healthy) endpoint, and a good request still reaches it.
func TestClientErrorsDoNotEject(t *testing.T) {
	rec := startRecorder(t)
	yaml := `
listeners:
  - {name: outbound, address: 127.0.0.1:0, direction: outbound, cluster: rec}
clusters:
  - name: rec
    endpoints: [{address: ` + rec.ln.Addr().String() + `}]
    outlier_detection: {consecutive_5xx: 2, max_ejection_percent: 100, base_ejection_time: 1h, interval: 50ms}
`
	p := startProxy(t, yaml, "--access-log=false")
	addr := p.addrs["outbound"].String()
	for i := range 20 {
		body := "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"
		if i%2 == 1 {
			body = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 50\r\n\r\nshort"
		}
		runHostile(t, addr, hostileCase{steps: append(send(body), step{data: "<FIN>"})})
	}
	s := *p.srv
	s.mu.Lock()
	cl := s.clusters["rec"].c
	s.mu.Unlock()
	for _, e := range cl.Endpoints() {
		if e.Address == rec.ln.Addr().String() && e.Ejected {
			t.Fatalf("client errors ejected the healthy endpoint: %+v", e)
		}
	}
	rec.reset()
	if st, _ := runHostile(t, addr, hostileCase{steps: send("GET /after HTTP/1.1\r\nHost: a\r\n\r\n")}); st != 200 {
		t.Fatalf("good request after the client errors: status %d", st)
	}
}
