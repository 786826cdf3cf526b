package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHTTP1ServerDetails drives the HTTP/1.x server over raw sockets:
// keep-alive and pipelining, a smuggling attempt on a follow-up request,
// HTTP/1.0, HEAD, Expect: 100-continue, chunked responses with trailers.
func TestHTTP1ServerDetails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hits := 0
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		b, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			w.WriteHeader(200)
			io.WriteString(w, "part1")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part2")
			w.Header().Set("X-Sum", "42")
		default:
			fmt.Fprintf(w, "%s %s %d", r.Method, r.URL.Path, len(b))
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	p := startProxy(t, "", "--app", ln.Addr().String())
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", p.addrs["inbound"].String())
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(20 * time.Second))
		return c, bufio.NewReader(c)
	}
	read := func(br *bufio.Reader, method string) (*http.Response, string) {
		t.Helper()
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("read response: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}

	// Pipelined keep-alive requests, then a smuggling attempt on the third.
	c, br := dial()
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
	if _, b := read(br, "GET"); b != "GET /a 0" {
		t.Errorf("first pipelined: %q", b)
	}
	if _, b := read(br, "POST"); b != "POST /b 3" {
		t.Errorf("second pipelined: %q", b)
	}
	before := hits
	io.WriteString(c, "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	if resp, _ := read(br, "POST"); resp.StatusCode != 400 {
		t.Errorf("CL+TE on a keep-alive follow-up: %d", resp.StatusCode)
	}
	if hits != before {
		t.Errorf("the smuggling attempt reached the app")
	}
	c.Close()

	// HTTP/1.0 closes after the response; HEAD has no body.
	c, br = dial()
	io.WriteString(c, "GET /old HTTP/1.0\r\n\r\n")
	if _, b := read(br, "GET"); b != "GET /old 0" {
		t.Errorf("HTTP/1.0: %q", b)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("HTTP/1.0 connection not closed: %v", err)
	}
	c.Close()
	c, br = dial()
	io.WriteString(c, "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /after-head HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, b := read(br, "HEAD"); resp.StatusCode != 200 || b != "" {
		t.Errorf("HEAD: %d %q", resp.StatusCode, b)
	}
	if _, b := read(br, "GET"); b != "GET /after-head 0" {
		t.Errorf("after HEAD: %q", b)
	}
	c.Close()

	// Expect: 100-continue gets a 100 before the body is sent.
	c, br = dial()
	io.WriteString(c, "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	line, _ := br.ReadString('\n')
	if !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("no 100 Continue: %q", line)
	}
	br.ReadString('\n')
	io.WriteString(c, "hello")
	if _, b := read(br, "POST"); b != "POST /e 5" {
		t.Errorf("after 100-continue: %q", b)
	}
	c.Close()

	// A streamed response with a trailer.
	c, br = dial()
	io.WriteString(c, "GET /trailer HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, b := read(br, "GET")
	if b != "part1part2" || resp.Trailer.Get("X-Sum") != "42" {
		t.Errorf("trailer response: %q trailer %v", b, resp.Trailer)
	}
	c.Close()
}
