package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
)

// ClientConfig is a cluster's mTLS origination (YAML "tls:" of a cluster).
type ClientConfig struct {
	Files      `yaml:",inline"`
	ServerName string   `yaml:"server_name,omitempty"` // SNI; also checked against the server's DNS SANs unless match_sans is set
	MatchSANs  []string `yaml:"match_sans,omitempty"`  // accepted server identities (SPIFFE URIs or DNS names); empty: any cert from the CA
	// CipherSuites are the TLS 1.2 suites offered (Go/IANA or OpenSSL
	// names); default DefaultCipherSuites (ECDHE + AEAD only).
	CipherSuites []string `yaml:"cipher_suites,omitempty"`
}

// Validate reports every problem, naming the key and value.
func (c *ClientConfig) Validate() error {
	errs := c.Files.problems("tls.")
	if _, err := cipherSuites(c.CipherSuites, "tls."); err != nil {
		errs = append(errs, err)
	}
	for _, s := range c.MatchSANs {
		if s == "" {
			errs = append(errs, fmt.Errorf("tls.match_sans %q: empty name", s))
		}
	}
	return errors.Join(errs...)
}

// Client originates mTLS with credentials reloaded from files.
type Client struct {
	*reloader
	cfg    ClientConfig
	suites []uint16
}

// NewClient loads the files and starts watching them. Close stops that.
func NewClient(cfg ClientConfig, log *slog.Logger) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r, err := newReloader(cfg.Files, log)
	if err != nil {
		return nil, err
	}
	suites, _ := cipherSuites(cfg.CipherSuites, "tls.") // validated above
	return &Client{reloader: r, cfg: cfg, suites: suites}, nil
}

// TLSConfig returns a fresh client config for one connection: it presents
// the current certificate and verifies the server against the current CA
// bundle and match_sans (or server_name).
func (c *Client) TLSConfig() *tls.Config {
	b := c.cur.Load()
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: c.suites,
		ServerName:   c.cfg.ServerName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return c.cur.Load().cert, nil
		},
		// Verification is done below against the roots of this moment and
		// SPIFFE SANs, which crypto/tls's hostname check cannot express.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			raw := make([][]byte, len(cs.PeerCertificates))
			for i, pc := range cs.PeerCertificates {
				raw[i] = pc.Raw
			}
			leaf, err := verifyPeer(raw, b.roots, x509.ExtKeyUsageServerAuth)
			if err != nil {
				return fmt.Errorf("verify server certificate: %w", err)
			}
			return c.checkName(leaf)
		},
	}
}

func (c *Client) checkName(leaf *x509.Certificate) error {
	if len(c.cfg.MatchSANs) > 0 {
		for _, u := range leaf.URIs {
			if slices.Contains(c.cfg.MatchSANs, u.String()) {
				return nil
			}
		}
		for _, d := range leaf.DNSNames {
			if slices.Contains(c.cfg.MatchSANs, d) {
				return nil
			}
		}
		var have []string
		for _, u := range leaf.URIs {
			have = append(have, u.String())
		}
		have = append(have, leaf.DNSNames...)
		return fmt.Errorf("server identity %v is not one of match_sans %v", have, c.cfg.MatchSANs)
	}
	if c.cfg.ServerName != "" && net.ParseIP(c.cfg.ServerName) == nil {
		return leaf.VerifyHostname(c.cfg.ServerName)
	}
	return nil
}
