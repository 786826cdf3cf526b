// Package syncer is configsync's loop: render every output from the brain
// once the watchers have a complete read, wait for quiescence after changes,
// publish atomically what changed, tell the app, and keep the metrics and the
// readiness flag. Nothing is published before the first complete read, and a
// failing render or an unreachable Consul leaves the last good files alone.
package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sidecarkit/sidecarkit/configsync/brain"
	"github.com/sidecarkit/sidecarkit/configsync/render"
	"github.com/sidecarkit/sidecarkit/configsync/watch"
	"github.com/sidecarkit/sidecarkit/shared/app"
	"github.com/sidecarkit/sidecarkit/shared/backoff"
)

// Watcher is the part of watch.Manager the syncer drives.
type Watcher interface {
	Ensure(deps []brain.Dep)
	Changed() <-chan struct{}
	Status(now time.Time) watch.Status
}

// Notifier is the part of notify.Notifier the syncer uses.
type Notifier interface {
	Trigger()
	NotifyNow(ctx context.Context) error
}

// Metrics are the syncer's Prometheus metrics.
type Metrics struct {
	Syncs       *prometheus.CounterVec // result=ok|error
	Errors      *prometheus.CounterVec // stage=consul|render|publish|notify
	Published   prometheus.Counter     // outputs written because they changed
	LastSuccess prometheus.Gauge       // unix time of the last complete, error-free sync
	Resets      prometheus.Counter     // index went backwards
	Skipped     *prometheus.GaugeVec   // output=...: keys left out by --skip-bad-keys
}

// NewMetrics registers the syncer's metrics on reg (nil: unregistered) under
// prefix (sidecarkit_configsync_), plus gauges read from w at scrape time.
func NewMetrics(reg prometheus.Registerer, prefix string) *Metrics {
	m := &Metrics{
		Syncs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: prefix + "syncs_total",
			Help: "Render passes over every output after a complete read, by result (ok: every output rendered and published)."}, []string{"result"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: prefix + "errors_total",
			Help: "Errors by stage: consul (a failed read), render (missing key, bad data), publish (disk)."}, []string{"stage"}),
		Published: prometheus.NewCounter(prometheus.CounterOpts{Name: prefix + "publishes_total",
			Help: "Outputs written to disk because their content changed."}),
		LastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: prefix + "last_success_timestamp_seconds",
			Help: "Unix time of the last sync in which every output rendered and was published."}),
		Resets: prometheus.NewCounter(prometheus.CounterOpts{Name: prefix + "index_resets_total",
			Help: "Times a Consul index went backwards (agent restart, snapshot restore) and every watch was read again."}),
		Skipped: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: prefix + "skipped_keys",
			Help: "Keys left out of a tree output because they cannot be a file (--skip-bad-keys); GET /status names them."}, []string{"output"}),
	}
	for _, r := range []string{"ok", "error"} {
		m.Syncs.WithLabelValues(r)
	}
	for _, s := range []string{"consul", "render", "publish"} {
		m.Errors.WithLabelValues(s)
	}
	if reg != nil {
		reg.MustRegister(m.Syncs, m.Errors, m.Published, m.LastSuccess, m.Resets, m.Skipped)
	}
	return m
}

// RegisterStatus adds gauges computed from w at scrape time: staleness in
// seconds and watched dependencies.
func RegisterStatus(reg prometheus.Registerer, prefix string, w Watcher) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: prefix + "staleness_seconds",
			Help: "How long the oldest failing Consul watch has gone without a good read (0 when every watch is healthy)."},
			func() float64 { return w.Status(time.Now()).Staleness.Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: prefix + "watched_dependencies",
			Help: "Consul keys, prefixes and services being watched."},
			func() float64 { return float64(w.Status(time.Now()).Watchers) }),
	)
}

// Syncer renders and publishes outputs.
type Syncer struct {
	Outputs      []Output
	View         brain.View
	Watch        Watcher
	Notify       Notifier
	Log          *slog.Logger
	Metrics      *Metrics
	Env          map[string]string
	AllowMissing bool
	// SkipBadKeys publishes a tree without the keys that cannot be files
	// (reported in Status and the skipped_keys metric) instead of holding
	// the whole tree back.
	SkipBadKeys bool
	WaitMin     time.Duration // quiescence: render this long after the last change...
	WaitMax     time.Duration // ...but no later than this long after the first
	Once        bool
	// Ready is called after the first sync in which every output rendered
	// and was published.
	Ready func()
	// Synced, when set, is called after every complete sync.
	Synced func()
	// Permanent reports errors that retrying cannot fix (ACL denied); in
	// once mode they end the run as configuration errors.
	Permanent func(error) bool

	mu       sync.Mutex // guards status
	status   []OutputStatus
	ready    bool // every output rendered and published once
	complete bool // a complete read was rendered once (errors or not)
	retryBo  backoff.Backoff
}

