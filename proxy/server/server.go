// Package server assembles the running proxy from its configuration:
// listeners with their HTTP servers and stream handlers, clusters, the
// routing snapshot that reloads swap atomically, the Envoy-named admin
// endpoints, and the drain script (inbound stops after --drain-delay,
// outbound serves the app until it is done or the deadline passes).
package server

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sidecarkit/sidecarkit/proxy/config"
	"github.com/sidecarkit/sidecarkit/proxy/direct"
	"github.com/sidecarkit/sidecarkit/proxy/h1"
	"github.com/sidecarkit/sidecarkit/proxy/httpproxy"
	"github.com/sidecarkit/sidecarkit/proxy/istio"
	"github.com/sidecarkit/sidecarkit/proxy/listener"
	"github.com/sidecarkit/sidecarkit/proxy/mtls"
	"github.com/sidecarkit/sidecarkit/proxy/route"
	"github.com/sidecarkit/sidecarkit/proxy/sniff"
	"github.com/sidecarkit/sidecarkit/proxy/stats"
	"github.com/sidecarkit/sidecarkit/proxy/tracing"
	"github.com/sidecarkit/sidecarkit/proxy/upstream"
	"github.com/sidecarkit/sidecarkit/shared/app"
	skconfig "github.com/sidecarkit/sidecarkit/shared/config"
)

// Helper returns the proxy's app.Helper. args and env are the process's;
// they are kept to reload the configuration file when it changes.
func Helper(args, env []string) app.Helper[config.Config] {
	h := config.Helper()
	// Istio resources (--istio-config) are translated and merged into the
	// configuration before it is validated, run or reloaded.
	h.Validate = func(_ *skconfig.Loader, c *config.Config) error {
		mc, err := istio.Load(c)
		if err != nil {
			return err
		}
		return config.Validate(mc)
	}
	h.Run = func(ctx context.Context, rt *app.Runtime, c *config.Config) error {
		mc, err := istio.Load(c)
		if err != nil {
			return fmt.Errorf("%w: %v", app.ErrConfig, err)
		}
		var dirs []string
		if c.IstioConfig != "" {
			dirs = append(dirs, c.IstioConfig)
		}
		return Run(ctx, rt, mc, Options{
			ConfigPath: rt.ConfigPath,
			WatchDirs:  dirs,
			Reload: func() (*config.Config, error) {
				nc, err := config.Reparse(args, env)
				if err != nil {
					return nil, err
				}
				mc, err := istio.Load(nc)
				if err != nil {
					return nil, err
				}
				return mc, config.Validate(mc)
			},
		})
	}
	return h
}

// Options are the parts of a run that are not configuration.
type Options struct {
	ConfigPath string                         // watched for changes ("" = no reload)
	Reload     func() (*config.Config, error) // loads and validates the configuration again
	WatchDirs  []string                       // more directories whose changes reload (--istio-config)
	Kubernetes upstream.KubernetesEndpoints   // endpoints for kubernetes: clusters (--kube-discovery)
	// Ready, when set, receives the bound listener addresses once all listen
	// (tests use it with port 0).
	Ready func(map[string]net.Addr)
	// server, when set, receives the running server (tests).
	server **Server
}

// Server is a running proxy.
type Server struct {
	rt      *app.Runtime
	log     *slog.Logger
	metrics *stats.Metrics
	tracer  *tracing.Tracer // nil: tracing off (fixed at start; a reload does not change it)
	opts    Options

	cfg   atomic.Pointer[config.Config]
	state atomic.Pointer[httpproxy.Snapshot]

	lmu       sync.Mutex
	listeners []*runningListener // serving
	retired   []*runningListener // removed by a reload, draining
	stopping  bool               // the drain started: reloads no longer touch listeners

	outboundFwd *direct.Forwarder // passthrough and outbound targets
	inboundFwd  *direct.Forwarder // the app, from --source-addr

	tunnelCtx    context.Context
	cancelTunnel context.CancelFunc
	hcFail       atomic.Bool
	mu           sync.Mutex // guards clusters
	clusters     map[string]*clusterEntry
}

