package secrets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sidecarkit/sidecarkit/ambassador/dest"
	"github.com/sidecarkit/sidecarkit/ambassador/render"
	"github.com/sidecarkit/sidecarkit/shared/backoff"
)

// Output is one rendered file.
type Output struct {
	Name string
	Spec render.Spec
	File dest.File
}

// Notifier is told when a rendered file changed (shared/notify.Notifier).
type Notifier interface{ Trigger() }

// DefaultRetry is how a failed write (disk full, read-only file system) is
// retried when Runner.Retry is zero.
var DefaultRetry = backoff.Policy{Initial: 500 * time.Millisecond, Max: 10 * time.Second, Jitter: 0.2}

// Runner renders every output whenever the store says something changed,
// and retries a write that failed until it succeeds.
type Runner struct {
	Outputs []Output
	Store   *Store
	Notify  Notifier
	Log     *slog.Logger
	// Rendered is called once, after the first time every output was written.
	Rendered func()
	// FailFast makes Run return once an output fails in a way that retrying
	// will not fix (a missing key, a missing secret, permission denied, a
	// failed write): init mode. Every output is tried first, and the error
	// names each failing one and those that were written.
	FailFast bool
	// Once makes Run return nil after the first complete render (init mode).
	Once bool
	// Retry paces the retries of a failed write; zero means DefaultRetry.
	Retry backoff.Policy

	renders   *prometheus.CounterVec
	lastWrite *prometheus.GaugeVec
	behindG   *prometheus.GaugeVec
	lastErr   map[string]string
	complete  bool

	mu    sync.Mutex
	state map[string]*outState
}

// outState is what the runner knows of one output's file.
type outState struct {
	written  bool      // holds this process's latest render (written or found unchanged)
	behind   error     // the last write failed: the file is older than its secret
	since    time.Time // when it fell behind
	failures int       // failed writes since then
}

// Register adds the runner's metrics to reg.
func (r *Runner) Register(reg prometheus.Registerer) {
	r.init()
	reg.MustRegister(r.renders, r.lastWrite, r.behindG)
}

func (r *Runner) init() {
	if r.renders == nil {
		r.renders = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sidecarkit_ambassador_renders_total", Help: "Output renders by output and result (written, unchanged, pending, error)."}, []string{"output", "result"})
		r.lastWrite = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sidecarkit_ambassador_output_last_write_timestamp_seconds", Help: "When each output file was last written."}, []string{"output"})
		r.behindG = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sidecarkit_ambassador_output_behind", Help: "1 while an output's file could not be written and is older than its secret (retried with backoff)."}, []string{"output"})
		r.lastErr = map[string]string{}
	}
	r.mu.Lock()
	if r.state == nil {
		r.state = map[string]*outState{}
		for _, o := range r.Outputs {
			r.state[o.Name] = &outState{}
			r.behindG.WithLabelValues(o.Name).Set(0)
		}
	}
	r.mu.Unlock()
}

