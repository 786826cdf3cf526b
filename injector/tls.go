package injector

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"sync"
	"time"
)

// serving returns the webhook's TLS config: from --tls-cert-file and
// --tls-key-file (re-read when either changes: cert-manager renews them in
// place), or generated now (a CA and a serving certificate for the
// Service's names), in which case the CA's PEM is returned for the caBundle.
func serving(c *Config, log *slog.Logger) (*tls.Config, []byte, error) {
	if c.TLSCert != "" {
		r := &certReloader{cert: c.TLSCert, key: c.TLSKey, log: log}
		if _, err := r.load(); err != nil {
			return nil, nil, err
		}
		return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.get}, nil, nil
	}
	names := []string{c.Service, c.Service + "." + c.Namespace, c.Service + "." + c.Namespace + ".svc", c.Service + "." + c.Namespace + ".svc.cluster.local"}
	cert, caPEM, err := generate(append(names, c.TLSSANs...), time.Now())
	if err != nil {
		return nil, nil, fmt.Errorf("generate serving certificate: %w", err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}, caPEM, nil
}

// certReloader serves the certificate in two files, re-reading them when
// their size or modification time changed (checked at most once a second).
// A pair that does not load (a half-written renewal) keeps the old one.
type certReloader struct {
	cert, key string
	log       *slog.Logger

	mu      sync.Mutex
	current *tls.Certificate
	stamp   string
	checked time.Time
}

func stampOf(paths ...string) string {
	var b bytes.Buffer
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			fmt.Fprintf(&b, "%s:missing;", p)
			continue
		}
		fmt.Fprintf(&b, "%s:%d:%d;", p, fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String()
}

func (r *certReloader) load() (*tls.Certificate, error) {
	stamp := stampOf(r.cert, r.key)
	c, err := tls.LoadX509KeyPair(r.cert, r.key)
	if err != nil {
		return nil, fmt.Errorf("load tls-cert-file %s and tls-key-file %s: %w", r.cert, r.key, err)
	}
	r.current, r.stamp = &c, stamp
	return &c, nil
}

func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= time.Second {
		r.checked = now
		if stampOf(r.cert, r.key) != r.stamp {
			if _, err := r.load(); err != nil {
				r.log.Warn("serving certificate changed but does not load; keeping the previous one", "err", err)
			} else {
				r.log.Info("serving certificate reloaded", "file", r.cert)
			}
		}
	}
	return r.current, nil
}

// generate makes a CA and a serving certificate for names (DNS names or
// IPs), valid for a year.
func generate(names []string, now time.Time) (tls.Certificate, []byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial := func() *big.Int { n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120)); return n }
	ca := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: "sidecarkit-injector-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, IsCA: true, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	ca, _ = x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			leaf.IPAddresses = append(leaf.IPAddresses, ip)
		} else {
			leaf.DNSNames = append(leaf.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), nil
}
