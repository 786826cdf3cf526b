package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sidecarkit/sidecarkit/proxy/mtls"
	"github.com/sidecarkit/sidecarkit/shared/backoff"
)

// Deps are what a Cluster needs from its host process.
type Deps struct {
	Log      *slog.Logger
	Registry prometheus.Registerer // nil: metrics go nowhere
	// Resolver is used by DNS discovery; nil means net.DefaultResolver.
	Resolver interface {
		LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	}
	// Kubernetes feeds clusters with a kubernetes: source (nil: such a
	// cluster is an error).
	Kubernetes KubernetesEndpoints
}

// Cluster is a set of upstream endpoints with pooled connections, load
// balancing, retries, circuit breakers and outlier detection. It is an
// http.RoundTripper; all methods are safe for concurrent use.
type Cluster struct {
	name   string
	cfg    ClusterConfig
	log    *slog.Logger
	m      *metrics
	lb     string
	hosts  atomic.Pointer[hostSet]
	tr     *http.Transport
	scheme string
	dialer net.Dialer
	tls    *mtls.Client
	od     *outlierPolicy

	maxReq, maxPending, maxRetries int64
	connSem                        chan struct{} // HTTP/1: one slot per exchange in flight; nil for HTTP/2
	requests, retries, pending     atomic.Int64
	budgetPct                      float64 // <0: no budget
	budgetMin                      int64
	defaultRetry                   *RetryPolicy

	ejected   sync.Map      // *endpoint → struct{}: counted in the ejections_active gauge
	ready     chan struct{} // closed once endpoints are known
	readyOnce sync.Once
	stop      context.CancelFunc
	wg        sync.WaitGroup
	closed    atomic.Bool
}

// New builds a cluster from a validated config and starts its discovery.
func New(cfg ClusterConfig, d Deps) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{
		name: cfg.Name, cfg: cfg, log: log.With("cluster", cfg.Name), m: newMetrics(d.Registry, cfg.Name),
		lb: cfg.LBPolicy, scheme: "http", od: newOutlierPolicy(cfg.OutlierDetection), ready: make(chan struct{}),
		maxReq: orDefault(cfg.CircuitBreakers.MaxRequests, 1024), maxPending: orDefault(cfg.CircuitBreakers.MaxPendingRequests, 1024),
		maxRetries: orDefault(cfg.CircuitBreakers.MaxRetries, 3), budgetPct: -1, defaultRetry: DefaultRetry(),
	}
	if b := cfg.RetryBudget; b != nil {
		c.budgetPct, c.budgetMin = b.Percent, int64(b.MinConcurrency)
		if c.budgetPct == 0 {
			c.budgetPct = 20
		}
		if c.budgetMin == 0 {
			c.budgetMin = 3
		}
	}
	connectTimeout := cfg.ConnectTimeout
	if connectTimeout == 0 {
		connectTimeout = 5 * time.Second
	}
	c.dialer = net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
	idle := cfg.IdleTimeout
	if idle == 0 {
		idle = 60 * time.Second
	}
	maxIdle := cfg.MaxIdlePerEndpoint
	if maxIdle == 0 {
		maxIdle = 64
	}
	c.tr = &http.Transport{
		Proxy:                  nil,
		DialContext:            c.dialContext,
		MaxIdleConns:           0,
		MaxIdleConnsPerHost:    maxIdle,
		IdleConnTimeout:        idle,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 1 << 20,
		Protocols:              new(http.Protocols),
	}
	if cfg.TLS != nil {
		cl, err := mtls.NewClient(*cfg.TLS, c.log)
		if err != nil {
			return nil, fmt.Errorf("cluster %q: tls: %w", cfg.Name, err)
		}
		c.tls = cl
		c.scheme = "https"
		c.tr.DialTLSContext = c.dialTLSContext
	}
	switch {
	case cfg.Protocol == HTTP2 && c.tls != nil:
		c.tr.Protocols.SetHTTP2(true)
	case cfg.Protocol == HTTP2:
		c.tr.Protocols.SetUnencryptedHTTP2(true)
	default:
		c.tr.Protocols.SetHTTP1(true)
		c.connSem = make(chan struct{}, orDefault(cfg.CircuitBreakers.MaxConnections, 1024))
	}
	ctx, stop := context.WithCancel(context.Background())
	c.stop = stop
	switch {
	case cfg.DNS != nil:
		res := d.Resolver
		if res == nil {
			res = net.DefaultResolver
		}
		c.wg.Add(1)
		go func() { defer c.wg.Done(); c.runDNS(ctx, *cfg.DNS, res) }()
	case cfg.Consul != nil:
		w, err := newConsulWatch(*cfg.Consul)
		if err != nil {
			stop()
			c.closeTLS()
			return nil, fmt.Errorf("cluster %q: consul: %w", cfg.Name, err)
		}
		c.wg.Add(1)
		go func() { defer c.wg.Done(); c.runConsul(ctx, w) }()
	case cfg.Kubernetes != nil:
		if d.Kubernetes == nil {
			stop()
			c.closeTLS()
			return nil, errNoKubernetes(cfg.Name)
		}
		c.wg.Add(1)
		go func() { defer c.wg.Done(); c.runKubernetes(ctx, *cfg.Kubernetes, d.Kubernetes) }()
	default:
		c.setEndpoints(cfg.Endpoints)
	}
	if c.od != nil {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); c.sweepOutliers(ctx) }()
	}
	return c, nil
}

