// Package app runs a sidecarkit helper's whole life: subcommands (run,
// validate, wait, version), configuration, logging, the admin server, the
// startup deadline and the shutdown script of CONTRACT.md:
//
//	SIGTERM or POST /quitquitquit: not-ready → --drain-delay → stop accepting
//	(Runtime.Stopping closes) → in-flight work finishes up to --drain-timeout
//	→ exit 0. A second SIGTERM/SIGINT exits at once.
//
// Exit codes: 0 clean, 1 runtime failure, 2 bad configuration.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sidecarkit/sidecarkit/shared/admin"
	"github.com/sidecarkit/sidecarkit/shared/config"
	"github.com/sidecarkit/sidecarkit/shared/health"
	"github.com/sidecarkit/sidecarkit/shared/logging"
	"github.com/sidecarkit/sidecarkit/shared/version"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitRuntime = 1
	ExitConfig  = 2
)

// Helper describes one helper binary. C is its config struct.
type Helper[C any] struct {
	Name      string // "proxy", "ambassador", ...: metrics prefix sidecarkit_<name>_, env prefix NAME_
	AdminAddr string // default admin listen address, e.g. ":15000"
	// DrainDelay is the helper's default --drain-delay.
	DrainDelay time.Duration
	// Bind registers the helper's own options on the loader.
	Bind func(l *config.Loader, c *C)
	// Validate returns every problem in c (joined), or nil. It must not have
	// side effects. The loader says where each value came from.
	Validate func(l *config.Loader, c *C) error
	// Run does the helper's work until rt.Stopping() closes, then stops
	// accepting new work, finishes what is in flight and returns nil. ctx is
	// cancelled when the drain deadline passes: return at once then. Returning
	// nil before Stopping ends the process with 0 (one-shot modes); an error
	// ends it with 1, or 2 if it wraps ErrConfig.
	Run func(ctx context.Context, rt *Runtime, c *C) error
}

// ErrConfig marks an error found at run time that is the configuration's fault.
var ErrConfig = errors.New("configuration error")

// Common is the lifecycle configuration every helper shares.
type Common struct {
	AdminAddr      string
	LogFormat      string
	LogLevel       string
	DrainDelay     time.Duration
	DrainTimeout   time.Duration
	StartupTimeout time.Duration
	// AdminControlFrom is who may use the admin server's control endpoints
	// (POST /drain, /quitquitquit, pprof ...; see admin.Control).
	AdminControlFrom []string
}