type runningListener struct {
	s       *Server
	cfg     config.Listener
	ln      net.Listener
	http    *listener.ChanListener
	srv     *http.Server
	handler *httpproxy.Handler
	streams sync.WaitGroup // raw TCP / TLS passthrough, and the tunnels the handler hijacks
	active  atomic.Int64   // open downstream connections
	done    chan struct{}  // accept loop returned
	drained atomic.Bool
	tlsSrv  *mtls.Server // inbound mTLS termination (nil: plaintext)
	h1      *h1.Server   // HTTP/1.x connections (srv serves h2c only)
}

// Run serves c until rt.Stopping, then drains (see the package doc).
func Run(ctx context.Context, rt *app.Runtime, c *config.Config, o Options) error {
	s := &Server{rt: rt, log: rt.Log, metrics: stats.New(rt.Registry), opts: o}
	if o.server != nil {
		*o.server = s
	}
	s.tunnelCtx, s.cancelTunnel = context.WithCancel(context.WithoutCancel(ctx))
	defer s.cancelTunnel()
	var src net.IP
	if c.SourceAddr != "" {
		src = net.ParseIP(c.SourceAddr)
	}
	upOpen := func(target string) (func(), func()) {
		a, t := s.metrics.UpActive.WithLabelValues(target), s.metrics.UpTotal.WithLabelValues(target)
		return func() { a.Inc(); t.Inc() }, a.Dec
	}
	oo, oc := upOpen("passthrough")
	s.outboundFwd = direct.New(direct.Options{ConnectTimeout: c.ConnectTimeout, OnOpen: oo, OnClose: oc})
	io, ic := upOpen("app")
	var src6 net.IP
	if c.SourceAddr6 != "" {
		src6 = net.ParseIP(c.SourceAddr6)
	}
	s.inboundFwd = direct.New(direct.Options{SourceIP: src, SourceIP6: src6, ConnectTimeout: c.ConnectTimeout, OnOpen: io, OnClose: ic})

	if c.Tracing.Enabled() {
		tr, err := tracing.New(c.Tracing, rt.Registry, s.log)
		if err != nil {
			return fmt.Errorf("%w: %v", app.ErrConfig, err)
		}
		s.tracer = tr
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			tr.Shutdown(sctx)
		}()
	}
	snap, err := s.build(c)
	if err != nil {
		return fmt.Errorf("%w: %v", app.ErrConfig, err)
	}
	s.cfg.Store(c)
	s.state.Store(snap)
	s.metrics.ConfigTimestamp.SetToCurrentTime()

	ready := rt.Health.NewFlag("listeners")
	rt.Health.AddCheck("clusters", s.clustersReady)
	rt.Health.AddCheck("healthcheck", func() error {
		if s.hcFail.Load() {
			return errors.New("failed by POST /healthcheck/fail")
		}
		return nil
	})
	addrs := map[string]net.Addr{}
	for _, lc := range c.Effective() {
		rl, err := s.listen(c, lc)
		if err != nil {
			s.closeAll()
			return err
		}
		s.listeners = append(s.listeners, rl)
		addrs[lc.Name] = rl.ln.Addr()
	}
	var promSrv *http.Server
	if c.PrometheusAddr != "" {
		ln, err := net.Listen("tcp", c.PrometheusAddr)
		if err != nil {
			s.closeAll()
			return fmt.Errorf("prometheus listener %s: %w", c.PrometheusAddr, err)
		}
		addrs["prometheus"] = ln.Addr()
		promSrv = &http.Server{Handler: s.prometheusMux(), ReadHeaderTimeout: 5 * time.Second}
		go promSrv.Serve(ln)
		defer promSrv.Close()
	}
	s.registerAdmin()
	for _, rl := range s.listeners {
		go rl.serve()
	}
	for name, a := range addrs {
		s.log.Info("listening", "listener", name, "addr", a.String())
	}
	stopWatch := s.watch(ctx)
	defer stopWatch()
	ready.Set(nil)
	if o.Ready != nil {
		o.Ready(addrs)
	}

	select {
	case <-rt.Stopping():
	case <-ctx.Done():
		s.closeAll()
		return nil
	}
	return s.drain(ctx)
}

