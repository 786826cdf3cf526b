package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestNoSecretsInDumpLogsOrMetrics configures a Consul cluster with an ACL
// token (the agent is unreachable, so discovery logs errors) and checks
// the token appears in no log line, no /config_dump and no metric.
func TestNoSecretsInDumpLogsOrMetrics(t *testing.T) {
	const token = "s3cr3t-acl-token-9f8e7d"
	dead := deadAddr(t)
	p := startProxy(t, `
clusters:
  - name: shop
    consul: {service: shop, addr: `+dead+`, token: `+token+`}
routes:
  - name: shop
    cluster: shop
`, "--startup-timeout", "0")
	admin := httptest.NewServer(p.rt.Admin)
	defer admin.Close()
	if resp, err := http.Get(p.url("outbound") + "/x"); err == nil { // no endpoints: 503 UH, logged
		resp.Body.Close()
	}
	time.Sleep(500 * time.Millisecond)
	for _, path := range []string{"/config_dump", "/stats", "/metrics", "/readyz?verbose"} {
		resp, err := http.Get(admin.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), token) {
			t.Errorf("%s shows the token", path)
		}
		if path == "/config_dump" && !strings.Contains(string(b), "[redacted]") {
			t.Errorf("/config_dump does not mark the token redacted:\n%s", b)
		}
	}
	if strings.Contains(p.log.String(), token) {
		t.Errorf("the token is in the log")
	}
}
