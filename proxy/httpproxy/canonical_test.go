package httpproxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sidecarkit/sidecarkit/proxy/config"
	"github.com/sidecarkit/sidecarkit/proxy/direct"
	"github.com/sidecarkit/sidecarkit/proxy/stats"
)

// TestCanonicalRequest: whatever parsed the request (h1, net/http's
// HTTP/2 server), the handler refuses a method that is not an upper-case
// token and an unnormalisable path with 400 before anything is forwarded,
// and forwards the normalised path it decided on.
func TestCanonicalRequest(t *testing.T) {
	var got atomic.Value
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Method + " " + r.RequestURI)
	}))
	defer app.Close()
	l := config.Listener{Name: "in", Direction: config.Inbound, Target: strings.TrimPrefix(app.URL, "http://")}
	var state atomic.Pointer[Snapshot]
	state.Store(&Snapshot{Listeners: map[string]config.Listener{"in": l}, Config: &config.Config{PathNormalization: "BASE", PathEscapedSlashes: "reject"}})
	h := &Handler{Listener: l, State: &state, Direct: direct.New(direct.Options{}), Metrics: stats.New(prometheus.NewRegistry())}
	for _, c := range []struct {
		method, target string
		proto          int
		code           int
		app            string
	}{
		{"GET", "/a/../b%2e%2e/./c", 1, 200, "GET /b../c"},
		{"GET", `/a\..\admin`, 1, 200, "GET /admin"},
		{"get", "/admin", 1, 400, ""},
		{"delete", "/admin", 2, 400, ""},
		{"Post", "/x", 1, 400, ""},
		{"GE T", "/x", 1, 400, ""},
		{"M-SEARCH", "/x", 1, 200, "M-SEARCH /x"},
		{"GET", "/a%2fb", 1, 400, ""},
		{"GET", "/a%00", 2, 400, ""},
	} {
		got.Store("")
		r := httptest.NewRequest("GET", c.target, nil)
		r.Method, r.ProtoMajor = c.method, c.proto
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		io.Copy(io.Discard, w.Result().Body)
		if w.Code != c.code || got.Load() != c.app {
			t.Errorf("%s %s (HTTP/%d): %d, app got %q; want %d, %q", c.method, c.target, c.proto, w.Code, got.Load(), c.code, c.app)
		}
		if c.code == 400 && c.proto == 1 && w.Header().Get("Connection") != "close" {
			t.Errorf("%s %s: 400 without Connection: close", c.method, c.target)
		}
	}
}
