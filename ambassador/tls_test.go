package ambassador_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tlsFiles are a CA, a server certificate for 127.0.0.1 and a client
// certificate, as PEM files, plus an HTTP client that trusts the CA and
// presents the client certificate.
type tlsFiles struct {
	ca, serverCert, serverKey, clientCert, clientKey string
	client                                           *http.Client
}

func makeTLS(t *testing.T) *tlsFiles {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
		return p
	}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kd, _ := x509.MarshalPKCS8PrivateKey(k)
		return write(name+".crt", "CERTIFICATE", der), write(name+".key", "PRIVATE KEY", kd)
	}
	f := &tlsFiles{ca: write("ca.crt", "CERTIFICATE", caDER)}
	f.serverCert, f.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	f.clientCert, f.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	cc, err := tls.LoadX509KeyPair(f.clientCert, f.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	f.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cc}}}}
	return f
}

// Vault over TLS that requires a client certificate: VAULT_CACERT and the
// client certificate flags are honoured, by the secrets and by the proxy.
func TestTLSVaultWithClientCert(t *testing.T) {
	tf := makeTLS(t)
	v, _ := startServerVault(t, tf)
	flags := []string{"-ca-cert=" + tf.ca, "-client-cert=" + tf.clientCert, "-client-key=" + tf.clientKey}
	run := func(args ...string) string {
		return cli(t, v, append(append([]string{args[0], args[1]}, flags...), args[2:]...)...)
	}
	run("secrets", "enable", "-path=secret", "-version=2", "kv")
	val := secret("tls value", fmt.Sprintf("tls-%d", time.Now().UnixNano()))
	run("kv", "put", "secret/app", "password="+val)
	out := t.TempDir()
	tokenFile := writeFile(t, filepath.Join(t.TempDir(), "token"), v.Token)

	// Without the client certificate Vault refuses the TLS handshake: no login, not ready.
	bad := startAmb(t, []string{"--token-file", tokenFile, "--secret", out + "/bad=secret/app#password"}, "VAULT_ADDR="+v.Addr, "VAULT_CACERT="+tf.ca)
	eventually(t, 30*time.Second, "login fails without a client certificate", func() error {
		if !strings.Contains(bad.logText(), "vault login failed") {
			return fmt.Errorf("no failed login yet")
		}
		return nil
	})
	bad.stop()

	a := startAmb(t, []string{"--token-file", tokenFile, "--secret", out + "/pw=secret/app#password",
		"--vault-client-cert", tf.clientCert, "--vault-client-key", tf.clientKey}, "VAULT_ADDR="+v.Addr, "VAULT_CACERT="+tf.ca)
	a.ready(60 * time.Second)
	if got := readFile(t, out+"/pw"); got != val {
		t.Fatalf("pw: %q", got)
	}
	// The app speaks plain HTTP to the local proxy; the proxy speaks mTLS to Vault.
	code, body := httpDo(t, "GET", "http://"+a.proxy+"/v1/secret/data/app", nil)
	if code != 200 || !strings.Contains(body, val) {
		t.Fatalf("proxy over mTLS: %d %s", code, body)
	}
}
