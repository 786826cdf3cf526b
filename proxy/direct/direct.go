// Package direct forwards to a concrete address: the app behind the inbound
// listener (dialed from 127.0.0.6) or a transparent connection's original
// destination ("passthrough"). It keeps keep-alive pools per address for
// HTTP/1.1 and for h2c (prior knowledge), and opens raw TCP streams.
package direct

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"
)

// Options configure a Forwarder.
type Options struct {
	SourceIP       net.IP // local IPv4 address to dial from (nil: kernel's choice)
	SourceIP6      net.IP // local IPv6 address to dial from (nil: kernel's choice; unusable: kernel's choice)
	ConnectTimeout time.Duration
	IdleTimeout    time.Duration // idle pooled connection lifetime
	MaxIdlePerHost int
	// OnOpen / OnClose count upstream connections (may be nil).
	OnOpen, OnClose func()
}

// Forwarder sends requests and streams to the address they name.
type Forwarder struct {
	dialer  *net.Dialer // IPv4 targets (and names)
	dialer6 *net.Dialer // IPv6 targets
	h1, h2  *http.Transport
	o       Options
	pool    pool // fast-path HTTP/1.1 connections
}

// New returns a forwarder.
func New(o Options) *Forwarder {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 90 * time.Second
	}
	if o.MaxIdlePerHost <= 0 {
		o.MaxIdlePerHost = 256
	}
	f := &Forwarder{o: o, dialer: &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second},
		dialer6: &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}}
	if o.SourceIP != nil {
		f.dialer.LocalAddr = &net.TCPAddr{IP: o.SourceIP}
	}
	if o.SourceIP6 != nil {
		f.dialer6.LocalAddr = &net.TCPAddr{IP: o.SourceIP6}
	}
	mk := func(h2 bool) *http.Transport {
		t := &http.Transport{
			DialContext:           f.dial,
			MaxIdleConns:          0,
			MaxIdleConnsPerHost:   o.MaxIdlePerHost,
			IdleConnTimeout:       o.IdleTimeout,
			DisableCompression:    true,
			ExpectContinueTimeout: 0,
		}
		var p http.Protocols
		if h2 {
			p.SetUnencryptedHTTP2(true)
		} else {
			p.SetHTTP1(true)
		}
		t.Protocols = &p
		return t
	}
	f.h1, f.h2 = mk(false), mk(true)
	return f
}

// RoundTrip sends req to req.URL.Host, over h2c when req is HTTP/2 (the
// protocol the client chose is kept end to end), else HTTP/1.1.
func (f *Forwarder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.ProtoMajor == 2 && req.Header.Get("Upgrade") == "" {
		return f.h2.RoundTrip(req)
	}
	if f.fastOK(req) {
		return f.fastRoundTrip(req)
	}
	return f.h1.RoundTrip(req)
}

// RoundTripH1 sends req over HTTP/1.1 whatever the client spoke.
func (f *Forwarder) RoundTripH1(req *http.Request) (*http.Response, error) {
	return f.h1.RoundTrip(req)
}

// DialTCP opens a raw TCP stream to addr.
func (f *Forwarder) DialTCP(ctx context.Context, addr string) (net.Conn, error) {
	return f.dial(ctx, "tcp", addr)
}

// CloseIdle closes idle pooled connections.
func (f *Forwarder) CloseIdle() {
	f.h1.CloseIdleConnections()
	f.h2.CloseIdleConnections()
	f.closeIdleFast()
}

func (f *Forwarder) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := f.dialer
	if ap, perr := netip.ParseAddrPort(addr); perr == nil && ap.Addr().Is6() && !ap.Addr().Is4In6() {
		d = f.dialer6
	}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil && d.LocalAddr != nil && errors.Is(err, syscall.EADDRNOTAVAIL) {
		// The source address is not configured here (::6 is not on lo by
		// default): dial from the kernel's choice; the proxy's UID is
		// exempt from redirection anyway.
		plain := *d
		plain.LocalAddr = nil
		c, err = plain.DialContext(ctx, network, addr)
	}
	if err != nil {
		return nil, err
	}
	if f.o.OnOpen == nil {
		return c, nil
	}
	f.o.OnOpen()
	return &countedConn{Conn: c, onClose: f.o.OnClose}, nil
}

type countedConn struct {
	net.Conn
	closed  atomic.Bool
	onClose func()
}

func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) && c.onClose != nil {
		c.onClose()
	}
	return c.Conn.Close()
}

// CloseWrite half-closes a TCP stream.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// ReadFrom keeps splice(2) working through the wrapper.
func (c *countedConn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.Conn, r) }

// WriteTo keeps splice(2) working through the wrapper.
func (c *countedConn) WriteTo(w io.Writer) (int64, error) {
	if wt, ok := c.Conn.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	return io.Copy(w, struct{ io.Reader }{c.Conn})
}