func (c *Common) bind(l *config.Loader, adminAddr string, drainDelay time.Duration) {
	l.String(&c.AdminAddr, "admin-addr", adminAddr, "admin server listen address (probes, metrics, drain)")
	l.Strings(&c.AdminControlFrom, "admin-control-from", admin.DefaultControlFrom, "client addresses/CIDRs allowed to use the admin control endpoints (POST /drain, /quitquitquit, pprof); probes and metrics answer everyone. 0.0.0.0/0,::/0 allows all")
	l.String(&c.LogFormat, "log-format", "json", "log format: json or text")
	l.String(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	l.Duration(&c.DrainDelay, "drain-delay", drainDelay, "after turning not-ready, keep accepting for this long (endpoint propagation)")
	l.Duration(&c.DrainTimeout, "drain-timeout", 30*time.Second, "how long in-flight work may take to finish once accepting stops")
	l.Duration(&c.StartupTimeout, "startup-timeout", 2*time.Minute, "exit 1 if not ready within this long (0: no limit)")
}

func (c *Common) validate(p *config.Problems) {
	if _, _, err := net.SplitHostPort(c.AdminAddr); err != nil {
		p.Add("admin-addr", c.AdminAddr, "want host:port (%v)", err)
	}
	if _, err := admin.ParseControlFrom(c.AdminControlFrom); err != nil {
		p.Add("admin-control-from", strings.Join(c.AdminControlFrom, ","), "%v", err)
	}
	if _, err := logging.New(io.Discard, c.LogFormat, "info", ""); err != nil {
		p.Add("log-format", c.LogFormat, "want json or text")
	}
	if _, err := logging.ParseLevel(c.LogLevel); err != nil {
		p.Add("log-level", c.LogLevel, "want debug, info, warn or error")
	}
	for _, d := range []struct {
		k string
		v time.Duration
	}{{"drain-delay", c.DrainDelay}, {"drain-timeout", c.DrainTimeout}, {"startup-timeout", c.StartupTimeout}} {
		if d.v < 0 {
			p.Add(d.k, d.v, "must not be negative")
		}
	}
}

// Runtime is what a running helper gets from the framework.
type Runtime struct {
	Log      *slog.Logger
	Registry *prometheus.Registry
	Health   *health.State
	Admin    *http.ServeMux
	Common   Common
	Info     version.Info
	// ConfigPath is the YAML file named by --config, "" when none; a helper
	// that reloads on change watches it and calls ParseConfig again.
	ConfigPath string
	// Stdout is where one-shot modes may print (dry runs, --once reports).
	Stdout io.Writer

	drainOnce, stopOnce sync.Once
	draining, stopping  chan struct{}
	quit                chan struct{}
	quitOnce            sync.Once
}

// Draining closes when the helper turned not-ready (drain started, by POST
// /drain, SIGTERM or /quitquitquit). The helper keeps serving.
func (rt *Runtime) Draining() <-chan struct{} { return rt.draining }

// Stopping closes when the helper must stop accepting new work and finish
// what is in flight (after --drain-delay).
func (rt *Runtime) Stopping() <-chan struct{} { return rt.stopping }

// Drain turns the helper not-ready and closes Draining; it does not exit.
func (rt *Runtime) Drain() {
	rt.drainOnce.Do(func() {
		rt.Health.SetDraining()
		rt.Log.Info("draining: readiness now fails")
		close(rt.draining)
	})
}

// Quit starts the shutdown script, as SIGTERM does.
func (rt *Runtime) Quit() { rt.quitOnce.Do(func() { close(rt.quit) }) }

// NewRuntime builds a runtime for tests of a helper's Run without a process.
func NewRuntime(name string, log *slog.Logger) *Runtime {
	if log == nil {
		log = logging.Discard()
	}
	reg := prometheus.NewRegistry()
	info := version.Get(name)
	rt := &Runtime{
		Log: log, Registry: reg, Health: health.New(), Info: info, Stdout: io.Discard,
		draining: make(chan struct{}), stopping: make(chan struct{}), quit: make(chan struct{}),
	}
	rt.Admin = admin.NewMux(info, rt.Health, reg, admin.Actions{Drain: rt.Drain, Quit: rt.Quit})
	return rt
}

// Stop closes Stopping (and Draining) — for tests that drive Run directly.
func (rt *Runtime) Stop() {
	rt.Drain()
	rt.stopOnce.Do(func() { close(rt.stopping) })
}

// Main runs the helper with the process's arguments, environment and signals
// and exits with its code. It is the only os.Exit in a helper.
func Main[C any](h Helper[C]) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	os.Exit(Run(context.Background(), h, os.Args[1:], os.Environ(), os.Stdout, os.Stderr, sigs))
}

// Run is Main without the process: it returns the exit code.
func Run[C any](ctx context.Context, h Helper[C], args, env []string, stdout, stderr io.Writer, sigs <-chan os.Signal) int {
	sub := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	for _, a := range args {
		if a == "--version" || a == "-version" {
			sub = "version"
		}
	}
	info := version.Get(h.Name)
	switch sub {
	case "version":
		fmt.Fprintln(stdout, info.String())
		return ExitOK
	case "wait":
		return waitCmd(ctx, h.Name, h.AdminAddr, args, env, stdout, stderr)
	case "drain":
		return drainCmd(ctx, h.Name, h.AdminAddr, args, env, stdout, stderr)
	case "run", "validate":
	default:
		fmt.Fprintf(stderr, "%s: unknown subcommand %q (want run, validate, wait, drain or version)\n", h.Name, sub)
		return ExitConfig
	}

	pc, err := parse(h, args, env)
	if errors.Is(err, flag.ErrHelp) {
		pc.loader.Usage(stdout)
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: invalid configuration:\n", h.Name)
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "  - %s\n", line)
		}
		return ExitConfig
	}
	if sub == "validate" {
		fmt.Fprintf(stdout, "%s: configuration is valid\n", h.Name)
		return ExitOK
	}

	log, _ := logging.New(stdout, pc.common.LogFormat, pc.common.LogLevel, h.Name)
	return serve(ctx, h, pc, info, log, stdout, sigs)
}

// parsed is a parsed and validated command line.
type parsed[C any] struct {
	common Common
	cfg    C
	loader *config.Loader
}