func orDefault(v, def int) int64 {
	if v <= 0 {
		return int64(def)
	}
	return int64(v)
}

// Name returns the cluster's name.
func (c *Cluster) Name() string { return c.name }

// Ready is closed once the cluster knows its endpoints (at once for static
// endpoints, after the first DNS answer or Consul response otherwise).
func (c *Cluster) Ready() <-chan struct{} { return c.ready }

// EndpointStatus describes one endpoint for admin pages.
type EndpointStatus struct {
	Address string            `json:"address"`
	Weight  int               `json:"weight"`
	Labels  map[string]string `json:"labels,omitempty"`
	Active  int64             `json:"active_requests"`
	Ejected bool              `json:"ejected"`
}

// Endpoints returns the current endpoints and their state.
func (c *Cluster) Endpoints() []EndpointStatus {
	hs := c.hosts.Load()
	if hs == nil {
		return nil
	}
	now := time.Now().UnixNano()
	out := make([]EndpointStatus, 0, len(hs.all.eps))
	for _, e := range hs.all.eps {
		out = append(out, EndpointStatus{Address: e.addr, Weight: e.weight, Labels: e.labels, Active: e.active.Load(), Ejected: !e.available(now)})
	}
	return out
}

// setEndpoints swaps in a new endpoint list (from config or discovery).
func (c *Cluster) setEndpoints(eps []EndpointConfig) {
	prev := c.hosts.Load()
	hs := buildHostSet(eps, c.cfg.Subsets, prev)
	c.hosts.Store(hs)
	old := 0
	if prev != nil {
		old = len(prev.all.eps)
		// Idle connections to removed endpoints are closed; busy ones finish.
		for addr := range prev.byAddr {
			if hs.byAddr[addr] == nil {
				c.tr.CloseIdleConnections()
				break
			}
		}
	}
	c.m.endpoints.Add(float64(len(hs.all.eps) - old))
	if len(hs.all.eps) > 0 {
		c.readyOnce.Do(func() { close(c.ready) })
	}
}

// Close stops discovery and closes idle connections; requests in flight finish.
func (c *Cluster) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return nil
	}
	c.stop()
	c.wg.Wait()
	c.tr.CloseIdleConnections()
	if hs := c.hosts.Load(); hs != nil {
		c.m.endpoints.Sub(float64(len(hs.all.eps)))
	}
	c.ejected.Range(func(k, _ any) bool {
		if _, ok := c.ejected.LoadAndDelete(k); ok {
			c.m.ejected.Dec()
		}
		return true
	})
	c.closeTLS()
	return nil
}

func (c *Cluster) closeTLS() {
	if c.tls != nil {
		c.tls.Close()
	}
}

// --- connections ---

type countedConn struct {
	net.Conn
	once sync.Once
	done func()
}

func (cc *countedConn) Close() error {
	err := cc.Conn.Close()
	cc.once.Do(cc.done)
	return err
}

// connectError marks a failure to establish the upstream connection.
type connectError struct{ err error }

func (e *connectError) Error() string { return "connect: " + e.err.Error() }
func (e *connectError) Unwrap() error { return e.err }

