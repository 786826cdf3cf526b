package mtls

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
)

// Identity is a SPIFFE workload identity in Istio's form.
type Identity struct {
	TrustDomain    string
	Namespace      string
	ServiceAccount string
	URI            string // spiffe://td/ns/x/sa/y (or any spiffe:// URI)
}

// ParseSPIFFE parses a SPIFFE ID. Istio's spiffe://<td>/ns/<ns>/sa/<sa>
// fills Namespace and ServiceAccount; other paths are kept in URI only.
func ParseSPIFFE(s string) (Identity, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Identity{}, fmt.Errorf("SPIFFE ID %q: %v", s, err)
	}
	if u.Scheme != "spiffe" {
		return Identity{}, fmt.Errorf("SPIFFE ID %q: scheme must be spiffe", s)
	}
	if u.Host == "" || u.User != nil || u.Port() != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return Identity{}, fmt.Errorf("SPIFFE ID %q: want spiffe://<trust-domain>/<path> without port, user, query or fragment", s)
	}
	if u.Host != strings.ToLower(u.Host) {
		return Identity{}, fmt.Errorf("SPIFFE ID %q: trust domain must be lower case", s)
	}
	id := Identity{TrustDomain: u.Host, URI: s}
	parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	if len(parts) == 4 && parts[0] == "ns" && parts[2] == "sa" && parts[1] != "" && parts[3] != "" {
		id.Namespace, id.ServiceAccount = parts[1], parts[3]
	}
	for _, p := range parts {
		if u.Path != "" && (p == "" || p == "." || p == "..") {
			return Identity{}, fmt.Errorf("SPIFFE ID %q: empty or dot path segment", s)
		}
	}
	return id, nil
}

// Principal is the identity as Istio's AuthorizationPolicy writes source
// principals: the SPIFFE URI without "spiffe://".
func (i Identity) Principal() string { return strings.TrimPrefix(i.URI, "spiffe://") }

func (i Identity) String() string { return i.URI }

// IdentityOf returns the first SPIFFE URI SAN of cert.
func IdentityOf(cert *x509.Certificate) (Identity, bool) {
	if cert == nil {
		return Identity{}, false
	}
	for _, u := range cert.URIs {
		if u.Scheme == "spiffe" {
			if id, err := ParseSPIFFE(u.String()); err == nil {
				return id, true
			}
		}
	}
	return Identity{}, false
}

// Peer is the verified client of an inbound mTLS connection.
type Peer struct {
	Identity Identity          // zero when the certificate has no SPIFFE URI
	Cert     *x509.Certificate // the client's leaf certificate
}

// PeerOf returns the verified peer of a completed handshake, or nil when
// the client presented no certificate.
func PeerOf(cs tls.ConnectionState) *Peer {
	if len(cs.PeerCertificates) == 0 {
		return nil
	}
	p := &Peer{Cert: cs.PeerCertificates[0]}
	p.Identity, _ = IdentityOf(p.Cert)
	return p
}

type peerKey struct{}

// WithPeer returns ctx carrying the connection's verified peer (the
// listener sets it; authz reads it).
func WithPeer(ctx context.Context, p *Peer) context.Context {
	return context.WithValue(ctx, peerKey{}, p)
}

// PeerFrom returns the peer WithPeer put in ctx, or nil (plaintext).
func PeerFrom(ctx context.Context) *Peer {
	p, _ := ctx.Value(peerKey{}).(*Peer)
	return p
}

// XFCC returns the X-Forwarded-Client-Cert value Envoy (and Istio) give the
// app for peer: By=<our identity>;Hash=<sha256 of the peer certificate>;
// Subject="<peer subject>";URI=<peer SPIFFE ID>[;DNS=<name>...]. by is the
// local identity's URI (may be empty). The proxy sets (not appends) it,
// Istio's SANITIZE_SET.
func XFCC(by string, peer *Peer) string {
	if peer == nil || peer.Cert == nil {
		return ""
	}
	var b strings.Builder
	if by != "" {
		b.WriteString("By=")
		b.WriteString(xfccValue(by))
		b.WriteByte(';')
	}
	sum := sha256.Sum256(peer.Cert.Raw)
	b.WriteString("Hash=")
	b.WriteString(hex.EncodeToString(sum[:]))
	b.WriteString(`;Subject="`)
	b.WriteString(strings.ReplaceAll(peer.Cert.Subject.String(), `"`, `\"`))
	b.WriteByte('"')
	for _, u := range peer.Cert.URIs {
		b.WriteString(";URI=")
		b.WriteString(xfccValue(u.String()))
	}
	for _, d := range peer.Cert.DNSNames {
		b.WriteString(";DNS=")
		b.WriteString(xfccValue(d))
	}
	return b.String()
}

// xfccValue quotes a value holding one of Envoy's separators.
func xfccValue(v string) string {
	if strings.ContainsAny(v, `,;="`) {
		return `"` + strings.ReplaceAll(v, `"`, `\"`) + `"`
	}
	return v
}
