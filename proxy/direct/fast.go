package direct

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// The fast path: an HTTP/1.1 exchange with no body or a small body of known
// length is written and its response read on the calling goroutine over a
// pooled connection, with net/http's own serializer (Request.Write) and
// parser (http.ReadResponse). http.Transport hands each exchange to two
// more goroutines (writeLoop, readLoop); on one core that is most of the
// proxy's scheduling cost. Streaming bodies, upgrades and HTTP/2 keep using
// http.Transport.

const fastMaxBody = 64 << 10

type pconn struct {
	c    net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	idle time.Time
}

type pool struct {
	mu   sync.Mutex
	idle map[string][]*pconn
}

func (f *Forwarder) fastOK(req *http.Request) bool {
	if req.ProtoMajor != 1 || req.Method == http.MethodConnect || req.Header["Upgrade"] != nil {
		return false
	}
	if req.Body == nil || req.Body == http.NoBody {
		return true
	}
	return req.ContentLength > 0 && req.ContentLength <= fastMaxBody
}

func (f *Forwarder) get(addr string) *pconn {
	f.pool.mu.Lock()
	defer f.pool.mu.Unlock()
	list := f.pool.idle[addr]
	for len(list) > 0 {
		pc := list[len(list)-1]
		list = list[:len(list)-1]
		if time.Since(pc.idle) < f.o.IdleTimeout {
			f.pool.idle[addr] = list
			return pc
		}
		pc.c.Close()
	}
	if f.pool.idle != nil {
		f.pool.idle[addr] = list
	}
	return nil
}

func (f *Forwarder) put(addr string, pc *pconn) {
	pc.idle = time.Now()
	f.pool.mu.Lock()
	if f.pool.idle == nil {
		f.pool.idle = map[string][]*pconn{}
	}
	if len(f.pool.idle[addr]) < f.o.MaxIdlePerHost {
		f.pool.idle[addr] = append(f.pool.idle[addr], pc)
		pc = nil
	}
	f.pool.mu.Unlock()
	if pc != nil {
		pc.c.Close()
	}
}

func (f *Forwarder) closeIdleFast() {
	f.pool.mu.Lock()
	all := f.pool.idle
	f.pool.idle = nil
	f.pool.mu.Unlock()
	for _, list := range all {
		for _, pc := range list {
			pc.c.Close()
		}
	}
}

var errAborted = errors.New("request cancelled")

// fastRoundTrip does one exchange on the calling goroutine. A request that
// fails on a reused connection before any response byte is retried once
// on a new connection when it carries no body and is idempotent (the
// server may have closed the idle connection; a POST may have reached it).
func (f *Forwarder) fastRoundTrip(req *http.Request) (*http.Response, error) {
	addr := req.URL.Host
	ctx := req.Context()
	noBody := req.Body == nil || req.Body == http.NoBody
	for attempt := 0; ; attempt++ {
		var pc *pconn
		if attempt == 0 {
			pc = f.get(addr) // a retry always dials: other idle connections may be stale too
		}
		reused := pc != nil
		if pc == nil {
			c, err := f.dial(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			pc = &pconn{c: c, br: bufio.NewReaderSize(c, 4096), bw: bufio.NewWriterSize(c, 4096)}
		}
		stop := context.AfterFunc(ctx, func() { pc.c.SetDeadline(time.Unix(1, 0)) })
		err := req.Write(pc.bw)
		if err == nil {
			err = pc.bw.Flush()
		}
		var resp *http.Response
		if err == nil {
			resp, err = http.ReadResponse(pc.br, req)
			for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 {
				resp, err = http.ReadResponse(pc.br, req) // 1xx: the final answer follows
			}
		}
		if err != nil {
			stop()
			pc.c.Close()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if reused && noBody && attempt == 0 && replayable(req) {
				continue
			}
			return nil, err
		}
		resp.Body = &fastBody{rc: resp.Body, pc: pc, f: f, addr: addr, stop: stop, reuse: !resp.Close && !req.Close}
		return resp, nil
	}
}

// replayable reports whether req may be sent again after a reused
// connection failed: it may have reached the app, so only an idempotent
// method (RFC 9110 §9.2.2, as Go's transport: GET, HEAD, OPTIONS, TRACE)
// or a request carrying an Idempotency-Key.
func replayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	_, a := req.Header["Idempotency-Key"]
	_, b := req.Header["X-Idempotency-Key"]
	return a || b
}

// fastBody returns the connection to the pool once the body has been read
// to its end, or closes it when the body is closed early.
type fastBody struct {
	rc    io.ReadCloser
	pc    *pconn
	f     *Forwarder
	addr  string
	stop  func() bool
	reuse bool
	done  bool
}

func (b *fastBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.release(true)
	} else if err != nil {
		b.release(false)
	}
	return n, err
}

func (b *fastBody) Close() error {
	if !b.done {
		b.release(b.rc == http.NoBody)
	}
	return nil
}

func (b *fastBody) release(ok bool) {
	if b.done {
		return
	}
	b.done = true
	b.rc.Close()
	if !b.stop() || !ok || !b.reuse || b.pc.br.Buffered() > 0 {
		b.pc.c.Close()
		return
	}
	b.pc.c.SetDeadline(time.Time{})
	b.f.put(b.addr, b.pc)
}
