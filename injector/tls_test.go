package injector

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/shared/logging"
)

func writePair(t *testing.T, dir string, names []string) *x509.Certificate {
	t.Helper()
	c, _, err := generate(names, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	os.WriteFile(filepath.Join(dir, "tls.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600)
	os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)
	leaf, _ := x509.ParseCertificate(c.Certificate[0])
	return leaf
}

// TestCertReload: a renewed pair is served after the files change; a
// half-written pair keeps the previous certificate.
func TestCertReload(t *testing.T) {
	dir := t.TempDir()
	first := writePair(t, dir, []string{"one.example"})
	cfg, ca, err := serving(&Config{TLSCert: filepath.Join(dir, "tls.crt"), TLSKey: filepath.Join(dir, "tls.key")}, logging.Discard())
	if err != nil || ca != nil {
		t.Fatal(err, ca)
	}
	serial := func() string {
		c, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil {
			t.Fatal(err)
		}
		l, _ := x509.ParseCertificate(c.Certificate[0])
		return l.SerialNumber.String()
	}
	if serial() != first.SerialNumber.String() {
		t.Fatal("not the first certificate")
	}
	time.Sleep(1100 * time.Millisecond)
	second := writePair(t, dir, []string{"two.example"})
	if serial() != second.SerialNumber.String() {
		t.Fatal("renewed certificate not served")
	}
	time.Sleep(1100 * time.Millisecond)
	os.WriteFile(filepath.Join(dir, "tls.key"), []byte("half"), 0o600)
	if serial() != second.SerialNumber.String() {
		t.Fatal("a broken pair replaced the good one")
	}
}

func TestGeneratedCertVerifies(t *testing.T) {
	cfg, caPEM, err := serving(&Config{Service: "inj", Namespace: "ns", TLSSANs: []string{"10.0.0.7"}}, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	leaf, _ := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	for _, name := range []string{"inj.ns.svc", "10.0.0.7"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