// parse reads args (without the subcommand) and env the way Run does: the
// lifecycle flags every helper shares, the helper's own, the --config file;
// then validates both. The error lists every problem.
func parse[C any](h Helper[C], args, env []string) (*parsed[C], error) {
	pc := &parsed[C]{loader: config.NewLoader(h.Name)}
	l := pc.loader
	pc.common.bind(l, h.AdminAddr, h.DrainDelay)
	if h.Bind != nil {
		h.Bind(l, &pc.cfg)
	}
	rest, err := l.Parse(args, env)
	if errors.Is(err, flag.ErrHelp) {
		return pc, err
	}
	var problems config.Problems
	if err != nil {
		problems = append(problems, err)
	}
	if len(rest) > 0 {
		problems.Addf("unexpected arguments: %q", rest)
	}
	pc.common.validate(&problems)
	if h.Validate != nil && err == nil {
		if verr := h.Validate(l, &pc.cfg); verr != nil {
			problems = append(problems, verr)
		}
	}
	return pc, problems.Err()
}

// ParseConfig parses and validates a helper's configuration exactly as Run
// does at start (flags > env > the --config file > defaults) and returns it
// with the path of the --config file ("" when none). A helper that reloads
// its file on change calls it again with the process's args and env (a
// leading "run" or "validate" is skipped).
func ParseConfig[C any](h Helper[C], args, env []string) (*C, string, error) {
	if len(args) > 0 && (args[0] == "run" || args[0] == "validate") {
		args = args[1:]
	}
	pc, err := parse(h, args, env)
	if err != nil {
		return nil, pc.loader.ConfigFile(), err
	}
	return &pc.cfg, pc.loader.ConfigFile(), nil
}

func serve[C any](ctx context.Context, h Helper[C], pc *parsed[C], info version.Info, log *slog.Logger, stdout io.Writer, sigs <-chan os.Signal) int {
	cfg, common := &pc.cfg, pc.common
	rt := NewRuntime(h.Name, log)
	rt.Common = common
	rt.ConfigPath = pc.loader.ConfigFile()
	rt.Stdout = stdout
	rt.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	prefix := "sidecarkit_" + strings.ReplaceAll(h.Name, "-", "_") + "_"
	rt.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: prefix + "ready", Help: "1 when the helper is ready to do its job.",
	}, func() float64 { return b2f(rt.Health.Ready()) }))
	rt.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: prefix + "draining", Help: "1 once draining has started.",
	}, func() float64 { return b2f(rt.Health.Draining()) }))
	bi := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: prefix + "build_info", Help: "Build information.",
		ConstLabels: prometheus.Labels{"version": info.Version, "commit": info.Commit, "goversion": info.GoVersion},
	})
	bi.Set(1)
	rt.Registry.MustRegister(bi)

	ln, err := net.Listen("tcp", common.AdminAddr)
	if err != nil {
		log.Error("admin server: cannot listen", "addr", common.AdminAddr, "err", err)
		return ExitRuntime
	}
	controlFrom, _ := admin.ParseControlFrom(common.AdminControlFrom) // validated
	adminSrv := &http.Server{Handler: admin.Guard(rt.Admin, controlFrom), ReadHeaderTimeout: 5 * time.Second}
	go adminSrv.Serve(ln)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		adminSrv.Shutdown(sctx)
	}()
	log.Info("starting", "version", info.Version, "commit", info.Commit, "admin", ln.Addr().String(), "admin_control_from", strings.Join(common.AdminControlFrom, ","))

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	done := make(chan error, 1)
	go func() { done <- h.Run(runCtx, rt, cfg) }()

	// The startup deadline and the "ready" log line.
	var startup <-chan time.Time
	if common.StartupTimeout > 0 {
		t := time.NewTimer(common.StartupTimeout)
		defer t.Stop()
		startup = t.C
	}
	started := make(chan struct{})
	rt.Health.OnStarted(func() { close(started) })
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()

	exitFor := func(err error) int {
		switch {
		case err == nil || errors.Is(err, context.Canceled):
			return ExitOK
		case errors.Is(err, ErrConfig):
			log.Error("configuration error", "err", err)
			return ExitConfig
		default:
			log.Error("stopped on error", "err", err)
			return ExitRuntime
		}
	}

	// Phase 1: running.
	var why string
