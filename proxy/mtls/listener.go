package mtls

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
)

// Listener wraps an accepting listener: each connection is sorted (and its
// handshake done) by Server.Accept in its own goroutine, so a slow client
// never blocks the others. Refused connections are logged at debug level
// and counted by the optional OnRefused hook.
type Listener struct {
	net.Listener
	s         *Server
	log       *slog.Logger
	OnRefused func(err error)

	conns chan net.Conn
	errc  chan error
	done  chan struct{}
	once  sync.Once
}

// NewListener starts accepting from inner.
func NewListener(inner net.Listener, s *Server, log *slog.Logger) *Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Listener{Listener: inner, s: s, log: log, conns: make(chan net.Conn), errc: make(chan error, 1), done: make(chan struct{})}
	go l.loop()
	return l
}

func (l *Listener) loop() {
	for {
		raw, err := l.Listener.Accept()
		if err != nil {
			select {
			case l.errc <- err:
			case <-l.done:
			}
			return
		}
		go func() {
			c, _, err := l.s.Accept(raw)
			if err != nil {
				l.log.Debug("inbound connection refused", "err", err)
				if l.OnRefused != nil {
					l.OnRefused(err)
				}
				return
			}
			select {
			case l.conns <- c:
			case <-l.done:
				c.Close()
			}
		}()
	}
}

// Accept returns the next sorted connection: a *tls.Conn after a verified
// handshake, or (PERMISSIVE) a plaintext one.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errc:
		l.errc <- err
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// ConnContext is an http.Server ConnContext that puts the verified peer of
// a TLS connection in the context (WithPeer).
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		if p := PeerOf(tc.ConnectionState()); p != nil {
			return WithPeer(ctx, p)
		}
	}
	return ctx
}

// IsPlaintextRefusal reports whether err is STRICT mode refusing plaintext.
func IsPlaintextRefusal(err error) bool { return errors.Is(err, ErrPlaintext) }
