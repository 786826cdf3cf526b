package mtls

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ca is a test certificate authority made with crypto/x509.
type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serial atomic.Int64

func newCA(t testing.TB, name string) *ca {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &ca{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns PEM cert and key for a workload with SPIFFE id (and DNS names).
func (c *ca) issue(t testing.TB, spiffe string, dns ...string) (certPEM, keyPEM []byte, serialNo int64) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	n := serial.Add(1)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(n), Subject: pkix.Name{CommonName: "workload", Organization: []string{"sidecarkit"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), DNSNames: dns,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	if spiffe != "" {
		u, _ := url.Parse(spiffe)
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), n
}

// writeFiles puts a credential set in dir, each file replaced atomically.
func writeFiles(t testing.TB, dir string, certPEM, keyPEM, caPEM []byte) Files {
	t.Helper()
	f := Files{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"), CAFile: filepath.Join(dir, "ca.pem")}
	for p, b := range map[string][]byte{f.CertFile: certPEM, f.KeyFile: keyPEM, f.CAFile: caPEM} {
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// workload is one side's credentials in files.
func workload(t testing.TB, c *ca, id string, dns ...string) (Files, int64) {
	cert, key, n := c.issue(t, id, dns...)
	return writeFiles(t, t.TempDir(), cert, key, c.pem), n
}

const (
	serverID = "spiffe://cluster.local/ns/shop/sa/checkout"
	clientID = "spiffe://cluster.local/ns/shop/sa/frontend"
)

// serve runs an HTTP server behind mtls.Listener that echoes the peer.
func serve(t testing.TB, s *Server) string {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(inner, s, nil)
	srv := &http.Server{ConnContext: ConnContext, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := PeerFrom(r.Context())
		if p == nil {
			fmt.Fprint(w, "plaintext")
			return
		}
		fmt.Fprintf(w, "peer=%s ns=%s sa=%s xfcc=%s", p.Identity.URI, p.Identity.Namespace, p.Identity.ServiceAccount, XFCC(s.Identity().URI, p))
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return inner.Addr().String()
}

func mtlsClient(t testing.TB, f Files, sans ...string) (*http.Client, *Client) {
	t.Helper()
	c, err := NewClient(ClientConfig{Files: f, MatchSANs: sans}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	tr := &http.Transport{DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		raw, err := net.Dial(network, addr)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(raw, c.TLSConfig())
		if err := tc.Handshake(); err != nil {
			raw.Close()
			return nil, err
		}
		return tc, nil
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, c
}

func fetch(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func newServer(t testing.TB, mode string, f Files) *Server {
	t.Helper()
	s, err := NewServer(ServerConfig{Mode: mode, Files: f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStrict(t *testing.T) {
	root := newCA(t, "mesh root")
	sf, _ := workload(t, root, serverID)
	s := newServer(t, Strict, sf)
	addr := serve(t, s)

	cf, _ := workload(t, root, clientID)
	client, _ := mtlsClient(t, cf, serverID)
	body, err := fetch(client, "https://"+addr+"/")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, "peer="+clientID+" ns=shop sa=frontend") || !strings.Contains(body, "xfcc=By="+serverID+";Hash=") ||
		!strings.Contains(body, ";URI="+clientID) || !strings.Contains(body, `;Subject="CN=workload,O=sidecarkit"`) {
		t.Fatalf("peer as seen by the server: %s", body)
	}

	// Plaintext is refused.
	if _, err := fetch(&http.Client{Timeout: 5 * time.Second}, "http://"+addr+"/"); err == nil {
		t.Fatal("STRICT served a plaintext request")
	}
	// A client certificate from another CA is refused.
	other := newCA(t, "other root")
	wf, _ := workload(t, other, clientID)
	wf.CAFile = cf.CAFile // it trusts our server, but its cert is from the wrong CA
	wrong, _ := mtlsClient(t, wf, serverID)
	if _, err := fetch(wrong, "https://"+addr+"/"); err == nil {
		t.Fatal("STRICT accepted a client certificate from another CA")
	}
	// No client certificate at all is refused.
	noCert := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if _, err := fetch(noCert, "https://"+addr+"/"); err == nil {
		t.Fatal("STRICT accepted a client without a certificate")
	}
	// TLS 1.1 is refused.
	old, _ := mtlsClient(t, cf)
	old.Transport.(*http.Transport).DialTLSContext = nil
	old.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}
	if _, err := fetch(old, "https://"+addr+"/"); err == nil {
		t.Fatal("STRICT accepted TLS 1.1")
	}
	// The client refuses a server whose identity is not the expected one.
	picky, _ := mtlsClient(t, cf, "spiffe://cluster.local/ns/shop/sa/payments")
	if _, err := fetch(picky, "https://"+addr+"/"); err == nil || !strings.Contains(err.Error(), "match_sans") {
		t.Fatalf("client accepted an unexpected server identity: %v", err)
	}
}

func TestPermissive(t *testing.T) {
	root := newCA(t, "mesh root")
	sf, _ := workload(t, root, serverID)
	addr := serve(t, newServer(t, Permissive, sf))
	if body, err := fetch(&http.Client{Timeout: 5 * time.Second}, "http://"+addr+"/"); err != nil || body != "plaintext" {
		t.Fatalf("PERMISSIVE plaintext: %q %v", body, err)
	}
	cf, _ := workload(t, root, clientID)
	client, _ := mtlsClient(t, cf)
	if body, err := fetch(client, "https://"+addr+"/"); err != nil || !strings.Contains(body, "peer="+clientID) {
		t.Fatalf("PERMISSIVE mTLS: %q %v", body, err)
	}
}

func TestRotationWithoutFailedRequests(t *testing.T) {
	root := newCA(t, "mesh root")
	dir := t.TempDir()
	cert, key, first := root.issue(t, serverID)
	sf := writeFiles(t, dir, cert, key, root.pem)
	s := newServer(t, Strict, sf)
	addr := serve(t, s)
	cf, _ := workload(t, root, clientID)
	client, _ := mtlsClient(t, cf, serverID)

	servedSerial := func() int64 {
		c, err := NewClient(ClientConfig{Files: cf}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conn, err := tls.Dial("tcp", addr, c.TLSConfig())
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if got := servedSerial(); got != first {
		t.Fatalf("served serial %d, want %d", got, first)
	}
	// Load on a kept-alive connection and on fresh ones while rotating.
	var failed atomic.Int64
	var ok atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client
			if i%2 == 1 {
				fresh, _ := mtlsClient(t, cf, serverID)
				c = fresh
				c.Transport.(*http.Transport).DisableKeepAlives = true
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := fetch(c, "https://"+addr+"/"); err != nil {
					failed.Add(1)
					t.Logf("request failed during rotation: %v", err)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	cert2, key2, second := root.issue(t, serverID)
	writeFiles(t, dir, cert2, key2, root.pem)
	deadline := time.Now().Add(20 * time.Second)
	for servedSerial() != second {
		if time.Now().After(deadline) {
			t.Fatal("rotated certificate never served")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A broken write (key that does not match) is refused; the good one stays.
	_, badKey, _ := root.issue(t, serverID)
	cert3, _, _ := root.issue(t, serverID)
	writeFiles(t, dir, cert3, badKey, root.pem)
	time.Sleep(3 * debounce)
	close(stop)
	wg.Wait()
	if got := servedSerial(); got != second {
		t.Fatalf("after a mismatched key the served serial is %d, want %d kept", got, second)
	}
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("%d requests failed during rotation (%d ok)", failed.Load(), ok.Load())
	}
	if s.Reloads() != 1 {
		t.Fatalf("reloads = %d, want 1", s.Reloads())
	}
}

func TestParseSPIFFE(t *testing.T) {
	id, err := ParseSPIFFE("spiffe://cluster.local/ns/default/sa/sleep")
	if err != nil || id.TrustDomain != "cluster.local" || id.Namespace != "default" || id.ServiceAccount != "sleep" || id.Principal() != "cluster.local/ns/default/sa/sleep" {
		t.Fatalf("%+v %v", id, err)
	}
	if id, err := ParseSPIFFE("spiffe://example.org/workload/x"); err != nil || id.Namespace != "" {
		t.Fatalf("non-Istio path: %+v %v", id, err)
	}
	for _, bad := range []string{"", "http://x/ns/a/sa/b", "spiffe://", "spiffe://Upper/ns/a", "spiffe://td:80/x", "spiffe://td/a//b", "spiffe://td/x?q=1", "spiffe://u@td/x", "spiffe://td/../x"} {
		if _, err := ParseSPIFFE(bad); err == nil {
			t.Errorf("ParseSPIFFE(%q) accepted", bad)
		}
	}
}

func FuzzParseSPIFFE(f *testing.F) {
	for _, s := range []string{"spiffe://cluster.local/ns/default/sa/sleep", "spiffe://td", "spiffe://td/ns//sa/x", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseSPIFFE(s)
		if err != nil {
			return
		}
		if id.URI != s || id.TrustDomain == "" || !strings.HasPrefix(s, "spiffe://"+id.TrustDomain) {
			t.Fatalf("accepted %q as %+v", s, id)
		}
		_ = XFCC(s, &Peer{Identity: id, Cert: &x509.Certificate{Raw: []byte(s)}})
	})
}

func FuzzPeek(f *testing.F) {
	f.Add([]byte{0x16, 3, 1})
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		a, c := net.Pipe()
		go func() { a.Write(b); a.Close() }()
		isTLS, pc, err := Peek(c)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(pc)
		if string(got) != string(b) || isTLS != (b[0] == 0x16) {
			t.Fatalf("peek changed the stream: %q → %q (tls %v)", b, got, isTLS)
		}
	})
}

func TestValidate(t *testing.T) {
	err := (&ServerConfig{Mode: "LOOSE", HandshakeTimeout: -1}).Validate()
	if err == nil || !strings.Contains(err.Error(), `mtls.mode "LOOSE"`) || !strings.Contains(err.Error(), "handshake_timeout") {
		t.Fatalf("%v", err)
	}
	err = (&ServerConfig{Mode: Strict}).Validate()
	for _, k := range []string{"cert_file", "key_file", "ca_file"} {
		if err == nil || !strings.Contains(err.Error(), "mtls."+k) {
			t.Fatalf("missing %s not reported: %v", k, err)
		}
	}
	if _, err := NewServer(ServerConfig{Mode: Strict, Files: Files{CertFile: "/nope/c", KeyFile: "/nope/k", CAFile: "/nope/ca"}}, nil); err == nil || !strings.Contains(err.Error(), "/nope/c") {
		t.Fatalf("missing files: %v", err)
	}
}

// TestKubernetesSecretSwap rotates credentials the way the kubelet updates a
// secret volume: files are symlinks through ..data, which is re-pointed to a
// new timestamped directory in one rename.
func TestKubernetesSecretSwap(t *testing.T) {
	root := newCA(t, "mesh root")
	mount := t.TempDir()
	publish := func(gen string) int64 {
		cert, key, n := root.issue(t, serverID)
		dir := filepath.Join(mount, "..2026_"+gen)
		os.Mkdir(dir, 0o755)
		writeFiles(t, dir, cert, key, root.pem)
		tmp := filepath.Join(mount, "..data_tmp")
		os.Remove(tmp)
		if err := os.Symlink(filepath.Base(dir), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(mount, "..data")); err != nil {
			t.Fatal(err)
		}
		return n
	}
	first := publish("a")
	for _, f := range []string{"cert.pem", "key.pem", "ca.pem"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(mount, f)); err != nil {
			t.Fatal(err)
		}
	}
	s := newServer(t, Strict, Files{CertFile: filepath.Join(mount, "cert.pem"), KeyFile: filepath.Join(mount, "key.pem"), CAFile: filepath.Join(mount, "ca.pem")})
	if got := s.cur.Load().cert.Leaf.SerialNumber.Int64(); got != first {
		t.Fatalf("serial %d, want %d", got, first)
	}
	second := publish("b")
	deadline := time.Now().Add(20 * time.Second)
	for s.cur.Load().cert.Leaf.SerialNumber.Int64() != second {
		if time.Now().After(deadline) {
			t.Fatal("..data swap not picked up")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPermissiveServerFirst(t *testing.T) {
	root := newCA(t, "mesh root")
	sf, _ := workload(t, root, serverID)
	s, err := NewServer(ServerConfig{Mode: Permissive, Files: sf, DetectTimeout: 50 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, b := net.Pipe()
	defer a.Close()
	done := make(chan error, 1)
	go func() {
		c, peer, err := s.Accept(b)
		if err == nil && peer == nil {
			_, err = c.Write([]byte("220 hello\r\n")) // the server speaks first
		}
		done <- err
	}()
	buf := make([]byte, 11)
	if _, err := io.ReadFull(a, buf); err != nil || string(buf) != "220 hello\r\n" {
		t.Fatalf("server-first greeting: %q %v", buf, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