// OutputStatus is one output's state for GET /status.
type OutputStatus struct {
	Output        string    `json:"output"`
	LastPublished time.Time `json:"last_published,omitzero"`
	LastRendered  time.Time `json:"last_rendered,omitzero"`
	Error         string    `json:"error,omitempty"`
	Waiting       []string  `json:"waiting_for,omitempty"`
	SkippedKeys   []string  `json:"skipped_keys,omitempty"`
}

// Status returns every output's state (safe for concurrent use).
func (s *Syncer) Status() []OutputStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status == nil {
		out := make([]OutputStatus, len(s.Outputs))
		for i, o := range s.Outputs {
			out[i].Output = o.String()
		}
		return out
	}
	return append([]OutputStatus(nil), s.status...)
}

func (s *Syncer) record(i int, f func(*OutputStatus)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status == nil {
		s.status = make([]OutputStatus, len(s.Outputs))
		for j, o := range s.Outputs {
			s.status[j].Output = o.String()
		}
	}
	f(&s.status[i])
}

// Quiet returns when to render after a burst of changes that began at first
// and last changed at last: min after the last change, but no later than max
// after the first (consul-template's wait).
func Quiet(first, last time.Time, min, max time.Duration) time.Time {
	at := last.Add(min)
	if max > 0 {
		if limit := first.Add(max); at.After(limit) {
			at = limit
		}
	}
	return at
}

// Run syncs until stopping closes (or, with Once, until one complete sync).
func (s *Syncer) Run(ctx context.Context, stopping <-chan struct{}) error {
	if s.Metrics == nil {
		s.Metrics = NewMetrics(nil, "")
	}
	if s.Permanent == nil {
		s.Permanent = func(error) bool { return false }
	}
	s.retryBo.Policy = backoff.Policy{Initial: 500 * time.Millisecond, Max: 30 * time.Second, Jitter: 0.2}
	var quiet, retry *time.Timer
	var quietC, retryC <-chan time.Time
	var first time.Time
	onceCheck := time.NewTicker(250 * time.Millisecond)
	defer onceCheck.Stop()
	if !s.Once {
		onceCheck.Stop()
	}
	render := true
	for {
		if render {
			render = false
			done, err := s.cycle(ctx)
			if s.Once && (done || err != nil) {
				return err
			}
			if err != nil && retry == nil {
				// A publish failed: try again after a backoff even if
				// nothing changes in Consul.
				retry = time.NewTimer(s.retryBo.Next())
				retryC = retry.C
			} else if err == nil {
				s.retryBo.Reset()
			}
		}
		select {
		case <-ctx.Done():
			return s.stopped()
		case <-stopping:
			return s.stopped()
		case <-s.Watch.Changed():
			if !s.complete || s.WaitMin <= 0 {
				// Before the first complete read there is nothing to
				// debounce: the watchers are still filling the brain.
				render = true
				continue
			}
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			at := Quiet(first, now, s.WaitMin, s.WaitMax)
			if quiet == nil {
				quiet = time.NewTimer(time.Until(at))
			} else {
				quiet.Stop()
				quiet.Reset(time.Until(at))
			}
			quietC = quiet.C
		case <-quietC:
			quietC, first = nil, time.Time{}
			render = true
		case <-retryC:
			retry, retryC = nil, nil
			render = true
		case <-onceCheck.C:
			if st := s.Watch.Status(time.Now()); st.LastErr != nil && s.Permanent(st.LastErr) {
				return fmt.Errorf("%w: %v", app.ErrConfig, st.LastErr)
			}
		}
	}
}

// noteSkipped records the keys a tree left out; it logs when the set changes.
func (s *Syncer) noteSkipped(i int, o Output, skipped []string) {
	var prev []string
	s.record(i, func(st *OutputStatus) { prev, st.SkippedKeys = st.SkippedKeys, skipped })
	s.Metrics.Skipped.WithLabelValues(o.String()).Set(float64(len(skipped)))
	if strings.Join(prev, "\n") == strings.Join(skipped, "\n") {
		return
	}
	if len(skipped) > 0 {
		s.Log.Warn("bad keys left out of the tree (--skip-bad-keys)", "output", o.String(), "count", len(skipped), "keys", skipped)
	} else {
		s.Log.Info("no bad keys left out any more", "output", o.String())
	}
}

