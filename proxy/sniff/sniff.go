// Package sniff classifies a connection by its first bytes — HTTP/1.x,
// HTTP/2 with prior knowledge (h2c), TLS, or anything else (raw TCP) — and
// reads the server name from a TLS ClientHello without terminating TLS.
// Everything here is pure: functions over byte slices.
package sniff

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"time"
)

// Protocol is a connection's detected protocol.
type Protocol int

// Protocols. Unknown means more bytes are needed to decide.
const (
	Unknown Protocol = iota
	HTTP1
	HTTP2
	TLS
	TCP
)

func (p Protocol) String() string {
	switch p {
	case HTTP1:
		return "http1"
	case HTTP2:
		return "h2c"
	case TLS:
		return "tls"
	case TCP:
		return "tcp"
	}
	return "unknown"
}

// Preface is the HTTP/2 client connection preface.
const Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// MaxDetectBytes is the most bytes Detect needs to decide: two empty
// lines, a MaxMethodLen token and one more byte (more than the preface).
const MaxDetectBytes = 4 + MaxMethodLen + 1

// MaxMethodLen is the longest token Detect takes for a request method.
const MaxMethodLen = 20

// Detect classifies b, the first bytes a client sent. It returns Unknown
// while b is a prefix of more than one possibility; with MaxDetectBytes bytes
// it always decides.
//
// Anything that could be an HTTP/1 request line is HTTP1: optional empty
// lines (RFC 9112 §2.2), then a token (RFC 9110 tchar, any case: "get",
// "FOO" and "QUERY" included) followed by a space. The HTTP server then
// parses it strictly (a method it does not accept gets 400) — bytes a
// server could take for a request are never passed on as raw TCP, where
// no policy would see them. While b is still such a prefix (a slow client
// that sent "G") the answer is Unknown; see MayBeHTTP.
func Detect(b []byte) Protocol {
	if len(b) == 0 {
		return Unknown
	}
	if b[0] == 0x16 { // TLS handshake record
		if len(b) < 2 {
			return Unknown
		}
		if b[1] == 0x03 {
			return TLS
		}
		return TCP
	}
	// h2c preface (also a prefix of "PRI ..." HTTP/1 looks alike: decide on the full preface).
	n := min(len(b), len(Preface))
	if string(b[:n]) == Preface[:n] {
		if n == len(Preface) {
			return HTTP2
		}
		return Unknown
	}
	return detectH1(b)
}

// detectH1 decides between HTTP1, TCP and Unknown (a prefix of a request line).
func detectH1(b []byte) Protocol {
	i := 0
	for i < len(b) && (b[i] == '\r' || b[i] == '\n') { // empty lines before the request line
		if i >= 4 {
			return TCP
		}
		i++
	}
	if i == len(b) {
		return Unknown
	}
	start := i
	for ; i < len(b); i++ {
		c := b[i]
		if c == ' ' {
			if i > start {
				return HTTP1
			}
			return TCP
		}
		if !isTchar(c) || i-start >= MaxMethodLen {
			return TCP
		}
	}
	return Unknown
}

// MayBeHTTP reports whether b (non-empty) could still begin an HTTP/1
// request: a client that stops after such bytes is a slow HTTP client, to
// be bounded by the header-read timeout, never a raw TCP stream.
func MayBeHTTP(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	p := Detect(b)
	return p == HTTP1 || p == Unknown && b[0] != 0x16
}

// isTchar reports whether c may appear in a token (RFC 9110 §5.6.2).
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c != 0 && strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// RecordLen returns the total length (header included) of the TLS record
// that b starts with, or 0 when b holds fewer than 5 bytes.
func RecordLen(b []byte) int {
	if len(b) < 5 {
		return 0
	}
	return 5 + (int(b[3])<<8 | int(b[4]))
}

// MaxRecord is the largest TLS record a ClientHello may use.
const MaxRecord = 5 + 16384 + 2048

var errGotHello = errors.New("sniff: got client hello")

// ServerName returns the SNI of the ClientHello in hello (the first TLS
// record(s) a client sent), parsed by crypto/tls. It returns "" and an error
// when hello is not a complete, valid ClientHello; "" and nil when the client
// sent no SNI.
func ServerName(hello []byte) (string, error) {
	var name string
	got := false
	cfg := &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		name, got = h.ServerName, true
		return nil, errGotHello
	}}
	c := tls.Server(&readOnlyConn{r: bytes.NewReader(hello)}, cfg)
	err := c.Handshake()
	if got {
		return name, nil
	}
	if err == nil {
		err = errors.New("no client hello")
	}
	return "", err
}

// readOnlyConn feeds recorded bytes to crypto/tls and swallows its writes.
type readOnlyConn struct{ r io.Reader }

func (c *readOnlyConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *readOnlyConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *readOnlyConn) Close() error                     { return nil }
func (c *readOnlyConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *readOnlyConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *readOnlyConn) SetDeadline(time.Time) error      { return nil }
func (c *readOnlyConn) SetReadDeadline(time.Time) error  { return nil }
func (c *readOnlyConn) SetWriteDeadline(time.Time) error { return nil }