func (c *Cluster) rawDial(ctx context.Context, addr string) (net.Conn, error) {
	conn, err := c.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		c.m.cxConnectFail.Inc()
		return nil, &connectError{err}
	}
	c.m.cxTotal.Inc()
	c.m.cxActive.Inc()
	return &countedConn{Conn: conn, done: c.m.cxActive.Dec}, nil
}

func (c *Cluster) dialContext(ctx context.Context, _, addr string) (net.Conn, error) {
	return c.rawDial(ctx, addr)
}

func (c *Cluster) dialTLSContext(ctx context.Context, _, addr string) (net.Conn, error) {
	raw, err := c.rawDial(ctx, addr)
	if err != nil {
		return nil, err
	}
	cfg := c.tls.TLSConfig()
	if c.cfg.Protocol == HTTP2 {
		cfg.NextProtos = []string{"h2"}
	} else {
		cfg.NextProtos = []string{"http/1.1"}
	}
	tc := tls.Client(raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, c.dialer.Timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		c.m.cxConnectFail.Inc()
		return nil, &connectError{fmt.Errorf("tls handshake with %s: %w", addr, err)}
	}
	return tc, nil
}

// DialTCP connects to an endpoint for TCP passthrough (with TLS origination
// when the cluster has tls), trying up to three endpoints. It returns the
// connection and the endpoint's address; errors are *Error (UH, UO, UF).
func (c *Cluster) DialTCP(ctx context.Context) (net.Conn, string, error) {
	hs := c.hosts.Load()
	if hs == nil || len(hs.all.eps) == 0 {
		return nil, "", &Error{Flag: FlagNoHealthy, Status: 503, Err: errNoEndpoints}
	}
	if c.connSem != nil {
		select {
		case c.connSem <- struct{}{}:
		default:
			c.m.overflow.WithLabelValues(brConnections).Inc()
			return nil, "", &Error{Flag: FlagOverflow, Status: 503, Err: errors.New("max_connections reached")}
		}
	}
	release := func() {
		if c.connSem != nil {
			<-c.connSem
		}
	}
	var prev *endpoint
	var last error
	for range min(3, len(hs.all.eps)) {
		ep := hs.all.pick(c.lb, prev, time.Now().UnixNano())
		var conn net.Conn
		var err error
		if c.tls != nil {
			conn, err = c.dialTLSContext(ctx, "tcp", ep.addr)
		} else {
			conn, err = c.rawDial(ctx, ep.addr)
		}
		if err == nil {
			c.outlier(ep, okResponse)
			ep.active.Add(1)
			return &countedConn{Conn: conn, done: func() { ep.active.Add(-1); release() }}, ep.addr, nil
		}
		last = err
		c.outlier(ep, connectFailed)
		prev = ep
		if ctx.Err() != nil {
			break
		}
	}
	release()
	return nil, "", &Error{Flag: FlagConnectFail, Status: 503, Err: last}
}

// --- outlier detection ---

func (c *Cluster) outlier(ep *endpoint, o outcome) {
	if c.od == nil || o == downstreamGone {
		return
	}
	if o == okResponse {
		// Fast path: nothing to reset.
		ep.mu.Lock()
		zero := ep.consec5 == 0 && ep.consecGw == 0
		ep.mu.Unlock()
		if zero {
			return
		}
	}
	hs := c.hosts.Load()
	now := time.Now()
	ejected, total := 0, 0
	if hs != nil && o != okResponse {
		total = len(hs.all.eps)
		for _, e := range hs.all.eps {
			if !e.available(now.UnixNano()) {
				ejected++
			}
		}
	}
	if ok, until := c.od.record(ep, o, now, ejected, total); ok {
		c.m.ejections.Inc()
		if _, loaded := c.ejected.LoadOrStore(ep, struct{}{}); !loaded {
			c.m.ejected.Inc()
		}
		c.log.Warn("endpoint ejected by outlier detection", "endpoint", ep.addr, "until", until.UTC().Format(time.RFC3339Nano))
	}
}

