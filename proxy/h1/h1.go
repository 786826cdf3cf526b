// Package h1 serves HTTP/1.x on connections the proxy has already accepted
// and sniffed, with net/http's own parser (http.ReadRequest, the request
// body readers) and a small response writer. Compared with http.Server it
// runs each exchange on the connection's goroutine without the extra
// per-request read net/http issues to notice a client going away, and it
// checks every request head — not only a connection's first — for both
// Content-Length and Transfer-Encoding (request smuggling) before parsing.
package h1

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Server serves HTTP/1.x connections with Handler.
type Server struct {
	Handler           http.Handler
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int
	// ConnContext returns the context of a connection's requests.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
	// OnProtocolError is told of each refused request ("bad_request",
	// "header_too_large", "content_length_and_transfer_encoding").
	OnProtocolError func(kind string)

	mu       sync.Mutex
	conns    map[*conn]struct{}
	shutting atomic.Bool
}

type conn struct {
	c      net.Conn
	active atomic.Bool
}

// ErrServerClosed is returned by ServeConn for connections arriving after Shutdown.
var ErrServerClosed = errors.New("h1: server closed")

func (s *Server) track(c *conn, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
	}
	if add {
		s.conns[c] = struct{}{}
	} else {
		delete(s.conns, c)
	}
}

// Shutdown stops keep-alive: idle connections are closed now, active ones
// after their current exchange. It returns when none is left or ctx ends
// (then it closes what remains and returns ctx's error).
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutting.Store(true)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		n := 0
		for c := range s.conns {
			if !c.active.Load() {
				c.c.Close()
				continue
			}
			n++
		}
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Close closes every connection at once.
func (s *Server) Close() {
	s.shutting.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.c.Close()
	}
}

// ServeConn serves nc until the client closes it, an error, or Shutdown.
// It closes nc unless a handler hijacked it.
func (s *Server) ServeConn(nc net.Conn) {
	cn := &conn{c: nc}
	s.track(cn, true)
	defer s.track(cn, false)
	if s.shutting.Load() {
		nc.Close()
		return
	}
	ctx := context.Background()
	if s.ConnContext != nil {
		ctx = s.ConnContext(ctx, nc)
	}
	remote := nc.RemoteAddr().String()
	br := bufio.NewReaderSize(nc, 4096)
	bw := bufio.NewWriterSize(nc, 4096)
	hijacked := false
	defer func() {
		if !hijacked {
			nc.Close()
		}
	}()
	maxHead := s.MaxHeaderBytes
	if maxHead <= 0 {
		maxHead = 1 << 20
	}
	// The first request's head is bounded from the accept (the sniffer
	// already waited for its first bytes), later ones from their first byte.
	headStart := time.Now()
	if a, ok := nc.(interface{ AcceptedAt() time.Time }); ok {
		headStart = a.AcceptedAt()
	}
	var headBuf []byte
	first := true
	for {
		// Wait for the next request: the idle timeout between requests.
		if !first {
			if s.IdleTimeout > 0 {
				nc.SetReadDeadline(time.Now().Add(s.IdleTimeout))
			} else {
				nc.SetReadDeadline(time.Time{})
			}
			if _, err := br.Peek(1); err != nil {
				return
			}
			headStart = time.Now()
		}
		cn.active.Store(true)
		if s.shutting.Load() && !first {
			return
		}
		first = false
		if s.ReadHeaderTimeout > 0 {
			nc.SetReadDeadline(headStart.Add(s.ReadHeaderTimeout))
		} else {
			nc.SetReadDeadline(time.Time{})
		}
		head, got, err := readHead(br, maxHead, headBuf)
		if err != nil {
			switch {
			case errors.Is(err, errHeadTooLarge):
				s.refuse(bw, 431, "header_too_large", "request header fields too large")
			case isTimeout(err) && got:
				s.refuse(bw, 408, "header_timeout", "request timeout")
			case errors.Is(err, errBlankLines):
				s.refuse(bw, 400, "bad_request", "bad request")
			default:
				return // the client closed (mid-head or between requests)
			}
			lingerClose(nc)
			return
		}
		if cap(head) <= 8<<10 {
			headBuf = head[:0] // reuse a small head's buffer; drop a large one
		} else {
			headBuf = nil
		}
		nc.SetReadDeadline(time.Time{})
		fr := scanHead(head)
		if fr.cl && fr.te {
			s.refuse(bw, 400, "content_length_and_transfer_encoding", "both Content-Length and Transfer-Encoding are set")
			lingerClose(nc)
			return
		}
		if fr.te && !fr.chunkedOnly() {
			s.refuse(bw, 501, "unsupported_transfer_encoding", "unsupported transfer encoding")
			lingerClose(nc)
			return
		}
		req, err := parseHead(head)
		if err != nil {
			s.refuse(bw, 400, "bad_request", "bad request")
			lingerClose(nc)
			return
		}
		if msg := check(req); msg != "" {
			s.refuse(bw, 400, "bad_request", msg)
			lingerClose(nc)
			return
		}
		if fr.te && !req.ProtoAtLeast(1, 1) {
			s.refuse(bw, 400, "bad_request", "Transfer-Encoding in an HTTP/1.0 request")
			lingerClose(nc)
			return
		}
		// The body is read from the connection, framed here (not by the
		// parser, which saw the head only).
		switch {
		case fr.te:
			req.Body, req.ContentLength = &chunkedBody{br: br}, -1
			req.TransferEncoding = []string{"chunked"}
		case req.ContentLength > 0:
			req.Body = &lengthBody{br: br, remain: req.ContentLength}
		default:
			req.Body, req.ContentLength = http.NoBody, 0
		}
		req.RemoteAddr = remote
		req = req.WithContext(ctx)
		var tb *trackBody
		if req.Body != nil && req.Body != http.NoBody {
			tb = &trackBody{rc: req.Body}
			req.Body = tb
		}
		w := &writer{bw: bw, req: req, hdr: make(http.Header, 8), conn: nc, br: br}
		if req.Header.Get("Expect") == "100-continue" && req.ContentLength != 0 && req.ProtoAtLeast(1, 1) {
			req.Body = &continueReader{r: req.Body, w: w}
		}
		s.serve(w, req)
		if w.hijacked {
			hijacked = true
			return
		}
		if tb != nil && tb.err != nil {
			// A malformed or aborted body: the connection's framing is lost;
			// nothing after it is read. A handler that answered nothing
			// gets no default 200 either.
			w.closeAfter = true
			if !w.wroteHeader {
				w.aborted = true
			}
		}
		if err := w.finish(); err != nil || w.closeAfter {
			return
		}
		if w.closeAfter || req.Close || s.shutting.Load() {
			return
		}
		// A body the handler did not read must not be taken for the next
		// request: drain a little of it, else close. (Closing a body reads it
		// to its end, so a closed one is done.)
		if tb != nil && !tb.eof && !tb.closed {
			if _, err := io.CopyN(io.Discard, tb.rc, 256<<10); err != io.EOF {
				return
			}
		}
		cn.active.Store(false)
	}
}

