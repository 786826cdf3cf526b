package mtls

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Inbound modes (Istio's PeerAuthentication).
const (
	Strict     = "STRICT"
	Permissive = "PERMISSIVE"
	Disable    = "DISABLE"
)

// ServerConfig is the inbound listener's mTLS (YAML "mtls:").
type ServerConfig struct {
	Mode             string `yaml:"mode"` // STRICT | PERMISSIVE | DISABLE
	Files            `yaml:",inline"`
	HandshakeTimeout time.Duration `yaml:"handshake_timeout,omitempty"` // default 10s
	// DetectTimeout (PERMISSIVE): a client silent this long is served as
	// plaintext (server-speaks-first protocols). Default 1s.
	DetectTimeout time.Duration `yaml:"detect_timeout,omitempty"`
	// CipherSuites are the TLS 1.2 suites accepted (Go/IANA or OpenSSL
	// names); default DefaultCipherSuites (ECDHE + AEAD only).
	CipherSuites []string `yaml:"cipher_suites,omitempty"`
}

// Validate reports every problem, naming the key and value.
func (c *ServerConfig) Validate() error {
	var errs []error
	switch c.Mode {
	case Strict, Permissive:
		errs = append(errs, c.Files.problems("mtls.")...)
	case Disable, "":
	default:
		errs = append(errs, fmt.Errorf("mtls.mode %q: want STRICT, PERMISSIVE or DISABLE", c.Mode))
	}
	if c.HandshakeTimeout < 0 {
		errs = append(errs, fmt.Errorf("mtls.handshake_timeout %q: must not be negative", c.HandshakeTimeout))
	}
	if c.DetectTimeout < 0 {
		errs = append(errs, fmt.Errorf("mtls.detect_timeout %q: must not be negative", c.DetectTimeout))
	}
	if _, err := cipherSuites(c.CipherSuites, "mtls."); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Server terminates inbound mTLS with credentials reloaded from files.
type Server struct {
	*reloader
	mode    string
	timeout time.Duration
	detect  time.Duration
	tls     *tls.Config
}

// NewServer loads the files and starts watching them. Close stops that.
func NewServer(cfg ServerConfig, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Mode == Disable || cfg.Mode == "" {
		return nil, fmt.Errorf("mtls.mode %q: no TLS server for a plaintext listener", cfg.Mode)
	}
	r, err := newReloader(cfg.Files, log)
	if err != nil {
		return nil, err
	}
	s := &Server{reloader: r, mode: cfg.Mode, timeout: cfg.HandshakeTimeout, detect: cfg.DetectTimeout}
	if s.timeout == 0 {
		s.timeout = 10 * time.Second
	}
	if s.detect == 0 {
		s.detect = time.Second
	}
	suites, _ := cipherSuites(cfg.CipherSuites, "mtls.") // validated above
	s.tls = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: suites,
		NextProtos:   []string{"h2", "http/1.1"}, // so http.Server.Serve sets up HTTP/2 for these conns
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			b := s.cur.Load()
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				CipherSuites: suites,
				Certificates: []tls.Certificate{*b.cert},
				ClientCAs:    b.roots,
				ClientAuth:   tls.RequireAndVerifyClientCert,
				NextProtos:   []string{"h2", "http/1.1"},
			}, nil
		},
	}
	return s, nil
}

// Mode is STRICT or PERMISSIVE.
func (s *Server) Mode() string { return s.mode }

// TLSConfig returns the server config: each handshake gets the current
// certificate and CA bundle, and must present a client certificate.
func (s *Server) TLSConfig() *tls.Config { return s.tls }

// ErrPlaintext is returned by Accept in STRICT mode for a non-TLS client.
var ErrPlaintext = errors.New("mtls STRICT: plaintext connection refused")

// Accept is called on each accepted connection, in its own goroutine (it
// reads the first byte). It returns the connection to serve: a completed
// *tls.Conn with its verified peer, or — in PERMISSIVE mode for a client
// that does not start with a TLS handshake — the plaintext connection (first
// byte included) with a nil peer; a PERMISSIVE client silent for
// detect_timeout is served as plaintext too. On error it closes conn.
func (s *Server) Accept(conn net.Conn) (net.Conn, *Peer, error) {
	wait := s.timeout
	if s.mode == Permissive {
		wait = min(s.detect, s.timeout)
	}
	conn.SetReadDeadline(time.Now().Add(wait))
	isTLS, pc, err := Peek(conn)
	var ne net.Error
	if err != nil && s.mode == Permissive && errors.As(err, &ne) && ne.Timeout() {
		// Silent client: a server-speaks-first protocol, in plaintext.
		conn.SetReadDeadline(time.Time{})
		return conn, nil, nil
	}
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("read first byte from %s: %w", conn.RemoteAddr(), err)
	}
	if !isTLS {
		if s.mode != Permissive {
			conn.Close()
			return nil, nil, fmt.Errorf("%w (from %s)", ErrPlaintext, conn.RemoteAddr())
		}
		conn.SetReadDeadline(time.Time{})
		return pc, nil, nil
	}
	tc := tls.Server(pc, s.tls)
	conn.SetDeadline(time.Now().Add(s.timeout))
	if err := tc.Handshake(); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("mtls handshake with %s: %w", conn.RemoteAddr(), err)
	}
	conn.SetDeadline(time.Time{})
	return tc, PeerOf(tc.ConnectionState()), nil
}

// Peek reads the first byte of conn and reports whether it starts a TLS
// handshake (record type 0x16). The returned conn yields that byte again.
func Peek(conn net.Conn) (bool, net.Conn, error) {
	br := bufio.NewReaderSize(conn, 512)
	b, err := br.Peek(1)
	if err != nil {
		return false, nil, err
	}
	return b[0] == 0x16, &peekedConn{Conn: conn, r: br}, nil
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) {
	if p.r != nil {
		if p.r.Buffered() > 0 {
			return p.r.Read(b)
		}
		p.r = nil
	}
	return p.Conn.Read(b)
}

// CloseWrite half-closes when the underlying connection can.
func (p *peekedConn) CloseWrite() error {
	if cw, ok := p.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("close write not supported")
}