// current returns the serving listeners.
func (s *Server) current() []*runningListener {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	return append([]*runningListener(nil), s.listeners...)
}

// drain runs the shutdown script once accepting must stop.
func (s *Server) drain(ctx context.Context) error {
	s.lmu.Lock()
	s.stopping = true
	s.lmu.Unlock()
	var inbound, outbound []*runningListener
	for _, rl := range s.current() {
		if rl.cfg.Direction == config.Inbound {
			inbound = append(inbound, rl)
		} else {
			outbound = append(outbound, rl)
		}
	}
	s.log.Info("drain: inbound listeners stop accepting; outbound keeps serving the app", "inbound", len(inbound), "outbound", len(outbound))
	var wg sync.WaitGroup
	for _, rl := range inbound {
		wg.Add(1)
		go func() { defer wg.Done(); rl.shutdown(ctx) }()
	}
	wg.Wait()
	// Outbound: serve until the app has no connection open (it is done), or
	// the deadline.
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for ctx.Err() == nil {
		open := int64(0)
		for _, rl := range outbound {
			open += rl.active.Load()
		}
		if open == 0 {
			break
		}
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	for _, rl := range outbound {
		wg.Add(1)
		go func() { defer wg.Done(); rl.shutdown(ctx) }()
	}
	wg.Wait()
	s.closeAll()
	if ctx.Err() != nil {
		s.log.Warn("drain deadline passed; open connections were cut")
	}
	return nil
}

func (s *Server) closeAll() {
	s.lmu.Lock()
	s.stopping = true
	all := append(append([]*runningListener(nil), s.listeners...), s.retired...)
	s.lmu.Unlock()
	for _, rl := range all {
		rl.ln.Close()
		rl.http.Close()
		rl.srv.Close()
		if rl.h1 != nil {
			rl.h1.Close()
		}
	}
	s.cancelTunnel()
	for _, rl := range all {
		rl.streams.Wait()
		if rl.tlsSrv != nil {
			rl.tlsSrv.Close()
		}
	}
	s.closeClusters()
	if snap := s.state.Load(); snap != nil {
		for _, f := range snap.Closers {
			f()
		}
	}
	s.outboundFwd.CloseIdle()
	s.inboundFwd.CloseIdle()
}

// listen binds one listener.
func (s *Server) listen(c *config.Config, lc config.Listener) (*runningListener, error) {
	ln, err := net.Listen("tcp", lc.Address)
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", lc.Name, err)
	}
	rl := &runningListener{s: s, cfg: lc, ln: ln, http: listener.NewChanListener(ln.Addr()), done: make(chan struct{})}
	if lc.MTLS != nil && (lc.MTLS.Mode == mtls.Strict || lc.MTLS.Mode == mtls.Permissive) {
		ts, err := mtls.NewServer(*lc.MTLS, s.log.With("listener", lc.Name))
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("listener %s mtls: %w", lc.Name, err)
		}
		rl.tlsSrv = ts
	}
	fwd := s.outboundFwd
	if lc.Direction == config.Inbound {
		fwd = s.inboundFwd
	}
	rl.handler = &httpproxy.Handler{
		Listener: lc, State: &s.state, Direct: fwd, Metrics: s.metrics, AccessLog: s.log,
		Tunnels: &rl.streams, TunnelCtx: s.tunnelCtx, Tracer: s.tracer,
	}
	if rl.tlsSrv != nil {
		rl.handler.Identity = func() string { return rl.tlsSrv.Identity().URI }
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	rl.h1 = &h1.Server{
		Handler: rl.handler, ReadHeaderTimeout: c.HeaderReadTimeout, IdleTimeout: c.IdleTimeout,
		MaxHeaderBytes: c.MaxHeaderBytes, ConnContext: httpproxy.ConnContext,
		OnProtocolError: func(kind string) { s.metrics.ProtocolErrors.WithLabelValues(lc.Name, kind).Inc() },
	}
	rl.srv = &http.Server{
		Handler:           rl.handler,
		ReadHeaderTimeout: c.HeaderReadTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes,
		ConnContext:       httpproxy.ConnContext,
		Protocols:         &protos,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: 1000},
		ErrorLog:          log.New(&serverErrors{log: s.log, listener: lc.Name}, "", 0),
	}
	return rl, nil
}

