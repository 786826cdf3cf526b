package ambassador_test

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// A PKI certificate with a short life is re-issued before it expires.
func TestPKIReissuedBeforeExpiry(t *testing.T) {
	v := testenv.StartVault(t)
	dir := t.TempDir()
	out := t.TempDir()
	cli(t, v, "secrets", "enable", "pki")
	cli(t, v, "secrets", "tune", "-max-lease-ttl=24h", "pki")
	cli(t, v, "write", "pki/root/generate/internal", "common_name=test-root", "ttl=24h")
	cli(t, v, "write", "pki/roles/web", "allowed_domains=example.com", "allow_subdomains=true", "max_ttl=1h")
	tokenFile := writeFile(t, filepath.Join(dir, "token"), v.Token)
	cfg := writeFile(t, filepath.Join(dir, "amb.yaml"), `
secrets:
  - path: pki/issue/web
    params: {common_name: a.example.com, ttl: 6s}
    key: certificate
    destination: `+out+`/web.crt
  - destination: `+out+`/web.key
    template: '{{ with secret "pki/issue/web" "common_name=a.example.com" "ttl=6s" }}{{ .Data.private_key }}{{ end }}'
`)
	a := startAmb(t, []string{"--config", cfg, "--token-file", tokenFile}, "VAULT_ADDR="+v.Addr)
	a.ready(60 * time.Second)
	serial := func() (string, time.Time) { // serial number, expiry
		b, _ := pem.Decode([]byte(readFile(t, out+"/web.crt")))
		if b == nil {
			t.Fatal("web.crt is not PEM")
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c.SerialNumber.String(), c.NotAfter
	}
	s1, _ := serial()
	secret("private key", readFile(t, out+"/web.key"))
	eventually(t, 30*time.Second, "certificate re-issued", func() error {
		if s, _ := serial(); s == s1 {
			return fmt.Errorf("same serial")
		}
		return nil
	})
	secret("private key 2", readFile(t, out+"/web.key"))
}
