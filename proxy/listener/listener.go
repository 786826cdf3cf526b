// Package listener accepts downstream connections, reads each one's original
// destination (SO_ORIGINAL_DST) in transparent mode, sniffs its protocol from
// the first bytes and hands it on: HTTP connections to an http.Server through
// a channel-backed net.Listener, everything else to a stream handler. It also
// holds the byte pump used for raw TCP, TLS passthrough, Upgrade and CONNECT.
package listener

import (
	"github.com/sidecarkit/sidecarkit/shared/origdst"

	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/sidecarkit/sidecarkit/proxy/sniff"
)

// Conn is an accepted downstream connection with what was learnt about it.
// Reads return the sniffed bytes first, then the socket's.
type Conn struct {
	net.Conn                // the socket, or the TLS connection terminated on it
	TCP        *net.TCPConn // the socket (splice, SO_ORIGINAL_DST); nil above TLS
	prefix     []byte
	Proto      sniff.Protocol
	OrigDst    netip.AddrPort // original destination (transparent) — invalid when not redirected
	ServerName string         // TLS SNI, when Proto is TLS
	Peer       any            // the verified mTLS peer (*mtls.Peer) when TLS was terminated
	TLS        bool           // TLS was terminated by the proxy
	Accepted   time.Time
	// Declared is the protocol the port declares (config.ProtoHTTP or
	// ProtoTCP), "" when it is sniffed.
	Declared  string
	onClose   func()
	closeOnce sync.Once
	ipOnce    sync.Once
	ip        string
}

// ClientIP returns the remote IP as a string, computed once per connection.
func (c *Conn) ClientIP() string {
	c.ipOnce.Do(func() {
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			c.ip = a.IP.String()
		}
	})
	return c.ip
}

// AcceptedAt is when the connection was accepted: the HTTP server bounds
// the first request head from then (the header-read timeout covers the
// wait for the first bytes too).
func (c *Conn) AcceptedAt() time.Time { return c.Accepted }

// Read reads the sniffed prefix, then the socket.
func (c *Conn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// Close closes the socket (once) and runs the close hook.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		if c.onClose != nil {
			c.onClose()
		}
	})
	return err
}

// CloseWrite half-closes the connection (TCP FIN, or TLS close_notify).
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// TakePrefix returns the sniffed bytes not yet read and forgets them, so the
// caller can write them out and then copy from the raw socket (splice).
func (c *Conn) TakePrefix() []byte { p := c.prefix; c.prefix = nil; return p }

// Options say how to accept and sniff.
type Options struct {
	Transparent   bool
	Sniff         bool          // false: every connection is raw TCP
	DetectTimeout time.Duration // no first byte within this: raw TCP (server speaks first)
	// HeadTimeout bounds how long a connection declared (or sniffed) HTTP
	// may take to show its first bytes; the HTTP server's header-read
	// timeout, counted from the accept.
	HeadTimeout time.Duration
	// Declare returns the protocol declared for a connection's port ("http",
	// "tcp", or "" to sniff), from its original destination (invalid when not
	// redirected). Nil: sniff every connection.
	Declare func(orig netip.AddrPort) string
	// OnOpen/OnClose count connections (may be nil).
	OnOpen  func()
	OnClose func()
	// Track, when set, counts each connection from its accept until its
	// handle call returns (added before the goroutine starts, so a Wait
	// after Accept returned sees every connection).
	Track *sync.WaitGroup
}

// Accept runs the accept loop on ln until it is closed, sniffing each
// connection in its own goroutine and passing it to handle. It returns when
// ln is closed; handle calls may still be running (the caller tracks them).
func Accept(ln net.Listener, o Options, handle func(*Conn)) error {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors or a transient error: back off, as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		tc, ok := nc.(*net.TCPConn)
		if !ok {
			nc.Close()
			continue
		}
		c := &Conn{Conn: tc, TCP: tc, Accepted: time.Now(), onClose: o.OnClose}
		if o.OnOpen != nil {
			o.OnOpen()
		}
		if o.Track != nil {
			o.Track.Add(1)
		}
		go func() {
			if o.Track != nil {
				defer o.Track.Done()
			}
			prepare(c, o)
			handle(c)
		}()
	}
}

