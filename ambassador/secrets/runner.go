package secrets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sidecarkit/sidecarkit/ambassador/dest"
	"github.com/sidecarkit/sidecarkit/ambassador/render"
)

// Output is one rendered file.
type Output struct {
	Name string
	Spec render.Spec
	File dest.File
}

// Notifier is told when a rendered file changed (shared/notify.Notifier).
type Notifier interface{ Trigger() }

// Runner renders every output whenever the store says something changed.
type Runner struct {
	Outputs []Output
	Store   *Store
	Notify  Notifier
	Log     *slog.Logger
	// Rendered is called once, after the first time every output was written.
	Rendered func()
	// FailFast makes Run return at the first error that retrying will not fix
	// (a missing key, a missing secret, permission denied): init mode.
	FailFast bool
	// Once makes Run return nil after the first complete render (init mode).
	Once bool

	renders   *prometheus.CounterVec
	lastWrite *prometheus.GaugeVec
	lastErr   map[string]string
	complete  bool
}

// Register adds the runner's metrics to reg.
func (r *Runner) Register(reg prometheus.Registerer) {
	r.init()
	reg.MustRegister(r.renders, r.lastWrite)
}

func (r *Runner) init() {
	if r.renders == nil {
		r.renders = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sidecarkit_ambassador_renders_total", Help: "Output renders by output and result (written, unchanged, pending, error)."}, []string{"output", "result"})
		r.lastWrite = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sidecarkit_ambassador_output_last_write_timestamp_seconds", Help: "When each output file was last written."}, []string{"output"})
		r.lastErr = map[string]string{}
	}
}

// Run renders until ctx ends (or, with Once, until everything was rendered).
func (r *Runner) Run(ctx context.Context) error {
	r.init()
	for {
		done, err := r.RenderAll()
		if err != nil {
			return err
		}
		if done && r.Once {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.Store.Changed():
		}
	}
}

// RenderAll renders every output once; complete is true when all are on disk.
func (r *Runner) RenderAll() (complete bool, err error) {
	r.init()
	complete = true
	changed := false  // a file's content changed
	replaced := false // a file that was there before this process wrote it changed (an app may be reading it)
	for _, o := range r.Outputs {
		data, rerr := render.Render(o.Spec, r.Store)
		if rerr != nil {
			complete = false
			if errors.Is(rerr, render.ErrPending) && !Permanent(rerr) {
				r.renders.WithLabelValues(o.Name, "pending").Inc()
				r.report(o, "pending", rerr)
				continue
			}
			r.renders.WithLabelValues(o.Name, "error").Inc()
			if r.FailFast {
				return false, fmt.Errorf("render %s (%s): %w", o.Name, o.File.Path, rerr)
			}
			r.report(o, "error", rerr)
			continue
		}
		_, statErr := os.Stat(o.File.Path)
		ch, werr := o.File.Write(data)
		if werr != nil {
			complete = false
			r.renders.WithLabelValues(o.Name, "error").Inc()
			if r.FailFast {
				return false, werr
			}
			r.report(o, "error", werr)
			continue
		}
		r.report(o, "", nil)
		if ch {
			changed = true
			if statErr == nil {
				replaced = true
			}
			r.renders.WithLabelValues(o.Name, "written").Inc()
			r.lastWrite.WithLabelValues(o.Name).Set(float64(time.Now().UnixNano()) / 1e9)
			r.Log.Info("secret file written", "output", o.Name, "path", o.File.Path, "bytes", len(data))
		} else {
			r.renders.WithLabelValues(o.Name, "unchanged").Inc()
		}
	}
	if complete && !r.complete {
		r.complete = true
		r.Log.Info("all secret files rendered", "outputs", len(r.Outputs))
		if r.Rendered != nil {
			r.Rendered()
		}
		// The app usually starts after this, so there is no one to tell —
		// unless a file left by an earlier run (an init container, a restart
		// of this sidecar) changed under an app that may be running.
		changed = replaced
	}
	if changed && r.complete && r.Notify != nil {
		r.Notify.Trigger()
	}
	return complete, nil
}

// report logs an output's problem once per distinct message.
func (r *Runner) report(o Output, kind string, err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if r.lastErr[o.Name] == msg {
		return
	}
	r.lastErr[o.Name] = msg
	switch {
	case err == nil:
		// recovered; written/unchanged is logged elsewhere
	case kind == "pending":
		r.Log.Debug("output waiting for its secrets", "output", o.Name, "reason", msg)
	default:
		r.Log.Error("cannot render output; keeping the previous file", "output", o.Name, "path", o.File.Path, "err", err)
	}
}