func (rl *runningListener) serve() {
	go rl.srv.Serve(rl.http)
	active := rl.s.metrics.DownActive.WithLabelValues(rl.cfg.Name)
	o := listener.Options{
		Transparent:   rl.cfg.Transparent,
		Sniff:         rl.cfg.Protocol != config.ProtoTCP,
		DetectTimeout: rl.s.cfg.Load().DetectTimeout,
		HeadTimeout:   rl.s.cfg.Load().HeaderReadTimeout,
		Declare: func(orig netip.AddrPort) string {
			lc := rl.cfg
			if l, ok := rl.s.state.Load().Listeners[rl.cfg.Name]; ok {
				lc = l
			}
			port := 0
			if orig.IsValid() {
				port = int(orig.Port())
			}
			return lc.DeclaredProtocol(port)
		},
		OnOpen:  func() { rl.active.Add(1); active.Inc() },
		OnClose: func() { rl.active.Add(-1); active.Dec() },
		Track:   &rl.streams,
	}
	err := listener.Accept(rl.ln, o, rl.handle)
	if err != nil {
		rl.s.log.Error("accept failed", "listener", rl.cfg.Name, "err", err)
	}
	close(rl.done)
}

// shutdown stops accepting, lets in-flight requests and streams finish until
// ctx ends, then cuts what is left.
func (rl *runningListener) shutdown(ctx context.Context) {
	if !rl.drained.CompareAndSwap(false, true) {
		return
	}
	rl.ln.Close()
	<-rl.done
	rl.http.Close()
	var wg sync.WaitGroup
	if rl.h1 != nil {
		wg.Add(1)
		go func() { defer wg.Done(); rl.h1.Shutdown(ctx) }()
	}
	if err := rl.srv.Shutdown(ctx); err != nil {
		rl.srv.Close()
	}
	wg.Wait()
	waited := make(chan struct{})
	go func() { rl.streams.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
	}
	rl.s.log.Info("listener drained", "listener", rl.cfg.Name, "addr", rl.ln.Addr().String())
}

// handle dispatches one sniffed connection.
func (rl *runningListener) handle(c *listener.Conn) {
	m := rl.s.metrics
	if rl.tlsSrv != nil {
		if c.Proto == sniff.TLS {
			tc, peer, err := rl.tlsSrv.Accept(c)
			if err != nil {
				m.ProtocolErrors.WithLabelValues(rl.cfg.Name, "tls_handshake").Inc()
				rl.s.log.Debug("mtls handshake failed", "listener", rl.cfg.Name, "err", err)
				return
			}
			c = listener.Over(c, tc, peer)
			cfg := rl.s.cfg.Load()
			listener.Sniff(c, cfg.DetectTimeout, cfg.HeaderReadTimeout)
		} else if rl.tlsSrv.Mode() == mtls.Strict {
			m.ProtocolErrors.WithLabelValues(rl.cfg.Name, "plaintext_refused").Inc()
			c.Close()
			return
		}
	}
	proto := c.Proto.String()
	if c.TLS {
		proto = "mtls+" + proto
	}
	m.DownTotal.WithLabelValues(rl.cfg.Name, proto).Inc()
	switch c.Proto {
	case sniff.HTTP1:
		rl.h1.ServeConn(c)
	case sniff.HTTP2:
		rl.http.Push(c)
	default:
		if rl.cfg.Protocol == config.ProtoHTTP || c.Declared == config.ProtoHTTP {
			m.ProtocolErrors.WithLabelValues(rl.cfg.Name, "not_http").Inc()
			c.Close()
			return
		}
		if check := rl.s.state.Load().StreamCheck[rl.cfg.Name]; check != nil {
			if ok, why := check(c); !ok {
				// Istio's TCP semantics of the listener's HTTP policies.
				m.ResponseFlags.WithLabelValues(rl.cfg.Name, "UAEX").Inc()
				rl.s.log.Debug("non-HTTP connection refused by the listener's policies", "listener", rl.cfg.Name, "policy", why, "downstream_remote", c.RemoteAddr().String())
				c.Close()
				return
			}
		}
		rl.stream(c) // counted in rl.streams by the accept loop
	}
}

