// Package httpproxy is the proxy's HTTP data path: one http.Handler per
// listener that matches a route, applies the HTTP rules of a forwarding
// proxy (hop-by-hop headers, X-Request-ID, Via, X-Forwarded-*, trace
// context, body caps), sends the request to a cluster or straight to an
// address, streams the response back, passes Upgrade (WebSocket) and CONNECT
// tunnels, and records the access log line and metrics with Envoy response
// flags.
//
// It does not use httputil.ReverseProxy: the access log needs the upstream
// host, service time and response flags of each request, body caps must
// answer 413 before anything is forwarded, and the hot path keeps its
// allocations down by reusing the downstream request instead of cloning it.
package httpproxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sidecarkit/sidecarkit/proxy/config"
	"github.com/sidecarkit/sidecarkit/proxy/direct"
	"github.com/sidecarkit/sidecarkit/proxy/h1"
	"github.com/sidecarkit/sidecarkit/proxy/listener"
	"github.com/sidecarkit/sidecarkit/proxy/mtls"
	"github.com/sidecarkit/sidecarkit/proxy/pathnorm"
	"github.com/sidecarkit/sidecarkit/proxy/ratelimit"
	"github.com/sidecarkit/sidecarkit/proxy/route"
	"github.com/sidecarkit/sidecarkit/proxy/stats"
	"github.com/sidecarkit/sidecarkit/proxy/tracing"
	"github.com/sidecarkit/sidecarkit/proxy/upstream"
)

// Cluster is what the handler needs from an upstream cluster.
type Cluster interface {
	RoundTrip(*http.Request) (*http.Response, error)
	DialTCP(ctx context.Context) (net.Conn, string, error)
}

// Snapshot is the routing state a configuration produces; a reload swaps it
// atomically while requests in flight keep the one they started with.
type Snapshot struct {
	Tables   map[string]*route.Table // by listener name
	Clusters map[string]Cluster
	// Middleware is each route's chain (rate limit, fault) ending in
	// Forward; ListenerChain each listener's (JWT, authorization) ending in
	// Route. Both by name; absent means none.
	Middleware    map[string]http.Handler
	ListenerChain map[string]http.Handler
	Listeners     map[string]config.Listener
	// Limiters are the routes' rate-limit buckets by route name; the next
	// snapshot reuses those whose rate_limit did not change.
	Limiters map[string]*ratelimit.Limiter
	// StreamCheck decides, per listener, whether a connection that is not
	// HTTP may pass (Istio's TCP semantics of its HTTP policies); absent
	// means it may. The string names the deciding policy or reason.
	StreamCheck map[string]func(*listener.Conn) (bool, string)
	// Closers release what the snapshot's middleware holds (JWKS refresh).
	Closers []func()
	Config  *config.Config
}

// Handler serves one listener's HTTP requests.
type Handler struct {
	Listener config.Listener
	State    *atomic.Pointer[Snapshot]
	// Direct reaches the listener's Target or a connection's original
	// destination (from 127.0.0.6 for inbound).
	Direct    *direct.Forwarder
	ProxyName string
	Metrics   *stats.Metrics
	// Identity returns the listener's own SPIFFE URI (mTLS), for XFCC By=.
	Identity func() string
	// AccessLog receives the access log lines (when the configuration's
	// access-log is on); passthrough, body cap and sampling also come from
	// the snapshot's configuration, so a reload changes them.
	AccessLog *slog.Logger
	// Tunnels counts hijacked Upgrade/CONNECT streams (http.Server.Shutdown
	// does not see them); TunnelCtx ending closes them (the drain deadline).
	Tunnels   *sync.WaitGroup
	TunnelCtx context.Context
	// Tracer, when set, gives each request a span (package tracing).
	Tracer *tracing.Tracer

	once              sync.Once
	bytesIn, bytesOut prometheus.Counter
	activeReqs        prometheus.Gauge
	inbound           bool
}

type ctxKey struct{}

// ConnContext is the http.Server ConnContext hook that makes the
// *listener.Conn available to the handler.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if lc, ok := c.(*listener.Conn); ok {
		if p, ok := lc.Peer.(*mtls.Peer); ok && p != nil {
			ctx = mtls.WithPeer(ctx, p)
		}
	}
	return context.WithValue(ctx, ctxKey{}, c)
}

