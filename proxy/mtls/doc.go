// Package mtls builds the proxy's TLS configurations for mutual TLS between
// sidecars, the way Istio does it without a control plane:
//
//   - Server (inbound): STRICT refuses plaintext, PERMISSIVE serves TLS and
//     plaintext on the same port (told apart by the first byte, 0x16 for a
//     TLS handshake), DISABLE is plaintext only. Clients must present a
//     certificate signed by the CA bundle.
//   - Client (outbound origination per cluster): presents the workload
//     certificate and verifies the server against the CA bundle and,
//     optionally, its expected SPIFFE identities (match_sans).
//
// Certificate, key and CA bundle are read from files and re-read when they
// change (fsnotify on their directories, so Kubernetes' symlink-swapped
// secret volumes work); each handshake uses the newest good set, existing
// connections are not touched, and a half-written or mismatched set is
// refused with a log line while the previous one stays in use. TLS 1.2+;
// TLS 1.2 offers and accepts only ECDHE + AEAD suites unless cipher_suites
// says otherwise (DefaultCipherSuites).
//
// Identities are SPIFFE URIs in the certificate's URI SAN,
// spiffe://<trust-domain>/ns/<namespace>/sa/<service-account> (Identity,
// ParseSPIFFE). The listener puts the verified peer in the request context
// (WithPeer / PeerFrom) for authz, and XFCC builds the
// X-Forwarded-Client-Cert header in Envoy's format for the app.
package mtls
