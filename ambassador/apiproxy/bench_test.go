package apiproxy

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// BenchmarkDirect and BenchmarkProxied: one request at a time over
// keep-alive connections; the difference is the proxy's added cost.
func BenchmarkDirect(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"data":{}}`) }))
	defer up.Close()
	benchGet(b, up.URL)
}

func BenchmarkProxied(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"data":{}}`) }))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	p := &Proxy{Upstream: u, Token: func() string { return "t" }, Mode: TokenInject, Timeout: time.Minute, Log: slog.New(slog.DiscardHandler)}
	px := httptest.NewServer(p)
	defer px.Close()
	benchGet(b, px.URL)
}

func benchGet(b *testing.B, base string) {
	c := &http.Client{}
	for i := 0; i < b.N; i++ {
		resp, err := c.Get(base + "/v1/secret/data/x")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
