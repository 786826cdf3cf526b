package server

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestPolicyMiddleware wires engineer B's packages into the route and
// listener chains: authorization on the inbound listener, local rate limit
// and fault abort on routes, with their response flags in the access log.
func TestPolicyMiddleware(t *testing.T) {
	app, hits := startEcho(t, "app")
	up, _ := startEcho(t, "up")
	yaml := fmt.Sprintf(`
listeners:
  - name: inbound
    address: 127.0.0.1:0
    direction: inbound
    target: %s
    authorization:
      policies:
        - name: no-admin
          action: DENY
          rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
  - name: outbound
    address: 127.0.0.1:0
    direction: outbound
routes:
  - name: limited
    match: {path: {prefix: /limited}}
    cluster: up
    rate_limit: {max_tokens: 2, fill_interval: 1h}
  - name: broken
    match: {path: {prefix: /broken}}
    cluster: up
    fault: {abort: {http_status: 503, percentage: 100}}
clusters:
  - name: up
    endpoints: [{address: %s}]
`, app, up)
	p := startProxy(t, yaml)
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, b := get(p.url("inbound") + "/admin/x"); code != 403 || !strings.Contains(b, "RBAC: access denied") {
		t.Errorf("authz deny: %d %q", code, b)
	}
	if hits.get() != 0 {
		t.Errorf("a denied request reached the app")
	}
	if code, _ := get(p.url("inbound") + "/public"); code != 200 {
		t.Errorf("authz allow: %d", code)
	}
	codes := []int{}
	for i := 0; i < 3; i++ {
		code, _ := get(p.url("outbound") + "/limited")
		codes = append(codes, code)
	}
	if fmt.Sprint(codes) != "[200 200 429]" {
		t.Errorf("rate limit codes %v", codes)
	}
	if code, _ := get(p.url("outbound") + "/broken"); code != 503 {
		t.Errorf("fault abort: %d", code)
	}
	waitFor(t, func() bool {
		flags := map[string]bool{}
		for _, l := range p.log.Lines("access") {
			flags[fmt.Sprintf("%v %v", l["status"], l["response_flags"])] = true
		}
		return flags["429 RL"] && flags["503 FI"] && flags["403 -"]
	})
}
