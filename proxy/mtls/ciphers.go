package mtls

import (
	"crypto/tls"
	"fmt"
	"strings"
)

// DefaultCipherSuites are the TLS 1.2 suites offered and accepted when
// cipher_suites is not set: ECDHE key exchange with AEAD ciphers only (no
// CBC/SHA-1 suites such as AES128-SHA or AES256-SHA). TLS 1.3 suites are
// always Go's own (all AEAD) and cannot be configured.
var DefaultCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// OpenSSL (and so Istio/Envoy) spellings of the TLS 1.2 suites Go knows.
var opensslNames = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"AES128-GCM-SHA256":             tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES256-GCM-SHA384":             tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	"AES128-SHA":                    tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	"AES256-SHA":                    tls.TLS_RSA_WITH_AES_256_CBC_SHA,
}

// cipherSuites resolves cipher_suites names (Go/IANA names such as
// TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, or OpenSSL names such as
// ECDHE-ECDSA-AES128-GCM-SHA256) to IDs; empty: DefaultCipherSuites.
// at is the key prefix for errors ("mtls." or "tls.").
func cipherSuites(names []string, at string) ([]uint16, error) {
	if len(names) == 0 {
		return DefaultCipherSuites, nil
	}
	byName := map[string]uint16{}
	for _, cs := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		byName[cs.Name] = cs.ID
	}
	var ids []uint16
	var bad []string
	for _, n := range names {
		id, ok := byName[strings.TrimSpace(n)]
		if !ok {
			id, ok = opensslNames[strings.TrimSpace(n)]
		}
		if !ok || id == tls.TLS_AES_128_GCM_SHA256 || id == tls.TLS_AES_256_GCM_SHA384 || id == tls.TLS_CHACHA20_POLY1305_SHA256 {
			bad = append(bad, n)
			continue
		}
		ids = append(ids, id)
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%scipher_suites %q: unknown TLS 1.2 cipher suite (want Go/IANA names like TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 or OpenSSL names like ECDHE-ECDSA-AES128-GCM-SHA256; TLS 1.3 suites are not configurable)", at, strings.Join(bad, ","))
	}
	return ids, nil
}
