package normalize

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"
)

// safe[c] is true for ASCII bytes that appear unescaped in a JSON string.
var safe = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string (with quotes). Invalid UTF-8 is
// replaced by U+FFFD so the output is always valid JSON.
func AppendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s)
	return append(dst, '"')
}

// needsEscape8 reports whether any of the 8 bytes in x is < 0x20, '"',
// '\\' or >= 0x80 (SWAR: bit tricks on a uint64).
func needsEscape8(x uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	lt20 := (x - lo*0x20) &^ x
	q := x ^ (lo * '"')
	bs := x ^ (lo * '\\')
	return ((lt20|(q-lo)&^q|(bs-lo)&^bs)|x)&hi != 0
}

func appendEscaped(dst, s []byte) []byte {
	start := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) && !needsEscape8(binary.LittleEndian.Uint64(s[i:])) {
			i += 8
			continue
		}
		c := s[i]
		if safe[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}

// AppendQuoted appends the content of a backslash-escaped string (logfmt,
// Go %q or JSON string without its quotes) as a JSON string, resolving
// \" \\ \/ \n \t \r \b \f and \uXXXX; unknown escapes are kept literally.
func AppendQuoted(dst, s []byte) []byte {
	dst = append(dst, '"')
	for {
		i := indexByte(s, '\\')
		if i < 0 {
			dst = appendEscaped(dst, s)
			break
		}
		dst = appendEscaped(dst, s[:i])
		if i+1 >= len(s) { // dangling backslash
			dst = append(dst, '\\', '\\')
			break
		}
		c := s[i+1]
		s = s[i+2:]
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '/':
			dst = append(dst, '/')
		case 'n':
			dst = append(dst, '\\', 'n')
		case 't':
			dst = append(dst, '\\', 't')
		case 'r':
			dst = append(dst, '\\', 'r')
		case 'b':
			dst = append(dst, '\\', 'b')
		case 'f':
			dst = append(dst, '\\', 'f')
		case 'u':
			r, n := hex4(s)
			if n == 0 {
				dst = append(dst, '\\', '\\', 'u')
				continue
			}
			s = s[n:]
			if r >= 0xD800 && r < 0xDC00 { // surrogate pair
				if len(s) >= 6 && s[0] == '\\' && s[1] == 'u' {
					if r2, n2 := hex4(s[2:]); n2 == 4 && r2 >= 0xDC00 && r2 < 0xE000 {
						r = (r-0xD800)<<10 + (r2 - 0xDC00) + 0x10000
						s = s[6:]
					}
				}
			}
			if r >= 0xD800 && r < 0xE000 {
				r = utf8.RuneError
			}
			var b [4]byte
			n = utf8.EncodeRune(b[:], r)
			dst = appendEscaped(dst, b[:n])
		default:
			dst = append(dst, '\\', '\\')
			dst = appendEscaped(dst, []byte{c})
		}
	}
	return append(dst, '"')
}

func hex4(s []byte) (rune, int) {
	if len(s) < 4 {
		return 0, 0
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, 0
		}
	}
	return r, 4
}

func indexByte(s []byte, c byte) int { return bytes.IndexByte(s, c) }
