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

// MaxDetectBytes is the most bytes Detect needs to decide.
const MaxDetectBytes = len(Preface)

var methods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
	"PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "SEARCH", "REPORT", "MKCALENDAR", "PURGE"}

// Detect classifies b, the first bytes a client sent. It returns Unknown
// while b is a prefix of more than one possibility; with MaxDetectBytes bytes
// it always decides.
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
	// HTTP/1: a known method followed by a space.
	for i, c := range b {
		if c == ' ' {
			if isMethod(b[:i]) {
				return HTTP1
			}
			return TCP
		}
		if c < 'A' || c > 'Z' || i >= 10 {
			return TCP
		}
	}
	for _, m := range methods {
		if len(b) < len(m) && m[:len(b)] == string(b) {
			return Unknown
		}
	}
	return TCP
}

func isMethod(b []byte) bool {
	for _, m := range methods {
		if string(b) == m {
			return true
		}
	}
	return false
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