func connOf(ctx context.Context) *listener.Conn {
	c, _ := ctx.Value(ctxKey{}).(*listener.Conn)
	return c
}

// exchange is one request's state, shared with route middleware through
// the request context.
type exchange struct {
	h        *Handler
	start    time.Time
	rid      string
	route    *route.Route
	routeNm  string
	cluster  Cluster
	target   string // cluster name, "app", "passthrough" or the target address label
	addr     string // direct address when cluster is nil
	status   int
	flag     string
	upHost   string
	upTime   time.Duration
	in       atomic.Int64
	out      int64
	conn     *listener.Conn
	upgraded bool
	att      upstream.Attempt
	snap     *Snapshot
	rec      *recorder // set when middleware may answer
	counting bool      // the proxy's own writes count bytes itself
	span     *tracing.Span
}

func joinFlag(a, b string) string {
	if a == "" {
		return b
	}
	if b == "" {
		return a
	}
	return a + "," + b
}

type exKey struct{}

// Shared header values: len == cap, so an append elsewhere copies them.
var (
	xfpHTTP  = []string{"http"}
	xfpHTTPS = []string{"https"}
)

func (h *Handler) init() {
	h.once.Do(func() {
		l := h.Listener.Name
		h.bytesIn = h.Metrics.Bytes.WithLabelValues(l, "received")
		h.bytesOut = h.Metrics.Bytes.WithLabelValues(l, "sent")
		h.activeReqs = h.Metrics.ActiveRequests.WithLabelValues(l)
		h.inbound = h.Listener.Direction == config.Inbound
		if h.ProxyName == "" {
			h.ProxyName = "sidecarkit"
		}
	})
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.init()
	x := &exchange{h: h, start: time.Now(), conn: connOf(r.Context()), routeNm: "default", target: "none"}
	h.activeReqs.Inc()
	defer h.activeReqs.Dec()
	defer h.finish(x, r)

	x.rid = r.Header.Get("X-Request-Id")
	if x.rid == "" || len(x.rid) > 256 {
		x.rid = newRequestID()
		r.Header["X-Request-Id"] = []string{x.rid}
	}
	if h.Tracer != nil {
		x.span = h.Tracer.Start(r, h.Listener.Name, h.inbound, x.rid)
	}
	snap := h.State.Load()
	x.snap = snap
	if !h.canonical(w, r, x) {
		return
	}
	if chain := snap.ListenerChain[h.Listener.Name]; chain != nil {
		x.rec = &recorder{ResponseWriter: w, x: x}
		chain.ServeHTTP(x.rec, r.WithContext(context.WithValue(r.Context(), exKey{}, x)))
		return
	}
	h.route(w, r, x)
}

// canonical puts the request in the one form every decision (JWT,
// authorization, route, rate limit) looks at and the app receives: a method
// that is an upper-case token (Envoy answers 400 to "get" or ":method
// delete"; a method policy must not be sidestepped by case), and the path
// normalised per the configuration (package pathnorm), forwarded as
// decided. It answers 400 itself and returns false otherwise.
func (h *Handler) canonical(w http.ResponseWriter, r *http.Request, x *exchange) bool {
	if !validMethod(r.Method) {
		if r.ProtoMajor < 2 {
			w.Header().Set("Connection", "close")
		}
		h.localReply(w, x, http.StatusBadRequest, "invalid method")
		return false
	}
	if r.Method == http.MethodConnect {
		return true
	}
	if _, err := pathnorm.Apply(r.URL, x.snap.Config.PathOptions()); err != nil {
		if r.ProtoMajor < 2 {
			w.Header().Set("Connection", "close")
		}
		h.localReply(w, x, http.StatusBadRequest, "invalid path: "+err.Error())
		return false
	}
	return true
}

// validMethod: an RFC 9110 token of upper-case letters, digits, '-' and
// '_' (GET, M-SEARCH, VERSION-CONTROL, QUERY, ...).
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Route is the last handler of a listener's middleware chain: it matches
// the route and goes on. Middleware must pass the request (and its
// context) on.
func Route(w http.ResponseWriter, r *http.Request) {
	x, _ := r.Context().Value(exKey{}).(*exchange)
	if x == nil {
		http.Error(w, "httpproxy: Route outside a proxied request", http.StatusInternalServerError)
		return
	}
	x.h.route(w, r, x)
}

