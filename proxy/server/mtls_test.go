package server

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sidecarkit/sidecarkit/proxy/mtls/mtlstest"
)

// TestDoubleProxyMTLS is the seed's "double proxy": app → client sidecar
// (outbound cluster originating mTLS) → server sidecar (inbound STRICT) →
// app. The server app sees the client's SPIFFE identity in XFCC; a
// plaintext client is refused; authz can use the principal.
func TestDoubleProxyMTLS(t *testing.T) {
	ca := mtlstest.NewCA(t, "mesh")
	srvFiles := ca.Workload(t, "spiffe://cluster.local/ns/shop/sa/orders")
	cliFiles := ca.Workload(t, "spiffe://cluster.local/ns/shop/sa/web")
	app, hits := startEcho(t, "orders")
	server := startProxy(t, fmt.Sprintf(`
listeners:
  - name: inbound
    address: 127.0.0.1:0
    direction: inbound
    target: %s
    mtls: {mode: STRICT, cert_file: %s, key_file: %s, ca_file: %s}
    authorization:
      policies:
        - name: only-web
          action: ALLOW
          rules: [{from: [{source: {principals: ["cluster.local/ns/shop/sa/web"]}}]}]
`, app, srvFiles.CertFile, srvFiles.KeyFile, srvFiles.CAFile))
	client := startProxy(t, fmt.Sprintf(`
clusters:
  - name: orders
    endpoints: [{address: %s}]
    tls: {cert_file: %s, key_file: %s, ca_file: %s, match_sans: ["spiffe://cluster.local/ns/shop/sa/orders"]}
routes:
  - name: orders
    cluster: orders
`, server.addrs["inbound"], cliFiles.CertFile, cliFiles.KeyFile, cliFiles.CAFile))

	req, _ := http.NewRequest("GET", client.url("outbound")+"/buy", nil)
	req.Header.Set("X-Forwarded-Client-Cert", "By=spoofed")
	resp, e := getJSON(t, nil, req)
	if resp.StatusCode != 200 || e.Backend != "orders" {
		t.Fatalf("double proxy: %d %+v", resp.StatusCode, e)
	}
	xfcc := e.Header.Get("X-Forwarded-Client-Cert")
	if !strings.Contains(xfcc, "URI=spiffe://cluster.local/ns/shop/sa/web") || !strings.Contains(xfcc, "By=spiffe://cluster.local/ns/shop/sa/orders") || strings.Contains(xfcc, "spoofed") {
		t.Errorf("xfcc = %q", xfcc)
	}
	if e.Header.Get("X-Forwarded-Proto") != "https" {
		t.Errorf("x-forwarded-proto = %q", e.Header.Get("X-Forwarded-Proto"))
	}
	// Plaintext straight to the STRICT inbound is refused.
	before := hits.get()
	if r, err := http.Get(server.url("inbound") + "/plain"); err == nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		t.Errorf("plaintext got HTTP %d from a STRICT listener", r.StatusCode)
	}
	if hits.get() != before {
		t.Errorf("plaintext request reached the app")
	}
}
