package httpproxy

import (
	"net/http"
	"strings"
	"testing"
)

func TestRemoveHopByHop(t *testing.T) {
	h := http.Header{"Connection": {"close, X-Foo"}, "X-Foo": {"1"}, "Keep-Alive": {"5"}, "Te": {"trailers, gzip"},
		"Transfer-Encoding": {"chunked"}, "Upgrade": {"h2c"}, "Proxy-Connection": {"x"}, "X-Keep": {"y"}}
	removeHopByHop(h)
	for _, k := range []string{"Connection", "X-Foo", "Keep-Alive", "Transfer-Encoding", "Upgrade", "Proxy-Connection"} {
		if _, ok := h[k]; ok {
			t.Errorf("%s kept", k)
		}
	}
	if h.Get("Te") != "trailers" || h.Get("X-Keep") != "y" {
		t.Errorf("%v", h)
	}
	if upgradeType(http.Header{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"websocket"}}) != "websocket" {
		t.Error("upgrade not seen")
	}
}

func TestViaXFFTraceparent(t *testing.T) {
	h := http.Header{"Via": {"1.0 a"}}
	appendVia(h, 1, 1, "sk")
	if h.Get("Via") != "1.0 a, 1.1 sk" {
		t.Errorf("via %q", h.Get("Via"))
	}
	h = http.Header{"X-Forwarded-For": {"1.1.1.1"}}
	appendXFF(h, "2.2.2.2")
	if h.Get("X-Forwarded-For") != "1.1.1.1, 2.2.2.2" {
		t.Errorf("xff %q", h.Get("X-Forwarded-For"))
	}
	h = http.Header{}
	tid := ensureTraceparent(h)
	if !validTraceparent(h.Get("Traceparent")) || len(tid) != 32 {
		t.Errorf("new traceparent %q", h.Get("Traceparent"))
	}
	h = http.Header{"Traceparent": {"00-00000000000000000000000000000000-00f067aa0ba902b7-01"}}
	ensureTraceparent(h)
	if strings.Contains(h.Get("Traceparent"), "-00000000000000000000000000000000-") {
		t.Errorf("all-zero trace id kept")
	}
	if newRequestID() == newRequestID() || len(newRequestID()) != 36 || newRequestID()[14] != '4' {
		t.Errorf("request id %q", newRequestID())
	}
}

func FuzzTraceparent(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", "")
	f.Add("zz", "463ac35c9f6413ad", "a2fb4a1d1a96d312")
	f.Fuzz(func(t *testing.T, tp, b3t, b3s string) {
		h := http.Header{}
		if tp != "" {
			h.Set("Traceparent", tp)
		}
		h.Set("X-B3-Traceid", b3t)
		h.Set("X-B3-Spanid", b3s)
		ensureTraceparent(h)
		if !validTraceparent(h.Get("Traceparent")) {
			t.Fatalf("produced invalid traceparent %q from %q/%q/%q", h.Get("Traceparent"), tp, b3t, b3s)
		}
	})
}
