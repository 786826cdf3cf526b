package apiproxy

import (
	"bufio"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The upstream here is an httptest server, not Vault: it streams lines with
// pauses and echoes the token it saw, which Vault cannot be made to do. The
// real-Vault behaviour is tested in the module's TestTokenAuthAndAPIProxy.
func upstream(t *testing.T) *url.URL {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/stream":
			for i := 0; i < 3; i++ {
				io.WriteString(w, "line\n")
				w.(http.Flusher).Flush()
				time.Sleep(200 * time.Millisecond)
			}
		case "/v1/slow":
			time.Sleep(2 * time.Second)
		default:
			w.Header().Set("X-Seen-Token", r.Header.Get("X-Vault-Token"))
			w.Header().Set("X-Seen-Namespace", r.Header.Get("X-Vault-Namespace"))
			w.WriteHeader(418)
			io.WriteString(w, `{"errors":["teapot"]}`)
		}
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u
}

func TestTokenModes(t *testing.T) {
	up := upstream(t)
	for _, c := range []struct {
		mode      TokenMode
		sent, saw string
	}{
		{TokenInject, "", "auto"}, {TokenInject, "mine", "mine"},
		{TokenForce, "", "auto"}, {TokenForce, "mine", "auto"},
		{TokenOff, "", ""}, {TokenOff, "mine", "mine"},
	} {
		p := &Proxy{Upstream: up, Token: func() string { return "auto" }, Mode: c.mode, Namespace: "ns1", Log: slog.New(slog.DiscardHandler)}
		srv := httptest.NewServer(p)
		req, _ := http.NewRequest("GET", srv.URL+"/v1/x", nil)
		if c.sent != "" {
			req.Header.Set("X-Vault-Token", c.sent)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		if got := resp.Header.Get("X-Seen-Token"); got != c.saw {
			t.Errorf("mode %s sent %q: upstream saw %q, want %q", c.mode, c.sent, got, c.saw)
		}
		if resp.StatusCode != 418 || string(b) != `{"errors":["teapot"]}` || resp.Header.Get("X-Seen-Namespace") != "ns1" {
			t.Errorf("response changed: %d %q", resp.StatusCode, b)
		}
	}
}

func TestStreamsAndTimesOut(t *testing.T) {
	up := upstream(t)
	p := &Proxy{Upstream: up, Token: func() string { return "" }, Mode: TokenInject, Timeout: 500 * time.Millisecond, Log: slog.New(slog.DiscardHandler)}
	srv := httptest.NewServer(p)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/v1/stream")
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(resp.Body)
	// The first line arrives while the upstream is still writing: streamed,
	// not buffered (the whole stream outlives the header timeout, too).
	if l, err := r.ReadString('\n'); err != nil || l != "line\n" {
		t.Fatalf("first line: %q %v", l, err)
	}
	rest, _ := io.ReadAll(r)
	resp.Body.Close()
	if string(rest) != "line\nline\n" {
		t.Fatalf("rest: %q", rest)
	}

	resp, err = http.Get(srv.URL + "/v1/slow")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(b), "errors") {
		t.Fatalf("slow upstream: %d %s", resp.StatusCode, b)
	}

	p2 := &Proxy{Upstream: &url.URL{Scheme: "http", Host: "127.0.0.1:1"}, Token: func() string { return "" }, Log: slog.New(slog.DiscardHandler)}
	srv2 := httptest.NewServer(p2)
	defer srv2.Close()
	resp, err = http.Get(srv2.URL + "/v1/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("down upstream: %d", resp.StatusCode)
	}
}
