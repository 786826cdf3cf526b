package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/proxy/config"
	"github.com/sidecarkit/sidecarkit/shared/app"
)

// syncBuffer collects log lines from the proxy under test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// Lines returns the JSON log records whose msg is msg.
func (s *syncBuffer) Lines(msg string) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(s.b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// running is a proxy started in-process by a test.
type running struct {
	t     *testing.T
	rt    *app.Runtime
	srv   **Server
	addrs map[string]net.Addr
	log   *syncBuffer
	done  chan error
	path  string
	stop  context.CancelFunc
}

func (r *running) url(listener string) string { return "http://" + r.addrs[listener].String() }

// startProxy runs the proxy with args (listeners on port 0 unless given) and
// an optional YAML file; it is stopped at cleanup.
func startProxy(t *testing.T, yaml string, args ...string) *running {
	t.Helper()
	base := []string{"--inbound-addr", "127.0.0.1:0", "--outbound-addr", "127.0.0.1:0", "--prometheus-addr", "127.0.0.1:0", "--drain-timeout", "5s"}
	path := ""
	if yaml != "" {
		path = filepath.Join(t.TempDir(), "proxy.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
		base = append(base, "--config", path)
	}
	args = append(base, args...)
	c, err := config.Reparse(args, nil)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	buf := &syncBuffer{}
	rt := app.NewRuntime("proxy", slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	rt.Common.DrainTimeout = 5 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{t: t, rt: rt, log: buf, done: make(chan error, 1), path: path, stop: cancel}
	ready := make(chan map[string]net.Addr, 1)
	var s *Server
	r.srv = &s
	go func() {
		r.done <- Run(ctx, rt, c, Options{
			ConfigPath: path,
			Reload:     func() (*config.Config, error) { return config.Reparse(args, nil) },
			Ready:      func(a map[string]net.Addr) { ready <- a },
			server:     &s,
		})
	}()
	select {
	case r.addrs = <-ready:
	case err := <-r.done:
		t.Fatalf("proxy stopped at start: %v\n%s", err, buf.String())
	case <-time.After(30 * time.Second):
		t.Fatal("proxy did not start")
	}
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		r.rt.Stop()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			cancel()
			<-r.done
		}
		cancel()
		if t.Failed() {
			t.Logf("proxy log:\n%s", buf.String())
		}
	})
	return r
}

// echo is a backend that answers with what it received.
type echoReply struct {
	Method     string      `json:"method"`
	Host       string      `json:"host"`
	Path       string      `json:"path"`
	Proto      string      `json:"proto"`
	Header     http.Header `json:"header"`
	RemoteAddr string      `json:"remote_addr"`
	BodyLen    int64       `json:"body_len"`
	Backend    string      `json:"backend"`
}

func startEcho(t *testing.T, name string) (addr string, hits *int64s) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &int64s{}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protos, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.add()
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Backend", name)
		json.NewEncoder(w).Encode(echoReply{r.Method, r.Host, r.URL.Path, r.Proto, r.Header, r.RemoteAddr, n, name})
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), h
}

type int64s struct {
	mu sync.Mutex
	n  int64
}

func (i *int64s) add()       { i.mu.Lock(); i.n++; i.mu.Unlock() }
func (i *int64s) get() int64 { i.mu.Lock(); defer i.mu.Unlock(); return i.n }

func getJSON(t *testing.T, c *http.Client, req *http.Request) (*http.Response, echoReply) {
	t.Helper()
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var e echoReply
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("echo reply %q: %v", body, err)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, e
}