// Run renders until ctx ends (or, with Once, until everything was rendered).
// A failed write is retried with backoff even if no secret changes again.
func (r *Runner) Run(ctx context.Context) error {
	r.init()
	policy := r.Retry
	if policy.Initial <= 0 {
		policy = DefaultRetry
	}
	bo := backoff.Backoff{Policy: policy}
	for {
		done, err := r.RenderAll()
		if err != nil {
			return err
		}
		if done && r.Once {
			return nil
		}
		var retry <-chan time.Time
		var timer *time.Timer
		if r.anyBehind() {
			d := bo.Next()
			timer = time.NewTimer(d)
			retry = timer.C
		} else {
			bo.Reset()
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return nil
		case <-r.Store.Changed():
		case <-retry:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// Check is a readiness check: it fails while any file is behind its secret
// (its last write failed), naming each and why.
func (r *Runner) Check() error {
	r.init()
	r.mu.Lock()
	defer r.mu.Unlock()
	var bad []string
	for _, o := range r.Outputs {
		if st := r.state[o.Name]; st.behind != nil {
			bad = append(bad, fmt.Sprintf("%s (%s) behind its secret for %s: %v", o.Name, o.File.Path, time.Since(st.since).Round(time.Second), st.behind))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return errors.New(strings.Join(bad, "; "))
}

// Written lists the outputs' paths that hold this process's latest render,
// and those that do not.
func (r *Runner) Written() (written, not []string) {
	r.init()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.Outputs {
		if st := r.state[o.Name]; st.written && st.behind == nil {
			written = append(written, o.File.Path)
		} else {
			not = append(not, o.File.Path)
		}
	}
	return written, not
}

func (r *Runner) anyBehind() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, st := range r.state {
		if st.behind != nil {
			return true
		}
	}
	return false
}

// RenderAll renders every output once; complete is true when all are on disk.
func (r *Runner) RenderAll() (complete bool, err error) {
	r.init()
	complete = true
	changed := false  // a file's content changed
	replaced := false // a file that was there before this process wrote it changed (an app may be reading it)
	var failed []string
	pending := 0
	for _, o := range r.Outputs {
		data, rerr := render.Render(o.Spec, r.Store)
		if rerr != nil {
			complete = false
			if errors.Is(rerr, render.ErrPending) && !Permanent(rerr) {
				r.renders.WithLabelValues(o.Name, "pending").Inc()
				pending++
				r.report(o, "pending", rerr)
				continue
			}
			r.renders.WithLabelValues(o.Name, "error").Inc()
			if r.FailFast {
				failed = append(failed, fmt.Sprintf("%s (%s): %v", o.Name, o.File.Path, rerr))
				continue
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
				failed = append(failed, fmt.Sprintf("%s: %v", o.Name, werr))
				continue
			}
			r.writeFailed(o, werr)
			continue
		}
		r.report(o, "", nil)
		r.writeOK(o)
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
	if len(failed) > 0 && pending == 0 {
		// Init mode ends once every output was tried: wait for the ones
		// still fetching so that the error names every failure.
		written, _ := r.Written()
		msg := fmt.Sprintf("%d of %d outputs failed: %s", len(failed), len(r.Outputs), strings.Join(failed, "; "))
		if len(written) > 0 {
			sort.Strings(written)
			msg += fmt.Sprintf("; written anyway (complete files): %s", strings.Join(written, ", "))
		} else {
			msg += "; no file written"
		}
		return false, errors.New(msg)
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

// writeFailed records a failed write: the file is behind its secret until a
// retry succeeds. Every failure is logged (they are paced by the backoff).
func (r *Runner) writeFailed(o Output, err error) {
	r.mu.Lock()
	st := r.state[o.Name]
	first := st.behind == nil
	if first {
		st.since = time.Now()
	}
	st.behind, st.written = err, false
	st.failures++
	n, since := st.failures, st.since
	r.mu.Unlock()
	r.behindG.WithLabelValues(o.Name).Set(1)
	r.lastErr[o.Name] = "write: " + err.Error()
	if first {
		r.Log.Error("cannot write output; keeping the previous file and retrying", "output", o.Name, "path", o.File.Path, "err", err)
		return
	}
	r.Log.Warn("output still behind its secret; retrying", "output", o.Name, "path", o.File.Path, "err", err,
		"failures", n, "behind_for", time.Since(since).Round(time.Millisecond).String())
}

// writeOK records that the file holds the latest render; it logs once when
// an earlier write failure cleared.
func (r *Runner) writeOK(o Output) {
	r.mu.Lock()
	st := r.state[o.Name]
	was, n, since := st.behind, st.failures, st.since
	st.behind, st.failures, st.written = nil, 0, true
	r.mu.Unlock()
	if was != nil {
		r.behindG.WithLabelValues(o.Name).Set(0)
		r.Log.Info("output written again; no longer behind its secret", "output", o.Name, "path", o.File.Path,
			"failed_writes", n, "behind_for", time.Since(since).Round(time.Millisecond).String())
	}
}

// report logs an output's problem once per distinct message; a problem
// that clears is logged once too.
func (r *Runner) report(o Output, kind string, err error) {
	msg := ""
	if err != nil {
		msg = kind + ": " + err.Error()
	}
	prev := r.lastErr[o.Name]
	if prev == msg {
		return
	}
	r.lastErr[o.Name] = msg
	switch {
	case err == nil:
		if strings.HasPrefix(prev, "error: ") {
			r.Log.Info("output renders again", "output", o.Name, "path", o.File.Path)
		}
	case kind == "pending":
		r.Log.Debug("output waiting for its secrets", "output", o.Name, "reason", err.Error())
	default:
		r.Log.Error("cannot render output; keeping the previous file", "output", o.Name, "path", o.File.Path, "err", err)
	}
}