func (s *Server) serve(w *writer, req *http.Request) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				panic(p)
			}
			w.closeAfter = true
			w.aborted = true
		}
	}()
	s.Handler.ServeHTTP(w, req)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

var headReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// parseHead parses a whole request head with net/http's parser.
func parseHead(head []byte) (*http.Request, error) {
	r := headReaders.Get().(*bufio.Reader)
	r.Reset(bytes.NewReader(head))
	defer func() { r.Reset(nil); headReaders.Put(r) }()
	req, err := http.ReadRequest(r)
	if err != nil {
		return nil, err
	}
	if !KnownMethod(req.Method) {
		return nil, errors.New("unknown method")
	}
	return req, nil
}

// check applies the rules net/http's server adds to the parser's.
func check(req *http.Request) string {
	hosts, haveHost := req.Header["Host"]
	if req.ProtoAtLeast(1, 1) && req.Host == "" && (!haveHost || len(hosts) == 0) && req.Method != http.MethodConnect {
		return "missing required Host header"
	}
	if len(hosts) > 1 {
		return "too many Host headers"
	}
	if !httpguts.ValidHostHeader(req.Host) {
		return "malformed Host header"
	}
	for k, vv := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return "invalid header name"
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return "invalid header value"
			}
		}
	}
	delete(req.Header, "Host")
	return ""
}

func (s *Server) refuse(bw *bufio.Writer, code int, kind, msg string) {
	if s.OnProtocolError != nil {
		s.OnProtocolError(kind)
	}
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		code, http.StatusText(code), len(msg), msg)
	bw.Flush()
}

// continueReader sends "100 Continue" before the first read of the body.
type continueReader struct {
	r    io.ReadCloser
	w    *writer
	sent bool
}

func (c *continueReader) Read(p []byte) (int, error) {
	if !c.sent {
		c.sent = true
		if !c.w.wroteHeader {
			c.w.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			c.w.bw.Flush()
		}
	}
	return c.r.Read(p)
}

func (c *continueReader) Close() error { return c.r.Close() }

// writer is the http.ResponseWriter of one exchange.
type writer struct {
	bw          *bufio.Writer
	br          *bufio.Reader
	conn        net.Conn
	req         *http.Request
	hdr         http.Header
	status      int
	wroteHeader bool
	chunked     bool
	noBody      bool
	remain      int64 // declared Content-Length left to write; -1 none
	closeAfter  bool
	hijacked    bool
	aborted     bool
	err         error
}

func (w *writer) Header() http.Header { return w.hdr }