func prepare(c *Conn, o Options) {
	if o.Transparent {
		if dst, err := origdst.Get(c.TCP); err == nil {
			if local, ok := c.LocalAddr().(*net.TCPAddr); !ok || local.AddrPort() != dst {
				c.OrigDst = dst
			}
		}
	}
	if !o.Sniff {
		c.Proto = sniff.TCP
		return
	}
	if o.Declare != nil {
		c.Declared = o.Declare(c.OrigDst)
	}
	if c.Declared == "tcp" {
		c.Proto = sniff.TCP
		return
	}
	Sniff(c, o.DetectTimeout, o.HeadTimeout)
}

// Sniff detects c's protocol (and a TLS client's SNI) from its first bytes.
// It classifies once: bytes that may begin an HTTP request are HTTP (a slow
// client is the HTTP server's to time out with 408), never raw TCP. On a
// port declared HTTP (c.Declared) only h2c and TLS are told apart from
// HTTP/1; nothing becomes raw TCP.
func Sniff(c *Conn, detectTimeout, headTimeout time.Duration) {
	c.Proto = detect(c, detectTimeout, headTimeout)
	if c.Proto == sniff.TLS {
		readHello(c, detectTimeout)
	}
}

// Over returns a Conn for a TLS connection terminated on c: it keeps c's
// original destination and acceptance time; closing it closes c.
func Over(c *Conn, tlsConn net.Conn, peer any) *Conn {
	return &Conn{Conn: tlsConn, OrigDst: c.OrigDst, Accepted: c.Accepted, Peer: peer, TLS: true, Declared: c.Declared}
}

// detect reads until the protocol is known. Only a client that sends
// nothing within detectTimeout is raw TCP (a server-speaks-first
// protocol); once bytes that may start an HTTP request arrived the wait
// is bounded by headTimeout (from the accept) and ends as HTTP/1.
func detect(c *Conn, detectTimeout, headTimeout time.Duration) sniff.Protocol {
	declared := c.Declared == "http"
	first := detectTimeout
	if declared && headTimeout > 0 {
		first = headTimeout
	}
	c.SetReadDeadline(time.Now().Add(first))
	defer c.SetReadDeadline(time.Time{})
	buf := make([]byte, 0, 64)
	for {
		n, err := c.Conn.Read(buf[len(buf):cap(buf)])
		if len(buf) == 0 && n > 0 && headTimeout > 0 {
			// The first byte: from now on the header-read timeout applies.
			c.SetReadDeadline(c.Accepted.Add(max(headTimeout, detectTimeout)))
		}
		buf = buf[:len(buf)+n]
		c.prefix = buf
		p := sniff.Detect(buf)
		if declared {
			switch {
			case p == sniff.HTTP2 || p == sniff.TLS:
				return p
			case p == sniff.Unknown && err == nil && len(buf) < len(sniff.Preface) && isPrefix(buf, sniff.Preface):
				continue // maybe the h2c preface
			case p == sniff.Unknown && err == nil && len(buf) == 1 && buf[0] == 0x16:
				continue // maybe TLS
			}
			return sniff.HTTP1 // parsed (and refused when malformed) by the HTTP server
		}
		if p != sniff.Unknown {
			return p
		}
		if err != nil || len(buf) >= sniff.MaxDetectBytes {
			if sniff.MayBeHTTP(buf) {
				// A slow or truncated request: the HTTP server answers it (408/400).
				return sniff.HTTP1
			}
			// Nothing sent (a server-speaks-first protocol), or not HTTP: raw TCP.
			return sniff.TCP
		}
	}
}

func isPrefix(b []byte, s string) bool { return len(b) <= len(s) && string(b) == s[:len(b)] }