func (h *Handler) route(w http.ResponseWriter, r *http.Request, x *exchange) {
	snap := x.snap
	port := h.destPort(x.conn)
	if t := snap.Tables[h.Listener.Name]; t != nil {
		x.route = t.Match(r.Host, pathnorm.RawPath(r.URL), r.Header, port)
	}
	if r.Method == http.MethodConnect {
		h.connect(w, r, x, snap)
		return
	}
	if !h.resolve(x, snap) {
		x.flag = "NR"
		h.localReply(w, x, http.StatusNotFound, "route not found")
		return
	}
	if x.route != nil {
		if mw := snap.Middleware[x.route.Name]; mw != nil {
			if x.rec == nil {
				x.rec = &recorder{ResponseWriter: w, x: x}
				w = x.rec
			}
			if r.Context().Value(exKey{}) == nil {
				r = r.WithContext(context.WithValue(r.Context(), exKey{}, x))
			}
			mw.ServeHTTP(w, r)
			return
		}
	}
	h.forward(w, r, x)
}

// AddFlag records an Envoy response flag (DI, FI, RL, ...) on the request
// for the access log and metrics; middleware calls it.
func AddFlag(r *http.Request, flag string) {
	if x, _ := r.Context().Value(exKey{}).(*exchange); x != nil {
		x.flag = joinFlag(x.flag, flag)
	}
}

// recorder notes the status a middleware answers with; it keeps Flush and
// Hijack working (and Unwrap for http.ResponseController).
type recorder struct {
	http.ResponseWriter
	x *exchange
}