// sweepOutliers notes endpoints returning to service as their ejection
// time ends (every interval, Envoy's sweep) and keeps the gauge true; the
// pick path itself only compares times.
func (c *Cluster) sweepOutliers(ctx context.Context) {
	tick := time.NewTicker(min(c.od.interval, c.od.base/4+time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now().UnixNano()
		hs := c.hosts.Load()
		c.ejected.Range(func(k, _ any) bool {
			e := k.(*endpoint)
			gone := hs == nil || hs.byAddr[e.addr] != e
			if e.available(now) || gone {
				if _, ok := c.ejected.LoadAndDelete(e); ok {
					c.m.ejected.Dec()
					if !gone {
						c.log.Info("endpoint returned to service", "endpoint", e.addr)
					}
				}
			}
			return true
		})
	}
}

// --- requests ---

var (
	errRouteTimeout  = errors.New("route timeout")
	errPerTryTimeout = errors.New("per-try timeout")
)

func (c *Cluster) selectPool(p *RoutePolicy, req *http.Request, hs *hostSet) (*pool, string) {
	if p == nil {
		return hs.all, ""
	}
	for _, h := range p.HeaderSubsets {
		if v := req.Header.Get(h.Header); v != "" && (h.Value == "" || v == h.Value) {
			return hs.subset(h.Subset), h.Subset
		}
	}
	if len(p.WeightedSubsets) > 0 {
		total := 0
		for _, w := range p.WeightedSubsets {
			total += w.Weight
		}
		if total > 0 {
			r := rand.IntN(total)
			for _, w := range p.WeightedSubsets {
				if r < w.Weight {
					return hs.subset(w.Subset), w.Subset
				}
				r -= w.Weight
			}
		}
	}
	if p.Subset != "" {
		return hs.subset(p.Subset), p.Subset
	}
	return hs.all, ""
}

func (hs *hostSet) subset(name string) *pool {
	if p, ok := hs.subsets[name]; ok {
		return p
	}
	return &pool{}
}

func (c *Cluster) acquireConn(ctx context.Context) error {
	if c.connSem == nil {
		return nil
	}
	select {
	case c.connSem <- struct{}{}:
		return nil
	default:
	}
	if c.pending.Add(1) > c.maxPending {
		c.pending.Add(-1)
		c.m.overflow.WithLabelValues(brPending).Inc()
		return &Error{Flag: FlagOverflow, Status: 503, Err: errors.New("max_pending_requests reached")}
	}
	defer c.pending.Add(-1)
	select {
	case c.connSem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Cluster) releaseConn() {
	if c.connSem != nil {
		<-c.connSem
	}
}

// reserveRetry takes a retry slot if max_retries and the retry budget allow.
func (c *Cluster) reserveRetry() bool {
	n := c.retries.Add(1)
	if n > c.maxRetries {
		c.retries.Add(-1)
		c.m.overflow.WithLabelValues(brRetries).Inc()
		return false
	}
	if c.budgetPct >= 0 {
		allowed := max(c.budgetMin, int64(math.Floor(c.budgetPct*float64(c.requests.Load())/100)))
		if n > allowed {
			c.retries.Add(-1)
			c.m.overflow.WithLabelValues(brBudget).Inc()
			return false
		}
	}
	return true
}

// RoundTrip sends req to an endpoint of the cluster under the route policy
// in req's context (WithRoute), retrying as it allows, and fills the
// *Attempt in the context (WithAttempt). req.URL's scheme and host are
// replaced by the endpoint's; req.Host (the authority) is kept. When no
// response can be had the error is an *Error with the status to answer.
// The response body must be closed: that frees the connection slot.
func (c *Cluster) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	pol := RouteFrom(ctx)
	att := AttemptFrom(ctx)
	if att == nil {
		att = &Attempt{}
	}
	rp := c.defaultRetry
	if pol != nil && pol.Retries != nil {
		rp = pol.Retries
	}
	hs := c.hosts.Load()
	if hs == nil {
		return nil, fail(att, &Error{Flag: FlagNoHealthy, Status: 503, Err: errNoEndpoints})
	}
	pl, subset := c.selectPool(pol, req, hs)
	att.Subset = subset
	if len(pl.eps) == 0 {
		return nil, fail(att, &Error{Flag: FlagNoHealthy, Status: 503, Err: fmt.Errorf("%w in subset %q", errNoEndpoints, subset)})
	}
	if c.requests.Add(1) > c.maxReq {
		c.requests.Add(-1)
		c.m.overflow.WithLabelValues(brRequests).Inc()
		return nil, fail(att, &Error{Flag: FlagOverflow, Status: 503, Err: errors.New("max_requests reached")})
	}
	c.m.active.Inc()
	c.m.rq.Inc()
	x := &exchange{c: c, req: req, att: att, rp: rp, pool: pl, parent: ctx, ctx: ctx}
	if pol != nil && pol.Timeout > 0 {
		var cancel context.CancelCauseFunc
		x.ctx, cancel = context.WithCancelCause(ctx)
		x.routeTimer = time.AfterFunc(pol.Timeout, func() { cancel(errRouteTimeout) })
		x.routeCancel = func() { x.routeTimer.Stop(); cancel(nil) }
	}
	return x.run()
}

// ErrDownstream marks an error of the downstream side — a malformed or
// aborted request body — seen while sending a request: it is the
// client's fault, so it never counts against an endpoint (outlier
// detection, breakers) and is never retried. The body reader passed to
// RoundTrip wraps such errors with it.
var ErrDownstream = errors.New("downstream request body")

func fail(att *Attempt, e *Error) error {
	att.Flags = append(att.Flags, e.Flag)
	return e
}

// exchange is one downstream request's trip through the cluster.
type exchange struct {
	c           *Cluster
	req         *http.Request
	att         *Attempt
	rp          *RetryPolicy
	pool        *pool
	parent, ctx context.Context
	routeTimer  *time.Timer
	routeCancel func()
	replay      *replayBody
}

func (x *exchange) done() {
	if x.routeCancel != nil {
		x.routeCancel()
	}
	x.c.requests.Add(-1)
	x.c.m.active.Dec()
}

func (x *exchange) body(try int) (io.ReadCloser, bool) {
	r := x.req
	if r.Body == nil || r.Body == http.NoBody {
		return r.Body, true
	}
	if try == 0 {
		if x.rp.Attempts == 0 || r.GetBody != nil {
			return r.Body, true
		}
		limit := x.rp.MaxReplayBytes
		if limit == 0 {
			limit = 64 << 10
		}
		x.replay = &replayBody{src: r.Body, limit: limit}
		return x.replay.reader(), true
	}
	if r.GetBody != nil {
		b, err := r.GetBody()
		return b, err == nil
	}
	if x.replay != nil {
		return x.replay.again()
	}
	return nil, false
}

func (x *exchange) run() (*http.Response, error) {
	c := x.c
	var prev *endpoint
	retrySlot := false
	for try := 0; ; try++ {
		ep := x.pool.pick(c.lb, prev, time.Now().UnixNano())
		x.att.Host, x.att.Tries = ep.addr, try+1
		releaseRetry := func() {
			if retrySlot {
				retrySlot = false
				c.retries.Add(-1)
			}
		}
		if err := c.acquireConn(x.ctx); err != nil {
			releaseRetry()
			x.done()
			return nil, fail(x.att, x.ctxError(err))
		}
		body, ok := x.body(try)
		if !ok { // GetBody failed: never send a retry without its body
			c.releaseConn()
			releaseRetry()
			x.done()
			return nil, fail(x.att, &Error{Flag: FlagConnTerminate, Status: 503, Err: errors.New("request body cannot be replayed for a retry")})
		}
		out := x.req.WithContext(x.ctx)
		tctx, tcancel := x.ctx, context.CancelCauseFunc(nil)
		var tryTimer *time.Timer
		if x.rp.PerTryTimeout > 0 {
			tctx, tcancel = context.WithCancelCause(x.ctx)
			tryTimer = time.AfterFunc(x.rp.PerTryTimeout, func() { tcancel(errPerTryTimeout) })
			out = out.WithContext(tctx)
		}
		u := *x.req.URL
		u.Scheme, u.Host = c.scheme, ep.addr
		out.URL, out.Body, out.RequestURI, out.Close = &u, body, "", false
		ep.active.Add(1)
		start := time.Now()
		resp, err := c.tr.RoundTrip(out)
		x.att.UpstreamTime = time.Since(start)
		if tryTimer != nil {
			tryTimer.Stop()
		}
		finishTry := func() {
			if tcancel != nil {
				tcancel(nil)
			}
			ep.active.Add(-1)
			c.releaseConn()
		}
		var o outcome
		if err != nil {
			o = x.classify(err, tctx)
		} else {
			o = classifyStatus(resp.StatusCode)
		}
		c.outlier(ep, o)
		c.countResult(resp, o)
		if err != nil && (o == tryTimeout || x.ctx.Err() != nil) {
			c.m.timeouts.Inc()
		}
		releaseRetry()
		if try > 0 && !x.retriable(o, resp) {
			c.m.retrySuccess.Inc()
		}
		// Final: no error worth retrying, or out of tries/budget/time.
		if x.retriable(o, resp) && x.parent.Err() == nil && x.ctx.Err() == nil {
			if try >= x.rp.Attempts || !x.methodAllows(o) {
				if try >= x.rp.Attempts && x.rp.Attempts > 0 {
					x.att.Flags = append(x.att.Flags, FlagRetryLimit)
				}
			} else if _, replayable := x.peekReplayable(); !replayable {
				// The body was too large to keep; answer with what we have.
			} else if !c.reserveRetry() {
				c.m.retryOverflow.Inc()
				x.att.Flags = append(x.att.Flags, FlagRetryLimit)
			} else {
				retrySlot = true
				if resp != nil {
					io.CopyN(io.Discard, resp.Body, 64<<10)
					resp.Body.Close()
				}
				finishTry()
				c.m.retries.Inc()
				if !x.sleep(try) {
					releaseRetry()
					x.done()
					return nil, fail(x.att, x.ctxError(x.ctx.Err()))
				}
				prev = ep
				continue
			}
		}
		if err != nil {
			finishTry()
			x.done()
			return nil, fail(x.att, x.errorFor(o, err))
		}
		if x.routeTimer != nil && resp.StatusCode == http.StatusSwitchingProtocols {
			x.routeTimer.Stop() // an upgraded stream is not bound by the route timeout
		}
		resp.Body = wrapBody(resp.Body, func() { finishTry(); x.done() })
		return resp, nil
	}
}

func (x *exchange) peekReplayable() (struct{}, bool) {
	r := x.req
	if r.Body == nil || r.Body == http.NoBody || r.GetBody != nil {
		return struct{}{}, true
	}
	return struct{}{}, x.replay != nil && x.replay.replayable()
}

// retriable says whether the try's outcome matches the policy's retry_on.
func (x *exchange) retriable(o outcome, resp *http.Response) bool {
	if o == okResponse && resp == nil || o == downstreamGone {
		return false
	}
	for _, on := range x.rp.RetryOn {
		for _, one := range strings.Split(on, ",") {
			if retryOn(strings.TrimSpace(one), o, resp, x.rp.RetriableStatusCodes) {
				return true
			}
		}
	}
	return false
}

// retryOn is Envoy's meaning of one retry_on condition.
func retryOn(cond string, o outcome, resp *http.Response, codes []int) bool {
	switch cond {
	case "5xx":
		return o != okResponse
	case "gateway-error":
		return o == gatewayStatus || o == tryTimeout
	case "reset":
		return o == resetBefore || o == tryTimeout
	case "connect-failure":
		return o == connectFailed
	case "refused-stream":
		return o == refusedStream
	case "retriable-status-codes":
		if resp == nil {
			return false
		}
		for _, s := range codes {
			if resp.StatusCode == s {
				return true
			}
		}
	}
	return false
}

// methodAllows: a request that never reached the upstream (connect failure,
// refused stream) may be retried whatever its method; anything else only
// for idempotent methods unless the route allows all.
func (x *exchange) methodAllows(o outcome) bool {
	if o == connectFailed || o == refusedStream || x.rp.RetryNonIdempotent {
		return true
	}
	return idempotent(x.req.Method)
}

func (x *exchange) sleep(try int) bool {
	base := x.rp.BackoffBase
	if base == 0 {
		base = 25 * time.Millisecond
	}
	maxd := x.rp.BackoffMax
	if maxd == 0 {
		maxd = 10 * base
	}
	d := backoff.Policy{Initial: base, Max: maxd, Multiplier: 2, Jitter: 1}.Delay(try, nil)
	if d <= 0 {
		return x.ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-x.ctx.Done():
		return false
	}
}

func (x *exchange) classify(err error, tctx context.Context) outcome {
	var ce *connectError
	switch {
	case x.parent.Err() != nil, errors.Is(err, ErrDownstream):
		return downstreamGone
	case context.Cause(tctx) == errPerTryTimeout, context.Cause(x.ctx) == errRouteTimeout:
		return tryTimeout
	case errors.As(err, &ce):
		return connectFailed
	case strings.Contains(err.Error(), "REFUSED_STREAM"):
		return refusedStream
	}
	return resetBefore
}

// ctxError maps a failure while waiting (for a slot or a backoff) to *Error.
func (x *exchange) ctxError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if x.parent.Err() != nil {
		return &Error{Flag: FlagDownstream, Status: 499, Err: x.parent.Err()}
	}
	if context.Cause(x.ctx) == errRouteTimeout {
		return &Error{Flag: FlagTimeout, Status: 504, Err: errRouteTimeout}
	}
	return &Error{Flag: FlagConnTerminate, Status: 503, Err: err}
}