// readHello reads the whole first TLS record and parses its SNI.
func readHello(c *Conn, timeout time.Duration) {
	c.SetReadDeadline(time.Now().Add(timeout))
	defer c.SetReadDeadline(time.Time{})
	for {
		want := sniff.RecordLen(c.prefix)
		if want > sniff.MaxRecord {
			return
		}
		if want > 0 && len(c.prefix) >= want {
			c.ServerName, _ = sniff.ServerName(c.prefix[:want])
			return
		}
		if want == 0 {
			want = 5
		}
		if cap(c.prefix) < want {
			nb := make([]byte, len(c.prefix), want)
			copy(nb, c.prefix)
			c.prefix = nb
		}
		n, err := c.Conn.Read(c.prefix[len(c.prefix):want])
		c.prefix = c.prefix[:len(c.prefix)+n]
		if err != nil {
			return
		}
	}
}

// ChanListener is a net.Listener whose connections are pushed by Push; an
// http.Server serves it.
type ChanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

// NewChanListener returns a listener reporting addr.
func NewChanListener(addr net.Addr) *ChanListener {
	return &ChanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// Push hands c to the server; it closes c and reports false if the listener is closed.
func (l *ChanListener) Push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		c.Close()
		return false
	}
}

// Accept implements net.Listener.
func (l *ChanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (l *ChanListener) Close() error { l.closed.Do(func() { close(l.done) }); return nil }

// Addr implements net.Listener.
func (l *ChanListener) Addr() net.Addr { return l.addr }

// Pipe copies bytes both ways between a and b until both directions end,
// honouring half-close (EOF on one side closes the other side's write half),
// then closes both. It returns the bytes copied a→b and b→a. When ctx ends
// both are closed at once. Copies between TCP sockets use splice(2).
func Pipe(ctx context.Context, a, b net.Conn) (ab, ba int64) {
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { a.Close(); b.Close() })
	defer stop()
	go func() {
		ba = copyHalf(a, b)
		close(done)
	}()
	ab = copyHalf(b, a)
	<-done
	a.Close()
	b.Close()
	return ab, ba
}

func copyHalf(dst, src net.Conn) int64 {
	var n int64
	if c, ok := src.(*Conn); ok {
		if p := c.TakePrefix(); len(p) > 0 {
			m, err := dst.Write(p)
			n += int64(m)
			if err != nil {
				closeWrite(dst)
				return n
			}
		}
		src = c.Conn
	}
	if c, ok := dst.(*Conn); ok {
		dst = c.Conn
	}
	m, _ := io.Copy(dst, src)
	n += m
	closeWrite(dst)
	return n
}

func closeWrite(c net.Conn) {
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := c.(closeWriter); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

// ErrHeadTooLarge is returned by ReadHead when no complete head fits in max bytes.
var ErrHeadTooLarge = errors.New("request head too large")

// ReadHead reads (into the replayed prefix) until the first HTTP/1 request
// head is complete and returns it; the bytes are still delivered by Read.
func (c *Conn) ReadHead(max int) ([]byte, error) {
	for {
		if i := bytes.Index(c.prefix, []byte("\r\n\r\n")); i >= 0 {
			return c.prefix[:i+4], nil
		}
		if i := bytes.Index(c.prefix, []byte("\n\n")); i >= 0 {
			return c.prefix[:i+2], nil
		}
		if len(c.prefix) >= max {
			return nil, ErrHeadTooLarge
		}
		if cap(c.prefix)-len(c.prefix) < 512 {
			nb := make([]byte, len(c.prefix), min(max, 2*cap(c.prefix)+1024))
			copy(nb, c.prefix)
			c.prefix = nb
		}
		n, err := c.Conn.Read(c.prefix[len(c.prefix):cap(c.prefix)])
		c.prefix = c.prefix[:len(c.prefix)+n]
		if err != nil {
			return nil, err
		}
	}
}
