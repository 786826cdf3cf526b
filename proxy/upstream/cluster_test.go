package upstream

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// backend is a real loopback HTTP server that names itself and counts hits.
type backend struct {
	*httptest.Server
	name string
	hits atomic.Int64
}

func newBackend(t testing.TB, name string, h http.HandlerFunc) *backend {
	b := &backend{name: name}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		w.Header().Set("X-Backend", name)
		if h != nil {
			h(w, r)
			return
		}
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "hello from %s", name)
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *backend) addr() string { return strings.TrimPrefix(b.URL, "http://") }

func newCluster(t testing.TB, cfg ClusterConfig) *Cluster {
	t.Helper()
	return newClusterDeps(t, cfg, Deps{})
}

func newClusterDeps(t testing.TB, cfg ClusterConfig, d Deps) *Cluster {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	d.Registry = prometheus.NewRegistry()
	c, err := New(cfg, d)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func get(t testing.TB, c *Cluster, ctx context.Context, method, path string, body io.Reader) (*http.Response, string, *Attempt, error) {
	t.Helper()
	var att Attempt
	req, err := http.NewRequestWithContext(WithAttempt(ctx, &att), method, "http://svc.local"+path, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.RoundTrip(req)
	if err != nil {
		return nil, "", &att, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), &att, err
}

func TestRoundRobinStatic(t *testing.T) {
	a, b := newBackend(t, "a", nil), newBackend(t, "b", nil)
	c := newCluster(t, ClusterConfig{Endpoints: []EndpointConfig{{Address: a.addr()}, {Address: b.addr()}}})
	seen := map[string]int{}
	for range 10 {
		resp, body, att, err := get(t, c, context.Background(), "GET", "/x", nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 || !strings.HasPrefix(body, "hello from ") {
			t.Fatalf("got %d %q", resp.StatusCode, body)
		}
		if att.Tries != 1 || att.Host == "" || len(att.Flags) != 0 {
			t.Fatalf("attempt %+v", att)
		}
		seen[resp.Header.Get("X-Backend")]++
	}
	if seen["a"] != 5 || seen["b"] != 5 {
		t.Fatalf("round robin over 2 endpoints: %v", seen)
	}
	// Keep-alive: 10 requests over at most 2 connections.
	if n := testCounter(c.m.cxTotal); n > 2 {
		t.Fatalf("opened %v connections for 10 sequential requests", n)
	}
}

func TestIdleTimeoutClosesPooledConnections(t *testing.T) {
	b := newBackend(t, "b", nil)
	c := newCluster(t, ClusterConfig{IdleTimeout: 100 * time.Millisecond, Endpoints: []EndpointConfig{{Address: b.addr()}}})
	for range 3 {
		if _, _, _, err := get(t, c, context.Background(), "GET", "/", nil); err != nil {
			t.Fatal(err)
		}
	}
	if testGauge(c.m.cxActive) != 1 || testCounter(c.m.cxTotal) != 1 {
		t.Fatalf("3 sequential requests: %v open, %v opened; want 1 kept alive", testGauge(c.m.cxActive), testCounter(c.m.cxTotal))
	}
	waitFor(t, "the idle connection to close", func() bool { return testGauge(c.m.cxActive) == 0 })
}