func (x *exchange) errorFor(o outcome, err error) *Error {
	switch {
	case x.parent.Err() != nil, o == downstreamGone:
		return &Error{Flag: FlagDownstream, Status: 499, Err: err}
	case context.Cause(x.ctx) == errRouteTimeout:
		return &Error{Flag: FlagTimeout, Status: 504, Err: fmt.Errorf("%w: %v", errRouteTimeout, err)}
	case o == tryTimeout:
		return &Error{Flag: FlagTimeout, Status: 504, Err: fmt.Errorf("%w: %v", errPerTryTimeout, err)}
	case o == connectFailed:
		return &Error{Flag: FlagConnectFail, Status: 503, Err: err}
	}
	return &Error{Flag: FlagConnTerminate, Status: 503, Err: err}
}

func (c *Cluster) countResult(resp *http.Response, o outcome) {
	var label string
	switch {
	case resp != nil:
		label = [...]string{"1xx", "1xx", "2xx", "3xx", "4xx", "5xx"}[min(resp.StatusCode/100, 5)]
	case o == connectFailed:
		label = FlagConnectFail
	case o == tryTimeout:
		label = FlagTimeout
	case o == downstreamGone:
		label = FlagDownstream
	default:
		label = FlagConnTerminate
	}
	c.m.byClass.WithLabelValues(label).Inc()
}