// ErrStoppedBeforeWritten ends a --once run that was stopped (SIGTERM,
// startup deadline) before every output was written: exit 0 would tell the
// pod the files are there.
var ErrStoppedBeforeWritten = errors.New("once: stopped before every output was written")

// stopped is what Run returns when told to stop: nil for the daemon, an
// error naming what is missing in once mode (it returns before when done).
func (s *Syncer) stopped() error {
	if !s.Once {
		return nil
	}
	var waiting []string
	for _, st := range s.Status() {
		if st.LastPublished.IsZero() {
			waiting = append(waiting, st.Output)
		}
	}
	return fmt.Errorf("%w (not written: %s)", ErrStoppedBeforeWritten, strings.Join(waiting, "; "))
}

// cycle renders every output. done is true when a complete read was
// rendered; err is a render error (once mode: configuration's fault) or a
// publish error.
func (s *Syncer) cycle(ctx context.Context) (done bool, err error) {
	results := make([]render.Result, len(s.Outputs))
	var deps []brain.Dep
	complete := true
	for i, o := range s.Outputs {
		results[i] = o.Render(s.View, s.Env, s.AllowMissing, s.SkipBadKeys)
		deps = append(deps, results[i].Deps...)
		r := results[i]
		if r.Complete() && o.Kind == Tree {
			s.noteSkipped(i, o, r.Skipped)
		}
		s.record(i, func(st *OutputStatus) {
			st.Waiting = nil
			for _, d := range r.Missing {
				st.Waiting = append(st.Waiting, d.String())
			}
			if r.Complete() {
				st.LastRendered = time.Now()
				st.Error = ""
				if r.Err != nil {
					st.Error = r.Err.Error()
				}
			}
		})
		if !results[i].Complete() {
			complete = false
		}
	}
	s.Watch.Ensure(deps)
	if !complete {
		return false, nil // wait for the watchers to read what the renders named
	}
	s.complete = true
	var renderErrs []error
	for i, o := range s.Outputs {
		if results[i].Err != nil {
			s.Metrics.Errors.WithLabelValues("render").Inc()
			s.Log.Error("render failed; keeping the last good output", "output", o.String(), "err", results[i].Err)
			renderErrs = append(renderErrs, fmt.Errorf("%s: %w", o, results[i].Err))
		}
	}
	if s.Once && len(renderErrs) > 0 {
		s.Metrics.Syncs.WithLabelValues("error").Inc()
		return true, fmt.Errorf("%w: %w", app.ErrConfig, errors.Join(renderErrs...))
	}
	changed, replaced := 0, 0
	var pubErrs []error
	for i, o := range s.Outputs {
		if results[i].Err != nil {
			continue
		}
		_, statErr := os.Lstat(o.Dest)
		existed := statErr == nil
		ch, err := o.publishResult(results[i])
		s.record(i, func(st *OutputStatus) {
			if err != nil {
				st.Error = err.Error()
			} else if ch {
				st.LastPublished = time.Now()
			}
		})
		if err != nil {
			s.Metrics.Errors.WithLabelValues("publish").Inc()
			s.Log.Error("publish failed; keeping the last good output", "output", o.String(), "err", err)
			pubErrs = append(pubErrs, err)
			continue
		}
		if ch {
			changed++
			if existed {
				replaced++
			}
			s.Metrics.Published.Inc()
			s.Log.Info("published", "output", o.String())
		}
	}
	ok := len(renderErrs) == 0 && len(pubErrs) == 0
	if ok {
		s.Metrics.Syncs.WithLabelValues("ok").Inc()
		s.Metrics.LastSuccess.SetToCurrentTime()
	} else {
		s.Metrics.Syncs.WithLabelValues("error").Inc()
	}
	// Before the first complete sync, files created from nothing cannot have
	// been read by the app yet (it waits for readiness or the init
	// container): only a replaced file is news to it.
	if changed > 0 && (s.ready || replaced > 0) {
		if s.Once {
			// The files are written: that is what --once promises. An app
			// that is not running yet (an init container) is no failure.
			if err := s.Notify.NotifyNow(ctx); err != nil {
				s.Log.Warn("once: files written but the app was not notified", "err", err)
			}
		} else {
			s.Notify.Trigger()
		}
	}
	if s.Synced != nil {
		s.Synced()
	}
	if ok && !s.ready {
		s.ready = true
		s.Log.Info("first complete sync", "outputs", len(s.Outputs))
		if s.Ready != nil {
			s.Ready()
		}
	}
	return true, errors.Join(pubErrs...)
}
