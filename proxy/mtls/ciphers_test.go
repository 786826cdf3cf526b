package mtls

import (
	"crypto/tls"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestCipherSuites: TLS 1.2 accepts only ECDHE + AEAD suites by default;
// a CBC/SHA-1 suite is refused unless configured. The peer is openssl
// s_client (an outside implementation) and a Go client.
func TestCipherSuites(t *testing.T) {
	c := newCA(t, "mesh")
	sf, _ := workload(t, c, serverID)
	cf, _ := workload(t, c, clientID)
	def := serve(t, newServer(t, Strict, sf))
	legacySrv, err := NewServer(ServerConfig{Mode: Strict, Files: sf, CipherSuites: []string{"ECDHE-ECDSA-AES128-SHA", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { legacySrv.Close() })
	legacy := serve(t, legacySrv)

	goHandshake := func(addr string, suite uint16) error {
		cli, err := NewClient(ClientConfig{Files: cf}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		cfg := cli.TLSConfig()
		cfg.MaxVersion, cfg.CipherSuites = tls.VersionTLS12, []uint16{suite}
		conn, err := tls.Dial("tcp", addr, cfg)
		if err == nil {
			conn.Close()
		}
		return err
	}
	for _, c := range []struct {
		addr  string
		suite uint16
		ok    bool
	}{
		{def, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, true},
		{def, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, true},
		{def, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, false},
		{def, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, false},
		{legacy, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, true},
		{legacy, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, false},
	} {
		if err := goHandshake(c.addr, c.suite); (err == nil) != c.ok {
			t.Errorf("Go client, %s to %s: err %v, want ok=%v", tls.CipherSuiteName(c.suite), c.addr, err, c.ok)
		}
	}

	bin, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("openssl is needed for this test (apt package openssl): %v", err)
		}
		t.Skipf("openssl not installed: %v", err)
	}
	sslClient := func(addr, cipher string) (string, error) {
		cmd := exec.Command(bin, "s_client", "-connect", addr, "-tls1_2", "-cipher", cipher,
			"-cert", cf.CertFile, "-key", cf.KeyFile, "-CAfile", cf.CAFile)
		cmd.Stdin = strings.NewReader("")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, c := range []struct {
		addr, cipher string
		ok           bool
	}{
		{def, "ECDHE-ECDSA-AES128-GCM-SHA256", true},
		{def, "ECDHE-ECDSA-AES128-SHA", false},
		{def, "ECDHE-ECDSA-AES256-SHA", false},
		{def, "AES128-SHA:AES256-SHA", false},
		{legacy, "ECDHE-ECDSA-AES128-SHA", true},
	} {
		out, err := sslClient(c.addr, c.cipher)
		negotiated := strings.Contains(out, "Cipher is "+c.cipher) || strings.Contains(out, "Cipher    : "+c.cipher)
		if c.ok && (err != nil || !negotiated) {
			t.Errorf("openssl %s to %s: want a handshake, got %v\n%s", c.cipher, c.addr, err, out)
		}
		if !c.ok && err == nil && !strings.Contains(out, "Cipher is (NONE)") {
			t.Errorf("openssl %s to %s: handshake succeeded\n%s", c.cipher, c.addr, out)
		}
	}
}

func TestCipherSuitesValidate(t *testing.T) {
	err := (&ServerConfig{Mode: Strict, Files: Files{"c", "k", "a"}, CipherSuites: []string{"RC4-MD5", "TLS_AES_128_GCM_SHA256"}}).Validate()
	if err == nil || !strings.Contains(err.Error(), `mtls.cipher_suites "RC4-MD5,TLS_AES_128_GCM_SHA256"`) {
		t.Errorf("bad suites: %v", err)
	}
	err = (&ClientConfig{Files: Files{"c", "k", "a"}, CipherSuites: []string{"nope"}}).Validate()
	if err == nil || !strings.Contains(err.Error(), `tls.cipher_suites "nope"`) {
		t.Errorf("bad client suites: %v", err)
	}
}