// --- bodies ---

// wrapBody calls done once when the body is read to EOF or closed. An
// upgraded (101) body stays an io.ReadWriteCloser.
func wrapBody(b io.ReadCloser, done func()) io.ReadCloser {
	tb := &trackedBody{rc: b, done: done}
	if rw, ok := b.(io.ReadWriteCloser); ok {
		return &trackedRWBody{trackedBody: tb, w: rw}
	}
	return tb
}

type trackedBody struct {
	rc   io.ReadCloser
	done func()
	fin  atomic.Bool
}

func (t *trackedBody) Read(p []byte) (int, error) {
	n, err := t.rc.Read(p)
	if err != nil && t.fin.CompareAndSwap(false, true) {
		t.done()
	}
	return n, err
}

func (t *trackedBody) Close() error {
	err := t.rc.Close()
	if t.fin.CompareAndSwap(false, true) {
		t.done()
	}
	return err
}

type trackedRWBody struct {
	*trackedBody
	w io.Writer
}

func (t *trackedRWBody) Write(p []byte) (int, error) { return t.w.Write(p) }

// replayBody keeps the first limit bytes of a request body as they are sent
// so a retry can send them again and then continue with the rest of the
// original. Each try reads through its own generation; a reader left over
// from an earlier try (the transport may still hold it) fails.
type replayBody struct {
	mu       sync.Mutex
	src      io.ReadCloser
	buf      []byte
	limit    int
	overflow bool
	srcErr   error
	gen      int
}

