package configsync

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/sidecarkit/sidecarkit/configsync/brain"
	"github.com/sidecarkit/sidecarkit/configsync/syncer"
	"github.com/sidecarkit/sidecarkit/configsync/trim"
	"github.com/sidecarkit/sidecarkit/configsync/watch"
	"github.com/sidecarkit/sidecarkit/shared/app"
	"github.com/sidecarkit/sidecarkit/shared/backoff"
	"github.com/sidecarkit/sidecarkit/shared/notify"
)

// MetricsPrefix starts every configsync metric name.
const MetricsPrefix = "sidecarkit_configsync_"

// maxBlockingWait is Consul's own ceiling for a blocking query's wait.
const maxBlockingWait = 10 * time.Minute

// Helper is configsync for app.Main.
func Helper() app.Helper[Config] {
	return app.Helper[Config]{
		Name:      "configsync",
		AdminAddr: ":15300",
		Bind:      Bind,
		Validate:  Validate,
		Run:       Run,
	}
}

// Run syncs Consul into files until rt stops (or once, with --once).
func Run(ctx context.Context, rt *app.Runtime, c *Config) error {
	if _, set := os.LookupEnv("GOGC"); !set {
		// A small heap collected often: configsync's garbage is a few KB per
		// change, so this costs little CPU and keeps RSS small.
		debug.SetGCPercent(25)
	}
	if c.TrimMemory && !c.Once {
		// Package init has mapped most of the executable; little of it is
		// needed again.
		trim.Executable()
	}
	outs, probs := c.outputs()
	if err := probs.Err(); err != nil {
		return fmt.Errorf("%w: %w", app.ErrConfig, err)
	}
	copts, err := c.consulOptions()
	if err != nil {
		return fmt.Errorf("%w: source: %w", app.ErrConfig, err)
	}
	consul, err := watch.NewConsul(copts)
	if err != nil {
		return fmt.Errorf("%w: %w", app.ErrConfig, err)
	}
	defer consul.Close()
	m := syncer.NewMetrics(rt.Registry, MetricsPrefix)
	wait := c.SyncInterval
	if wait > maxBlockingWait {
		wait = maxBlockingWait
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b := brain.New()
	mgr := watch.New(wctx, consul, b, rt.Log, watch.Options{
		Blocking: c.Blocking, Interval: wait,
		Backoff: backoff.Policy{Initial: 250 * time.Millisecond, Max: 30 * time.Second, Jitter: 0.3},
		Errors:  m.Errors.WithLabelValues("consul"), Resets: m.Resets,
	})
	defer mgr.Wait()
	defer cancel()
	syncer.RegisterStatus(rt.Registry, MetricsPrefix, mgr)

	notifier := notify.New(c.Notify.Target(), c.Notify, rt.Log, rt.Registry, MetricsPrefix)
	nctx, ncancel := context.WithCancel(ctx)
	ndone := make(chan struct{})
	go func() { defer close(ndone); notifier.Run(nctx) }()
	defer func() { ncancel(); <-ndone }()

	ready := rt.Health.NewFlag("first-sync")
	wmax := c.WaitMax
	if wmax == 0 {
		wmax = 4 * c.WaitMin
	}
	s := &syncer.Syncer{
		Outputs: outs, View: b, Watch: mgr, Notify: notifier, Log: rt.Log, Metrics: m,
		Env: environ(), AllowMissing: c.AllowMissing, SkipBadKeys: c.SkipBadKeys, WaitMin: c.WaitMin, WaitMax: wmax, Once: c.Once,
		Ready:     func() { ready.Set(nil) },
		Permanent: watch.Permanent,
	}
	if c.TrimMemory && !c.Once {
		synced := make(chan struct{}, 1)
		s.Synced = func() {
			select {
			case synced <- struct{}{}:
			default:
			}
		}
		tdone := make(chan struct{})
		go func() { defer close(tdone); trimWhenIdle(wctx, rt, synced, trimIdle) }()
		defer func() { <-tdone }()
		defer cancel()
	}
	rt.Admin.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st := mgr.Status(time.Now())
		body := map[string]any{
			"outputs": s.Status(), "watched": st.Watchers, "failing_watches": st.Failing,
			"staleness_seconds": st.Staleness.Seconds(), "ready": ready.Err() == nil,
		}
		if st.LastErr != nil {
			body["last_consul_error"] = st.LastErr.Error()
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(body)
	})
	rt.Log.Info("syncing", "consul", copts.Address, "outputs", len(outs), "blocking", c.Blocking,
		"sync_interval", c.SyncInterval.String(), "once", c.Once)
	if err := s.Run(ctx, rt.Stopping()); err != nil {
		return err
	}
	if c.Once {
		rt.Log.Info("once: every output written")
	}
	return nil
}

// trimIdle is how long after the last sync configsync drops the executable
// pages it mapped while working (see package trim).
const trimIdle = 5 * time.Second

func trimWhenIdle(ctx context.Context, rt *app.Runtime, synced <-chan struct{}, idle time.Duration) {
	t := time.NewTimer(idle)
	t.Stop()
	for {
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-synced:
			t.Reset(idle)
		case <-t.C:
			debug.FreeOSMemory() // give the heap a change burst grew back to the OS
			n, err := trim.Executable()
			if err != nil {
				rt.Log.Debug("trim executable pages", "err", err)
			} else {
				rt.Log.Debug("dropped idle executable pages from RSS", "bytes", n)
			}
		}
	}
}

func environ() map[string]string {
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}