func (w *writer) WriteHeader(code int) {
	if w.wroteHeader || w.hijacked {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.writeStatus(code)
		w.bw.WriteString("\r\n")
		return
	}
	w.wroteHeader, w.status = true, code
	h := w.hdr
	w.remain = -1
	bodyless := w.req.Method == http.MethodHead || code == 204 || code == 304 || code < 200
	if cl := h.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			w.remain = n
		} else {
			delete(h, "Content-Length")
		}
	}
	delete(h, "Transfer-Encoding")
	switch {
	case bodyless:
		w.noBody = true
		w.remain = -1 // a HEAD/204/304 Content-Length describes a body that is not sent
	case w.remain >= 0:
	case w.req.ProtoAtLeast(1, 1):
		w.chunked = true
	default:
		w.closeAfter = true // HTTP/1.0 without a length: the body ends with the connection
	}
	if w.req.Close || !w.req.ProtoAtLeast(1, 1) && !strings.EqualFold(w.req.Header.Get("Connection"), "keep-alive") {
		w.closeAfter = true
	}
	if v := h["Connection"]; len(v) > 0 && strings.EqualFold(v[0], "close") {
		w.closeAfter = true
	}
	w.writeStatus(code)
	for k, vv := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) || k == "Connection" {
			continue
		}
		for _, v := range vv {
			if strings.ContainsAny(v, "\r\n") {
				continue
			}
			w.bw.WriteString(k)
			w.bw.WriteString(": ")
			w.bw.WriteString(v)
			w.bw.WriteString("\r\n")
		}
	}
	if w.chunked {
		w.bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if w.closeAfter {
		w.bw.WriteString("Connection: close\r\n")
	} else if !w.req.ProtoAtLeast(1, 1) {
		w.bw.WriteString("Connection: keep-alive\r\n")
	}
	w.bw.WriteString("\r\n")
}

func (w *writer) writeStatus(code int) {
	w.bw.WriteString("HTTP/1.1 ")
	var b [3]byte
	w.bw.Write(strconv.AppendInt(b[:0], int64(code), 10))
	w.bw.WriteByte(' ')
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	w.bw.WriteString(text)
	w.bw.WriteString("\r\n")
}

func (w *writer) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.noBody {
		return 0, http.ErrBodyNotAllowed
	}
	if len(p) == 0 {
		return 0, nil
	}
	if w.remain >= 0 {
		if int64(len(p)) > w.remain {
			return 0, http.ErrContentLength
		}
		w.remain -= int64(len(p))
	}
	if w.chunked {
		var b [20]byte
		w.bw.Write(strconv.AppendInt(b[:0], int64(len(p)), 16))
		w.bw.WriteString("\r\n")
	}
	n, err := w.bw.Write(p)
	if w.chunked && err == nil {
		_, err = w.bw.WriteString("\r\n")
	}
	if err != nil {
		w.err = err
	}
	return n, err
}

func (w *writer) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if err := w.bw.Flush(); err != nil && w.err == nil {
		w.err = err
	}
}

// FlushError is for http.ResponseController.
func (w *writer) FlushError() error { w.Flush(); return w.err }

func (w *writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.wroteHeader {
		return nil, nil, errors.New("h1: hijack after the response head")
	}
	w.hijacked = true
	return w.conn, bufio.NewReadWriter(w.br, w.bw), nil
}

// finish ends the response: the last chunk with trailers, then a flush.
func (w *writer) finish() error {
	if w.aborted {
		w.bw.Flush()
		return errors.New("aborted")
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.chunked {
		w.bw.WriteString("0\r\n")
		for k, vv := range w.hdr {
			name, ok := strings.CutPrefix(k, http.TrailerPrefix)
			if !ok {
				continue
			}
			for _, v := range vv {
				if !strings.ContainsAny(v, "\r\n") {
					w.bw.WriteString(name + ": " + v + "\r\n")
				}
			}
		}
		w.bw.WriteString("\r\n")
	}
	if w.remain > 0 {
		w.closeAfter = true // short body: the client must not reuse the connection
		w.bw.Flush()
		return errors.New("short body")
	}
	if err := w.bw.Flush(); err != nil {
		return err
	}
	return w.err
}

// trackBody notes whether a request body was read to its end or closed,
// and the first error reading it.
type trackBody struct {
	rc          io.ReadCloser
	eof, closed bool
	err         error
}

func (b *trackBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	} else if err != nil && b.err == nil {
		b.err = err
	}
	return n, err
}

func (b *trackBody) Close() error { b.closed = true; return b.rc.Close() }

// lingerClose half-closes after an error reply and reads what the client
// still sends for a moment, so the kernel does not answer unread data with
// a reset that destroys the reply (net/http's closeWriteAndWait).
func lingerClose(nc net.Conn) {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	io.CopyN(io.Discard, nc, 256<<10)
}
