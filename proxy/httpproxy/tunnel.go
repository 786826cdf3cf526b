package httpproxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"

	"github.com/sidecarkit/sidecarkit/proxy/listener"
)

// upgrade finishes a 101 Switching Protocols exchange (WebSocket and other
// HTTP/1.1 upgrades): the response head goes to the client, then bytes are
// pumped both ways until either side ends.
func (h *Handler) upgrade(w http.ResponseWriter, r *http.Request, x *exchange, resp *http.Response) {
	upConn, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		x.flag = "UPE"
		h.localReply(w, x, http.StatusBadGateway, "upstream switched protocols without a stream")
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		upConn.Close()
		x.flag = "DPE"
		h.localReply(w, x, http.StatusBadGateway, "cannot upgrade this connection")
		return
	}
	h.trackTunnel() // before the hijack: a drain waiting on the server then waits on the tunnel
	down, brw, err := hj.Hijack()
	if err != nil {
		h.untrackTunnel()
		upConn.Close()
		x.flag, x.status = "DC", 499
		return
	}
	x.status, x.upgraded = http.StatusSwitchingProtocols, true
	hdr := resp.Header.Clone()
	hdr["X-Request-Id"] = []string{x.rid}
	appendVia(hdr, 1, 1, h.ProxyName)
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	hdr.Write(brw)
	brw.WriteString("\r\n")
	if err := brw.Flush(); err != nil {
		h.untrackTunnel()
		down.Close()
		upConn.Close()
		x.flag = "DC"
		return
	}
	in, out := h.pump(down, brw.Reader, upConn)
	x.in.Add(in)
	x.out += out
}

// connect serves CONNECT host:port: a TCP stream to the route's cluster or,
// on an outbound listener that passes through, to the named authority.
func (h *Handler) connect(w http.ResponseWriter, r *http.Request, x *exchange, snap *Snapshot) {
	var up net.Conn
	var err error
	x.routeNm, x.target = "default", "passthrough"
	if x.route != nil {
		x.routeNm = x.route.Name
		x.cluster, x.target = snap.Clusters[x.route.Cluster], x.route.Cluster
	}
	switch {
	case x.cluster != nil:
		up, x.upHost, err = x.cluster.DialTCP(r.Context())
	case !h.inbound && snap.Config.OutboundPassthrough && x.route == nil:
		x.upHost = r.Host
		up, err = h.Direct.DialTCP(r.Context(), r.Host)
	default:
		x.flag = "NR"
		h.localReply(w, x, http.StatusForbidden, "CONNECT not allowed here")
		return
	}
	if err != nil {
		status, flag, body := h.classify(err, r.Context())
		x.flag = flag
		h.localReply(w, x, status, body)
		return
	}
	x.upgraded = true
	if r.ProtoMajor == 2 {
		// HTTP/2 CONNECT (RFC 9113 §8.5): the stream is the tunnel.
		x.status = http.StatusOK
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		rc.Flush()
		done := make(chan int64, 1)
		go func() {
			n, _ := io.Copy(up, r.Body)
			if cw, ok := up.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			}
			done <- n
		}()
		h.copyBody(w, up, x, true)
		up.Close()
		x.in.Add(<-done)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		h.localReply(w, x, http.StatusBadGateway, "cannot hijack")
		return
	}
	h.trackTunnel()
	down, brw, err := hj.Hijack()
	if err != nil {
		h.untrackTunnel()
		up.Close()
		x.flag, x.status = "DC", 499
		return
	}
	x.status = http.StatusOK
	brw.WriteString("HTTP/1.1 200 Connection established\r\nX-Request-Id: " + x.rid + "\r\n\r\n")
	if err := brw.Flush(); err != nil {
		h.untrackTunnel()
		down.Close()
		up.Close()
		x.flag = "DC"
		return
	}
	in, out := h.pump(down, brw.Reader, up)
	x.in.Add(in)
	x.out += out
}

// pump copies between the hijacked downstream connection (whose already
// buffered bytes are sent first) and the upstream stream until both
// directions end, honouring half-close where the upstream supports it.
func (h *Handler) pump(down net.Conn, buffered *bufio.Reader, up io.ReadWriteCloser) (in, out int64) {
	ctx := h.TunnelCtx
	if ctx == nil {
		ctx = context.Background()
	}
	defer h.untrackTunnel()
	if n := buffered.Buffered(); n > 0 {
		b, _ := buffered.Peek(n)
		m, _ := up.Write(b)
		in += int64(m)
	}
	if upc, ok := up.(net.Conn); ok {
		ab, ba := listener.Pipe(ctx, down, upc)
		return in + ab, ba
	}
	stop := context.AfterFunc(ctx, func() { down.Close(); up.Close() })
	defer stop()
	done := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(down, up)
		if cw, ok := down.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			down.Close()
		}
		done <- n
	}()
	n, _ := io.Copy(up, down)
	in += n
	up.Close() // this upstream stream cannot half-close
	out = <-done
	up.Close()
	down.Close()
	return in, out
}

func (h *Handler) trackTunnel() {
	if h.Tunnels != nil {
		h.Tunnels.Add(1)
	}
}

func (h *Handler) untrackTunnel() {
	if h.Tunnels != nil {
		h.Tunnels.Done()
	}
}
