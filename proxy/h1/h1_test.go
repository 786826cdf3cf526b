package h1

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

func TestConflict(t *testing.T) {
	for head, want := range map[string]bool{
		"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n":  true,
		"POST / HTTP/1.1\r\ncontent-length : 1\r\ntransfer-encoding: chunked\r\n\r\n": true,
		"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\n":                                false,
		"GET /a:b HTTP/1.1\r\nX-Transfer-Encoding: x\r\nContent-Length: 0\r\n\r\n":    false,
	} {
		if got := Conflict([]byte(head)); got != want {
			t.Errorf("Conflict(%q) = %v", head, got)
		}
	}
}

func FuzzConflict(f *testing.F) {
	f.Add([]byte("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) { Conflict(b) })
}

// FuzzServeConn feeds arbitrary bytes to the server as a client would; it
// must neither panic nor hang, and every answer must start with a status line.
func FuzzServeConn(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n", "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", "garbage\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s := &Server{MaxHeaderBytes: 4096, ReadHeaderTimeout: time.Second, IdleTimeout: time.Second,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("X-Path", r.URL.Path)
				io.WriteString(w, "ok")
			})}
		client, server := net.Pipe()
		done := make(chan struct{})
		go func() { s.ServeConn(server); close(done) }()
		go func() { client.Write(in); client.(interface{ Close() error }).Close() }()
		out := make(chan []byte, 1)
		go func() { b, _ := io.ReadAll(client); out <- b }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("ServeConn hung on %q", in)
		}
		client.Close()
		if b := <-out; len(b) > 0 && !bytes.HasPrefix(b, []byte("HTTP/1.1 ")) {
			t.Fatalf("answer %q to %q", b, in)
		}
	})
}
