package httpproxy

import (
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"strings"
)

// hopHeaders are the hop-by-hop fields of RFC 9110 §7.6.1 that are never
// forwarded (Upgrade is re-added for an upgrade the proxy passes on).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Te", "Transfer-Encoding", "Upgrade", "Trailer"}

// removeHopByHop deletes the hop-by-hop headers and every header the
// Connection field names. It keeps "TE: trailers" (gRPC needs it).
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for _, name := range strings.Split(v, ",") {
			if name = textprotoTrim(name); name != "" {
				h.Del(name)
			}
		}
	}
	te := false
	for _, v := range h["Te"] {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(textprotoTrim(t), "trailers") {
				te = true
			}
		}
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
	if te {
		h["Te"] = []string{"trailers"}
	}
}

func textprotoTrim(s string) string { return strings.TrimSpace(s) }

// upgradeType returns the protocol a request asks to upgrade to ("" when none).
func upgradeType(h http.Header) string {
	for _, v := range h["Connection"] {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), "upgrade") {
				return h.Get("Upgrade")
			}
		}
	}
	return ""
}

// appendVia adds this proxy's hop to the Via field.
func appendVia(h http.Header, major, minor int, name string) {
	var v string
	switch {
	case major == 2:
		v = "2 " + name
	case minor == 0:
		v = "1.0 " + name
	default:
		v = "1.1 " + name
	}
	if prior := h["Via"]; len(prior) > 0 {
		v = strings.Join(prior, ", ") + ", " + v
	} else if name == "sidecarkit" && major == 1 && minor == 1 {
		h["Via"] = via11 // the common case, without allocating
		return
	}
	h["Via"] = []string{v}
}

// via11 is shared: len == cap, so an append elsewhere copies it.
var via11 = []string{"1.1 sidecarkit"}

// appendXFF appends ip to X-Forwarded-For.
func appendXFF(h http.Header, ip string) {
	if prior := h["X-Forwarded-For"]; len(prior) > 0 {
		ip = strings.Join(prior, ", ") + ", " + ip
	}
	h["X-Forwarded-For"] = []string{ip}
}

// ensureTraceparent keeps a valid W3C traceparent, derives one from B3
// headers when only those are present, or starts a new trace. It reports
// the trace id. tracestate and B3 headers pass through untouched.
func ensureTraceparent(h http.Header) string {
	if v := h.Get("Traceparent"); validTraceparent(v) {
		return v[3:35]
	}
	h.Del("Traceparent")
	var buf [55]byte
	b := buf[:0]
	b = append(b, "00-"...)
	tid, sid := h.Get("X-B3-Traceid"), h.Get("X-B3-Spanid")
	sampled := "01"
	if isHex(tid) && (len(tid) == 32 || len(tid) == 16) && isHex(sid) && len(sid) == 16 &&
		strings.Trim(tid, "0") != "" && strings.Trim(sid, "0") != "" {
		if len(tid) == 16 {
			b = append(b, "0000000000000000"...)
		}
		b = append(b, strings.ToLower(tid)...)
		b = append(b, '-')
		b = append(b, strings.ToLower(sid)...)
		if s := h.Get("X-B3-Sampled"); s == "0" || s == "false" {
			sampled = "00"
		}
	} else {
		var id [24]byte
		for i := 0; i < 24; i += 8 {
			u := rand.Uint64()
			for j := 0; j < 8; j++ {
				id[i+j] = byte(u >> (8 * j))
			}
		}
		b = hex.AppendEncode(b, id[:16])
		b = append(b, '-')
		b = hex.AppendEncode(b, id[16:])
	}
	b = append(b, '-')
	b = append(b, sampled...)
	v := string(b)
	h["Traceparent"] = []string{v}
	return v[3:35]
}

// validTraceparent checks version-format "00-<32 hex>-<16 hex>-<2 hex>" with
// non-zero ids.
func validTraceparent(v string) bool {
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return false
	}
	if !isHex(v[:2]) || v[:2] == "ff" || !isHex(v[3:35]) || !isHex(v[36:52]) || !isHex(v[53:55]) {
		return false
	}
	if v[:2] == "00" && len(v) != 55 {
		return false
	}
	return v[3:35] != "00000000000000000000000000000000" && v[36:52] != "0000000000000000"
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