func (r *recorder) WriteHeader(code int) {
	if r.x.status == 0 || code >= 200 {
		r.x.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.x.status == 0 {
		r.x.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	if !r.x.counting {
		r.x.out += int64(n)
	}
	return n, err
}

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(r.ResponseWriter).Hijack()
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// newRequestID returns a random (version 4) UUID. The bytes come from the
// runtime's ChaCha8 generator (seeded from the kernel, per thread) instead
// of a getrandom(2) call per request; google/uuid sets the version bits and
// formats it.
func newRequestID() string {
	var id uuid.UUID
	a, b := rand.Uint64(), rand.Uint64()
	for i := 0; i < 8; i++ {
		id[i], id[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
	}
	id[6] = id[6]&0x0f | 0x40 // version 4
	id[8] = id[8]&0x3f | 0x80 // RFC 4122 variant
	return id.String()
}

// Forward is the last handler of a route's middleware chain: it sends the
// request upstream. Middleware must pass the request (and its context) on.
func Forward(w http.ResponseWriter, r *http.Request) {
	x, _ := r.Context().Value(exKey{}).(*exchange)
	if x == nil {
		http.Error(w, "httpproxy: Forward outside a proxied request", http.StatusInternalServerError)
		return
	}
	x.h.forward(w, r, x)
}

func (h *Handler) destPort(c *listener.Conn) int {
	if c != nil && c.OrigDst.IsValid() {
		return int(c.OrigDst.Port())
	}
	if c != nil {
		if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
			return a.Port
		}
	}
	return 0
}

// resolve picks the cluster or address for x; false when there is none.
func (h *Handler) resolve(x *exchange, snap *Snapshot) bool {
	x.routeNm = "default"
	lc, ok := snap.Listeners[h.Listener.Name]
	if !ok {
		lc = h.Listener
	}
	name := lc.Cluster
	if x.route != nil {
		x.routeNm = x.route.Name
		if x.route.Cluster != "" {
			name = x.route.Cluster
		}
	}
	if name != "" {
		x.cluster, x.target = snap.Clusters[name], name
		return x.cluster != nil
	}
	if lc.Target != "" {
		x.addr, x.target = lc.Target, "target"
		if h.inbound {
			x.target = "app"
		}
		return true
	}
	if x.conn != nil && x.conn.OrigDst.IsValid() {
		if h.inbound {
			x.addr = AppAddr(x.conn.OrigDst)
			x.target = "app"
			return true
		}
		if x.route != nil || snap.Config.OutboundPassthrough {
			x.addr, x.target = x.conn.OrigDst.String(), "passthrough"
			return true
		}
	}
	return false
}

// AppAddr is where inbound traffic for an original destination goes: the
// app on loopback at the same port, in the same IP family.
func AppAddr(orig netip.AddrPort) string {
	if orig.Addr().Is6() && !orig.Addr().Is4In6() {
		return netip.AddrPortFrom(netip.IPv6Loopback(), orig.Port()).String()
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), orig.Port()).String()
}

func (h *Handler) forward(w http.ResponseWriter, r *http.Request, x *exchange) {
	// Body cap: answer 413 before anything is forwarded.
	limit := x.snap.Config.MaxRequestBodyBytes
	if x.route != nil && x.route.MaxRequestBodyBytes > 0 {
		limit = x.route.MaxRequestBodyBytes
	}
	if limit > 0 && r.ContentLength != 0 {
		if r.ContentLength > limit {
			w.Header().Set("Connection", "close")
			h.localReply(w, x, http.StatusRequestEntityTooLarge, "request body too large")
			return
		}
		if r.ContentLength < 0 {
			buf, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
			x.in.Add(int64(len(buf)))
			if err != nil {
				w.Header()["Connection"] = []string{"close"}
				if errors.Is(err, h1.ErrFraming) {
					x.flag = "DPE"
					h.localReply(w, x, http.StatusBadRequest, "bad request body framing")
					return
				}
				x.flag = "DC"
				x.status = 499
				return
			}
			if int64(len(buf)) > limit {
				w.Header().Set("Connection", "close")
				h.localReply(w, x, http.StatusRequestEntityTooLarge, "request body too large")
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(buf))
			r.ContentLength = int64(len(buf))
			x.in.Store(0) // counted again as it is sent
		}
	}

	ctx := r.Context()
	if x.cluster != nil {
		var pol *upstream.RoutePolicy
		if x.route != nil {
			pol = &x.route.Policy
		}
		ctx = upstream.WithAttempt(upstream.WithRoute(ctx, pol), &x.att)
	} else if x.route != nil && x.route.Policy.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, x.route.Policy.Timeout)
		defer cancel()
	}

	up := upgradeType(r.Header)
	removeHopByHop(r.Header)
	// A Connection field cannot take away what the proxy itself sets.
	r.Header["X-Request-Id"] = []string{x.rid}
	if _, ok := r.Header["User-Agent"]; !ok {
		// Go's transports would add "Go-http-client/1.1"; "" means none.
		r.Header["User-Agent"] = []string{""}
	}
	delete(r.Header, "Expect") // the client's 100-continue is answered by reading its body
	if up != "" {
		if r.ProtoMajor != 1 {
			up = ""
		} else {
			r.Header["Connection"] = []string{"Upgrade"}
			r.Header["Upgrade"] = []string{up}
		}
	}
	if x.conn != nil && h.inbound {
		if ip := x.conn.ClientIP(); ip != "" {
			appendXFF(r.Header, ip)
		}
		// The client certificate header is the proxy's to set (SANITIZE_SET).
		delete(r.Header, "X-Forwarded-Client-Cert")
		if peer := mtls.PeerFrom(r.Context()); peer != nil {
			by := ""
			if h.Identity != nil {
				by = h.Identity()
			}
			r.Header["X-Forwarded-Client-Cert"] = []string{mtls.XFCC(by, peer)}
		}
	}
	if _, ok := r.Header["X-Forwarded-Proto"]; !ok || h.inbound {
		// Inbound: the scheme of this hop (https when mTLS was terminated).
		if x.conn != nil && x.conn.TLS {
			r.Header["X-Forwarded-Proto"] = xfpHTTPS
		} else {
			r.Header["X-Forwarded-Proto"] = xfpHTTP
		}
	}
	appendVia(r.Header, r.ProtoMajor, r.ProtoMinor, h.ProxyName)
	if x.span != nil {
		x.span.Inject(r.Header)
	} else {
		ensureTraceparent(r.Header)
	}
	if x.route != nil {
		x.route.ApplyRequestHeaders(r.Header)
	}

	out := r
	if ctx != r.Context() {
		out = r.WithContext(ctx)
	}
	out.RequestURI = ""
	out.URL.Scheme = "http"
	if x.addr != "" {
		out.URL.Host = x.addr
	} else {
		out.URL.Host = r.Host
	}
	out.Close = false
	var cb *countingBody
	if r.Body != nil && r.Body != http.NoBody {
		cb = &countingBody{r: r.Body, n: &x.in}
		out.Body = cb
	}
	if up != "" && out.Body == nil {
		out.Body = http.NoBody
	}

	upStart := time.Now()
	var resp *http.Response
	var err error
	if x.cluster != nil {
		resp, err = x.cluster.RoundTrip(out)
	} else if up != "" {
		resp, err = h.Direct.RoundTripH1(out)
	} else {
		resp, err = h.Direct.RoundTrip(out)
	}
	x.upTime = time.Since(upStart)
	if x.cluster != nil {
		x.upHost = x.att.Host
		if x.att.UpstreamTime > 0 {
			x.upTime = x.att.UpstreamTime
		}
		if len(x.att.Flags) > 0 {
			x.flag = strings.Join(x.att.Flags, ",")
		}
	} else {
		x.upHost = x.addr
	}
	if cerr := cb.bodyErr(); cerr != nil {
		// The client's body broke (bad framing: 400 DPE; aborted: 499 DC);
		// it is the client's fault, the connection is not reused.
		if resp != nil {
			resp.Body.Close()
		}
		x.upHost = x.addr
		if x.cluster != nil {
			x.upHost = x.att.Host
		}
		w.Header()["Connection"] = []string{"close"}
		if errors.Is(cerr, h1.ErrFraming) {
			x.flag = "DPE"
			h.localReply(w, x, http.StatusBadRequest, "bad request body framing")
			return
		}
		x.flag, x.status = "DC", 499
		return
	}
	if err != nil {
		if r.Context().Err() != nil {
			x.flag, x.status = "DC", 499
			return
		}
		status, flag, body := h.classify(err, ctx)
		if x.flag == "" || !strings.Contains(x.flag, flag) {
			x.flag = joinFlag(x.flag, flag)
		}
		h.localReply(w, x, status, body)
		return
	}
	defer resp.Body.Close()

	if resp.StatusCode == http.StatusSwitchingProtocols {
		h.upgrade(w, r, x, resp)
		return
	}

	hdr := w.Header()
	respConnClose := resp.Header["Connection"]
	for k, vv := range resp.Header {
		hdr[k] = vv
	}
	if len(respConnClose) > 0 {
		removeHopByHop(hdr)
	} else {
		for _, k := range hopHeaders {
			delete(hdr, k)
		}
	}
	if _, ok := hdr["X-Request-Id"]; !ok {
		hdr["X-Request-Id"] = []string{x.rid}
	}
	appendVia(hdr, resp.ProtoMajor, resp.ProtoMinor, h.ProxyName)
	if x.route != nil {
		x.route.ApplyResponseHeaders(hdr)
	}
	if len(resp.Trailer) > 0 {
		keys := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		hdr["Trailer"] = keys
	}
	x.status = resp.StatusCode
	x.counting = true
	w.WriteHeader(resp.StatusCode)

	flush := resp.ContentLength < 0 || r.ProtoMajor == 2
	if err := h.copyBody(w, resp.Body, x, flush); err != nil {
		if x.flag == "" {
			x.flag = "UC"
		}
		if r.Context().Err() != nil || x.flag == "DC" {
			x.flag = "DC"
		}
		// Abort so the client sees a truncated response, not a clean end.
		panic(http.ErrAbortHandler)
	}
	for k, vv := range resp.Trailer {
		hdr[http.TrailerPrefix+k] = vv
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyBody streams the response body, flushing after each read when the
// response is a stream (no length: SSE, chunked, gRPC).
func (h *Handler) copyBody(w http.ResponseWriter, body io.Reader, x *exchange, flush bool) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var fl http.Flusher
	if flush {
		fl, _ = w.(http.Flusher)
	}
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			x.out += int64(m)
			if werr != nil {
				x.flag = "DC"
				return werr
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

func (h *Handler) classify(err error, ctx context.Context) (int, string, string) {
	var ue *upstream.Error
	if errors.As(err, &ue) {
		return ue.Status, ue.Flag, ue.Body()
	}
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() == context.DeadlineExceeded {
		return http.StatusGatewayTimeout, "UT", "upstream request timeout"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return http.StatusServiceUnavailable, "UF", "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
	}
	return http.StatusServiceUnavailable, "UC", "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
}

// localReply answers from the proxy itself (Envoy's "local reply").
func (h *Handler) localReply(w http.ResponseWriter, x *exchange, status int, body string) {
	x.status = status
	hdr := w.Header()
	hdr["Content-Type"] = []string{"text/plain"}
	hdr["X-Request-Id"] = []string{x.rid}
	hdr["Content-Length"] = []string{strconv.Itoa(len(body))}
	x.counting = true
	w.WriteHeader(status)
	n, _ := io.WriteString(w, body)
	x.out += int64(n)
}

// finish records metrics and the access log line.
func (h *Handler) finish(x *exchange, r *http.Request) {
	if p := recover(); p != nil && p != http.ErrAbortHandler {
		panic(p)
	} else if p != nil {
		defer panic(p)
	}
	d := time.Since(x.start)
	if x.status == 0 {
		x.status = 499
		if x.flag == "" {
			x.flag = "DC"
		}
	}
	if x.status == http.StatusTooManyRequests && x.upHost == "" && x.flag == "" {
		x.flag = "RL" // answered by the route's local rate limit
	}
	in := x.in.Load()
	h.bytesIn.Add(float64(in))
	h.bytesOut.Add(float64(x.out))
	h.Metrics.Route(h.Listener.Name, x.routeNm, x.target).Observe(x.status, d.Seconds())
	if x.flag != "" {
		h.Metrics.ResponseFlags.WithLabelValues(h.Listener.Name, x.flag).Inc()
	}
	if x.span != nil {
		x.span.End(tracing.Result{Route: x.routeNm, Cluster: x.target, UpstreamHost: x.upHost, Status: x.status,
			Flags: x.flag, BytesReceived: in, BytesSent: x.out})
	}
	cfg := x.snap.Config
	if h.AccessLog == nil || !cfg.AccessLog || (x.flag == "" && cfg.AccessLogSample < 1 && rand.Float64() >= cfg.AccessLogSample) {
		return
	}
	flag := x.flag
	if flag == "" {
		flag = "-"
	}
	proto := r.Proto
	if x.upgraded {
		proto += "+upgrade"
	}
	h.AccessLog.LogAttrs(context.Background(), slog.LevelInfo, "access",
		slog.String("listener", h.Listener.Name),
		slog.String("request_id", x.rid),
		slog.String("method", r.Method),
		slog.String("authority", r.Host),
		slog.String("path", r.URL.Path),
		slog.String("protocol", proto),
		slog.Int("status", x.status),
		slog.String("response_flags", flag),
		slog.Int64("bytes_received", in),
		slog.Int64("bytes_sent", x.out),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.String("route", x.routeNm),
		slog.String("cluster", x.target),
		slog.String("upstream_host", x.upHost),
		slog.Float64("upstream_service_time_ms", float64(x.upTime.Microseconds())/1000),
		slog.String("downstream_remote", remote(x.conn)),
	)
}

func remote(c *listener.Conn) string {
	if c == nil {
		return ""
	}
	return c.RemoteAddr().String()
}

// countingBody counts the request body's bytes as they are sent and keeps
// the first error reading it: such an error is the client's, marked
// upstream.ErrDownstream so the cluster neither blames the endpoint nor
// retries.
type countingBody struct {
	r   io.ReadCloser
	n   *atomic.Int64
	err atomic.Pointer[error] // the transport may read the body on its own goroutine
}

// clientBodyError reports whether err reading a request body is the
// client's doing: broken framing, a body cut short, a read timeout or a
// reset. (Errors after the transport closed the body are not.)
func clientBodyError(err error) bool {
	var ne net.Error
	return errors.Is(err, h1.ErrFraming) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.As(err, &ne) && ne.Timeout()
}

func (b *countingBody) bodyErr() error {
	if b == nil {
		return nil
	}
	if p := b.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n.Add(int64(n))
	if err != nil && err != io.EOF && clientBodyError(err) {
		b.err.CompareAndSwap(nil, &err)
		return n, fmt.Errorf("%w: %w", upstream.ErrDownstream, err)
	}
	return n, err
}

func (b *countingBody) Close() error { return b.r.Close() }
