// Package pathnorm normalises a request path once, the way Istio's
// meshConfig.pathNormalization does with Envoy, so that authorization, JWT
// rules, route matching and rate-limit keys decide on the same path that is
// then forwarded to the app (no "checked one path, forwarded another").
//
// Modes (Istio's names):
//
//   - NONE: the path is used and forwarded exactly as received.
//   - BASE (default): RFC 3986 normalisation as Envoy's normalize_path does
//     it: percent-encoded unreserved characters are decoded (%61 → a, %2E →
//     .), other escapes get upper-case hex, a raw backslash becomes "/",
//     dot segments are removed ("/a/../b" → "/b"). %2F and %5C stay encoded
//     (or are refused, see EscapedSlashes).
//   - MERGE_SLASHES: BASE, then adjacent slashes are merged ("/a//b" → "/a/b").
//   - DECODE_AND_MERGE_SLASHES: %2F and %5C are decoded to "/" first, then
//     MERGE_SLASHES ("/a%2f..%2fb" → "/b").
//
// In every mode but NONE, %00, a malformed escape or a control character is
// an error (the proxy answers 400), and bytes that are not allowed in a path
// (space, '"', '<', non-ASCII, ...) are percent-encoded, so the result is
// always a valid RFC 3986 path whose bytes are what gets forwarded.
// Normalisation is idempotent: Normalize(Normalize(p)) == Normalize(p).
package pathnorm

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Modes.
const (
	None                  = "NONE"
	Base                  = "BASE"
	MergeSlashes          = "MERGE_SLASHES"
	DecodeAndMergeSlashes = "DECODE_AND_MERGE_SLASHES"
)

// Escaped slash (%2F, %5C) handling for the modes that do not decode them
// (Envoy's path_with_escaped_slashes_action).
const (
	Keep   = "keep"   // forwarded encoded (Envoy's KEEP_UNCHANGED, Istio's default)
	Reject = "reject" // 400 (Envoy's REJECT_REQUEST)
)

// Options choose the normalisation.
type Options struct {
	Mode           string // NONE | BASE (default "") | MERGE_SLASHES | DECODE_AND_MERGE_SLASHES
	EscapedSlashes string // keep (default "") | reject
}

// Validate names the bad option and value.
func (o Options) Validate() error {
	var errs []error
	switch o.Mode {
	case "", None, Base, MergeSlashes, DecodeAndMergeSlashes:
	default:
		errs = append(errs, fmt.Errorf("path-normalization %q: want NONE, BASE, MERGE_SLASHES or DECODE_AND_MERGE_SLASHES", o.Mode))
	}
	switch o.EscapedSlashes {
	case "", Keep, Reject:
	default:
		errs = append(errs, fmt.Errorf("path-escaped-slashes %q: want keep or reject", o.EscapedSlashes))
	}
	if o.EscapedSlashes == Reject && o.Mode == DecodeAndMergeSlashes {
		errs = append(errs, fmt.Errorf("path-escaped-slashes %q: DECODE_AND_MERGE_SLASHES decodes %%2F and %%5C, it cannot also reject them", o.EscapedSlashes))
	}
	return errors.Join(errs...)
}

// Errors for paths that cannot be normalised (the proxy answers 400).
var (
	ErrBadEscape     = errors.New("malformed percent-encoding")
	ErrNUL           = errors.New("encoded NUL (%00)")
	ErrControl       = errors.New("control character")
	ErrEscapedSlash  = errors.New("escaped slash (%2F or %5C) refused")
	ErrNotOriginForm = errors.New("not an absolute path")
)

// Normalize returns the normalised form of the escaped (on-the-wire) path
// p, without its query. A path that does not start with "/" ("*" of
// OPTIONS, an empty path) is returned unchanged ("" becomes "/").
func Normalize(p string, o Options) (string, error) {
	if o.Mode == None {
		return p, nil
	}
	if p == "" {
		return "/", nil
	}
	if p[0] != '/' && p[0] != '\\' {
		return p, nil
	}
	merge := o.Mode == MergeSlashes || o.Mode == DecodeAndMergeSlashes
	if clean(p, merge) {
		return p, nil
	}
	decodeSlash := o.Mode == DecodeAndMergeSlashes
	var b strings.Builder
	b.Grow(len(p) + 8)
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return "", fmt.Errorf("%w at byte %d", ErrBadEscape, i)
			}
			v := unhex(p[i+1])<<4 | unhex(p[i+2])
			i += 2
			switch {
			case v == 0:
				return "", ErrNUL
			case unreserved(v):
				b.WriteByte(v)
			case v == '/' || v == '\\':
				if decodeSlash {
					b.WriteByte('/')
				} else if o.EscapedSlashes == Reject {
					return "", ErrEscapedSlash
				} else {
					writeEscape(&b, v)
				}
			default:
				writeEscape(&b, v)
			}
		case c == '\\':
			b.WriteByte('/')
		case c < 0x20 || c == 0x7f:
			return "", fmt.Errorf("%w 0x%02x at byte %d", ErrControl, c, i)
		case pathByte(c):
			b.WriteByte(c)
		default:
			writeEscape(&b, c)
		}
	}
	out := removeDots(b.String())
	if merge {
		out = mergeSlashes(out)
	}
	return out, nil
}

// clean reports whether p is already in normal form (the common case, no
// allocation).
func clean(p string, merge bool) bool {
	prev := byte(0)
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' || c == '\\' || !pathByte(c) {
			return false
		}
		if prev == '/' && (c == '.' || merge && c == '/') {
			return false
		}
		prev = c
	}
	return true
}

// pathByte: RFC 3986 pchar (without pct-encoded) or "/".
func pathByte(c byte) bool {
	if unreserved(c) {
		return true
	}
	switch c {
	case '/', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@':
		return true
	}
	return false
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func writeEscape(b *strings.Builder, c byte) {
	const hex = "0123456789ABCDEF"
	b.WriteByte('%')
	b.WriteByte(hex[c>>4])
	b.WriteByte(hex[c&15])
}

// removeDots is RFC 3986 §5.2.4 for an absolute path.
func removeDots(p string) string {
	if !strings.Contains(p, "/.") {
		return p
	}
	segs := strings.Split(p[1:], "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}

func mergeSlashes(p string) string {
	if !strings.Contains(p, "//") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// RawPath returns the path of u as it came on the wire (before Go's
// url.Parse re-escaped or decoded anything): RawPath when Go kept one, else
// the escaped Path.
func RawPath(u *url.URL) string {
	if u.RawPath != "" {
		return u.RawPath
	}
	return u.EscapedPath()
}

// Apply normalises u's path in place so that what is forwarded
// (u.EscapedPath(), used by Request.Write and the HTTP/2 transport) is
// exactly the returned normalised path, the one decisions look at.
func Apply(u *url.URL, o Options) (string, error) {
	if u.Opaque != "" {
		return u.Opaque, nil
	}
	raw := RawPath(u)
	n, err := Normalize(raw, o)
	if err != nil {
		return "", err
	}
	if n == raw && (u.RawPath == "" || u.EscapedPath() == n) {
		return n, nil
	}
	dec, err := url.PathUnescape(n)
	if err != nil {
		// Only NONE can get here (its input is not checked); keep it as is.
		return raw, nil
	}
	u.Path, u.RawPath = dec, n
	if u.EscapedPath() != n {
		// Go would re-escape it differently (NONE with odd bytes): send
		// the bytes themselves.
		u.Opaque = n
	}
	return n, nil
}