func (r *replayBody) reader() io.ReadCloser {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen++
	return &replayReader{r: r, gen: r.gen}
}

func (r *replayBody) replayable() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.overflow
}

func (r *replayBody) again() (io.ReadCloser, bool) {
	if !r.replayable() {
		return nil, false
	}
	return r.reader(), true
}

var errStaleBody = errors.New("request body superseded by a retry")

type replayReader struct {
	r   *replayBody
	gen int
	off int
}

func (rr *replayReader) Read(p []byte) (int, error) {
	r := rr.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if rr.gen != r.gen {
		return 0, errStaleBody
	}
	if rr.off < len(r.buf) {
		n := copy(p, r.buf[rr.off:])
		rr.off += n
		return n, nil
	}
	if r.srcErr != nil {
		return 0, r.srcErr
	}
	n, err := r.src.Read(p)
	if n > 0 && !r.overflow {
		if len(r.buf)+n > r.limit {
			r.overflow, r.buf = true, nil
		} else {
			r.buf = append(r.buf, p[:n]...)
			rr.off += n
		}
	}
	if err != nil {
		r.srcErr = err
	}
	return n, err
}

// Close does not close the downstream body: a retry may still need it (the
// server closes it when the handler returns).
func (rr *replayReader) Close() error { return nil }