running:
	for {
		select {
		case err := <-done:
			if err == nil {
				log.Info("finished")
			}
			return exitFor(err)
		case <-started:
			started = nil
			startup = nil
			log.Info("ready")
		case <-poll.C:
			if started != nil {
				rt.Health.Check() // latches started when ready
			} else {
				poll.Stop()
			}
		case <-startup:
			_, results := rt.Health.Check()
			log.Error("not ready before --startup-timeout; exiting", "startup_timeout", common.StartupTimeout.String(), "checks", failing(results))
			cancelRun()
			waitDone(done, time.Second)
			return ExitRuntime
		case s := <-sigs:
			why = "signal " + s.String()
			break running
		case <-rt.quit:
			why = "POST /quitquitquit"
			break running
		case <-ctx.Done():
			why = "context cancelled"
			break running
		}
	}

	// Phase 2: the shutdown script.
	log.Info("shutting down", "reason", why, "drain_delay", common.DrainDelay.String(), "drain_timeout", common.DrainTimeout.String())
	rt.Drain()
	if common.DrainDelay > 0 {
		t := time.NewTimer(common.DrainDelay)
		select {
		case <-t.C:
		case err := <-done:
			t.Stop()
			return exitFor(err)
		case s := <-sigs:
			t.Stop()
			log.Warn("second signal: exiting at once", "signal", s.String())
			return ExitRuntime
		}
	}
	rt.stopOnce.Do(func() { close(rt.stopping) })
	deadline := time.NewTimer(common.DrainTimeout)
	defer deadline.Stop()
	select {
	case err := <-done:
		log.Info("drained")
		return exitFor(err)
	case s := <-sigs:
		log.Warn("second signal: exiting at once", "signal", s.String())
		return ExitRuntime
	case <-deadline.C:
		log.Warn("drain timeout reached; cutting in-flight work")
		cancelRun()
		if !waitDone(done, 2*time.Second) {
			log.Warn("helper did not stop after cancel")
		}
		return ExitOK
	}
}

func waitDone(done <-chan error, d time.Duration) bool {
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

func failing(rs []health.Result) string {
	var b []string
	for _, r := range rs {
		if !r.OK {
			b = append(b, r.Name+": "+r.Err)
		}
	}
	return strings.Join(b, "; ")
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// waitCmd implements `HELPER wait`: block until a readiness URL answers 200.
func waitCmd(ctx context.Context, name, adminAddr string, args, env []string, stdout, stderr io.Writer) int {
	var url, admin string
	var timeout, interval time.Duration
	l := config.NewLoader(name + "-wait")
	l.String(&admin, "admin-addr", adminAddr, "admin address of the helper to wait for")
	l.String(&url, "url", "", "readiness URL to poll (default http://127.0.0.1:<admin port>/readyz)")
	l.Duration(&timeout, "timeout", 60*time.Second, "give up after this long (exit 1)")
	l.Duration(&interval, "interval", 250*time.Millisecond, "poll interval")
	if _, err := l.Parse(args, env); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			l.Usage(stdout)
			return ExitOK
		}
		fmt.Fprintf(stderr, "%s wait: %v\n", name, err)
		return ExitConfig
	}
	if url == "" {
		_, port, err := net.SplitHostPort(admin)
		if err != nil {
			fmt.Fprintf(stderr, "%s wait: --admin-addr %q: %v\n", name, admin, err)
			return ExitConfig
		}
		url = "http://127.0.0.1:" + port + "/readyz"
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	if err := health.Wait(wctx, nil, url, interval); err != nil {
		fmt.Fprintf(stderr, "%s wait: %v\n", name, err)
		return ExitRuntime
	}
	fmt.Fprintf(stdout, "%s wait: %s ready after %s\n", name, url, time.Since(start).Round(time.Millisecond))
	return ExitOK
}

// drainCmd implements `HELPER drain`: POST /drain to a helper's admin port
// on loopback — what a preStop hook runs (an httpGet hook cannot POST, and
// the control endpoints answer only loopback clients by default).
func drainCmd(ctx context.Context, name, adminAddr string, args, env []string, stdout, stderr io.Writer) int {
	var admin string
	var timeout time.Duration
	l := config.NewLoader(name + "-drain")
	l.String(&admin, "admin-addr", adminAddr, "admin address of the helper to drain (its port is used on 127.0.0.1)")
	l.Duration(&timeout, "timeout", 5*time.Second, "give up after this long (exit 1)")
	if _, err := l.Parse(args, env); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			l.Usage(stdout)
			return ExitOK
		}
		fmt.Fprintf(stderr, "%s drain: %v\n", name, err)
		return ExitConfig
	}
	_, port, err := net.SplitHostPort(admin)
	if err != nil {
		fmt.Fprintf(stderr, "%s drain: --admin-addr %q: %v\n", name, admin, err)
		return ExitConfig
	}
	url := "http://127.0.0.1:" + port + "/drain"
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodPost, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "%s drain: %v\n", name, err)
		return ExitRuntime
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "%s drain: %s: HTTP %d %s\n", name, url, resp.StatusCode, strings.TrimSpace(string(body)))
		return ExitRuntime
	}
	fmt.Fprintf(stdout, "%s drain: %s: %s\n", name, url, strings.TrimSpace(string(body)))
	return ExitOK
}