// stream passes a raw TCP or TLS connection through.
func (rl *runningListener) stream(c *listener.Conn) {
	s := rl.s
	start := time.Now()
	snap := s.state.Load()
	lc, ok := snap.Listeners[rl.cfg.Name]
	if !ok {
		lc = rl.cfg
	}
	var up net.Conn
	var upHost, target, flag string
	var err error
	ctx, cancel := context.WithTimeout(s.tunnelCtx, s.cfg.Load().ConnectTimeout)
	clusterName := ""
	if c.Proto == sniff.TLS && c.ServerName != "" {
		clusterName = route.MatchSNI(lc.SNI, c.ServerName)
	}
	if clusterName == "" {
		clusterName = lc.Cluster
	}
	switch {
	case clusterName != "":
		target = clusterName
		if cl := snap.Clusters[clusterName]; cl != nil {
			up, upHost, err = cl.DialTCP(ctx)
		} else {
			err = errors.New("no such cluster")
		}
	case lc.Target != "":
		target, upHost = "target", lc.Target
		up, err = rl.handler.Direct.DialTCP(ctx, lc.Target)
	case c.OrigDst.IsValid() && lc.Direction == config.Inbound:
		target = "app"
		upHost = httpproxy.AppAddr(c.OrigDst)
		up, err = rl.handler.Direct.DialTCP(ctx, upHost)
	case c.OrigDst.IsValid() && s.cfg.Load().OutboundPassthrough:
		target, upHost = "passthrough", c.OrigDst.String()
		up, err = rl.handler.Direct.DialTCP(ctx, upHost)
	default:
		flag = "NR"
	}
	cancel()
	var in, out int64
	if flag == "" && err != nil {
		flag = "UF"
		var ue *upstream.Error
		if errors.As(err, &ue) {
			flag = ue.Flag
		}
	}
	if flag != "" {
		c.Close()
	} else {
		in, out = listener.Pipe(s.tunnelCtx, c, up)
	}
	if flag != "" {
		s.metrics.ResponseFlags.WithLabelValues(rl.cfg.Name, flag).Inc()
	}
	s.metrics.Bytes.WithLabelValues(rl.cfg.Name, "received").Add(float64(in))
	s.metrics.Bytes.WithLabelValues(rl.cfg.Name, "sent").Add(float64(out))
	if snap.Config.AccessLog {
		if flag == "" {
			flag = "-"
		}
		rl.handler.AccessLog.LogAttrs(context.Background(), slog.LevelInfo, "access",
			slog.String("listener", rl.cfg.Name), slog.String("protocol", c.Proto.String()),
			slog.String("server_name", c.ServerName), slog.String("response_flags", flag),
			slog.Int64("bytes_received", in), slog.Int64("bytes_sent", out),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.String("cluster", target), slog.String("upstream_host", upHost),
			slog.String("downstream_remote", c.RemoteAddr().String()))
	}
}

// serverErrors routes net/http's own error log to slog at debug level and
// counts protocol errors.
type serverErrors struct {
	log      *slog.Logger
	listener string
}

func (e *serverErrors) Write(p []byte) (int, error) {
	e.log.Debug("http server", "listener", e.listener, "msg", strings.TrimSpace(string(p)))
	return len(p), nil
}
