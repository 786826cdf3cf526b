// Package watch keeps the brain in step with Consul: one goroutine per
// dependency runs blocking queries (index + wait), or plain polling, stores
// each new answer in the brain and tells the syncer. Errors back off with
// jitter while the last answer stays in the brain; an index that goes
// backwards (agent restart, snapshot restore) resyncs every watcher.
package watch

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/sidecarkit/sidecarkit/configsync/brain"
	"github.com/sidecarkit/sidecarkit/shared/backoff"
)

// Fetcher reads one dependency; index > 0 with wait > 0 asks to block until
// the answer's index passes index.
type Fetcher interface {
	Fetch(ctx context.Context, d brain.Dep, index uint64, wait time.Duration) (brain.Data, uint64, error)
}

// Counter is the part of a Prometheus counter the manager uses.
type Counter interface{ Inc() }

type nopCounter struct{}

func (nopCounter) Inc() {}

// Options tune the manager.
type Options struct {
	// Blocking uses blocking queries that wait up to Interval; otherwise
	// every dependency is re-read every Interval.
	Blocking bool
	Interval time.Duration
	Backoff  backoff.Policy
	Errors   Counter // failed reads
	Resets   Counter // index went backwards → full resync
	// SpuriousDelay is the least time between two blocking reads that return
	// the same index quickly (a proxy that breaks blocking): the fallback
	// becomes polling. Default 1s.
	SpuriousDelay time.Duration
	// RequestTimeout bounds a read beyond its blocking wait. Default 15s.
	RequestTimeout time.Duration
}

// Manager runs one watcher per dependency.
type Manager struct {
	fetch   Fetcher
	brain   *brain.Brain
	log     *slog.Logger
	opts    Options
	changed chan struct{}

	mu       sync.Mutex
	ctx      context.Context
	watchers map[brain.Dep]*watcher
	wg       sync.WaitGroup
}

type watcher struct {
	dep    brain.Dep
	cancel context.CancelFunc
	wake   chan struct{} // a resync request while sleeping

	mu          sync.Mutex
	fetchCancel context.CancelFunc
	resync      bool
	lastOK      time.Time
	failing     bool
	lastErr     error
	since       time.Time
}

// New returns a manager that stores answers in b and signals Changed.
func New(ctx context.Context, f Fetcher, b *brain.Brain, log *slog.Logger, o Options) *Manager {
	if o.Errors == nil {
		o.Errors = nopCounter{}
	}
	if o.Resets == nil {
		o.Resets = nopCounter{}
	}
	if o.Interval <= 0 {
		o.Interval = time.Minute
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 15 * time.Second
	}
	if o.SpuriousDelay <= 0 {
		o.SpuriousDelay = time.Second
	}
	return &Manager{fetch: f, brain: b, log: log, opts: o, changed: make(chan struct{}, 1), ctx: ctx, watchers: map[brain.Dep]*watcher{}}
}

// Changed receives a value after any answer in the brain changed.
func (m *Manager) Changed() <-chan struct{} { return m.changed }

func (m *Manager) signal() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// Ensure starts watchers for deps not watched yet and stops (and forgets)
// those not in deps.
func (m *Manager) Ensure(deps []brain.Dep) {
	m.mu.Lock()
	defer m.mu.Unlock()
	want := make(map[brain.Dep]bool, len(deps))
	for _, d := range deps {
		want[d] = true
		if _, ok := m.watchers[d]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(m.ctx)
		w := &watcher{dep: d, cancel: cancel, since: time.Now(), wake: make(chan struct{}, 1)}
		m.watchers[d] = w
		m.wg.Add(1)
		go func() { defer m.wg.Done(); m.run(ctx, w) }()
	}
	for d, w := range m.watchers {
		if !want[d] {
			w.cancel()
			delete(m.watchers, d)
			m.brain.Forget(d)
		}
	}
}

// Wait blocks until every watcher has stopped (after the manager's context
// ended).
func (m *Manager) Wait() { m.wg.Wait() }

// Resync makes every watcher drop its index and read again at once.
func (m *Manager) Resync() {
	m.mu.Lock()
	ws := make([]*watcher, 0, len(m.watchers))
	for _, w := range m.watchers {
		ws = append(ws, w)
	}
	m.mu.Unlock()
	for _, w := range ws {
		w.mu.Lock()
		w.resync = true
		if w.fetchCancel != nil {
			w.fetchCancel()
		}
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// Status is the manager's health for metrics and readiness detail.
type Status struct {
	Watchers  int
	Failing   int
	Staleness time.Duration // how long the oldest failing watcher has gone without a good read
	LastErr   error
}

// Status reports how fresh the brain is at now.
func (m *Manager) Status(now time.Time) Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := Status{Watchers: len(m.watchers)}
	for _, w := range m.watchers {
		w.mu.Lock()
		if w.failing {
			s.Failing++
			ref := w.lastOK
			if ref.IsZero() {
				ref = w.since
			}
			if d := now.Sub(ref); d > s.Staleness {
				s.Staleness = d
			}
			s.LastErr = w.lastErr
		}
		w.mu.Unlock()
	}
	return s
}

func (m *Manager) run(ctx context.Context, w *watcher) {
	var index uint64
	var bo = backoff.Backoff{Policy: m.opts.Backoff}
	afterErr := false
	for ctx.Err() == nil {
		wait := time.Duration(0)
		if m.opts.Blocking && index > 0 && !afterErr {
			wait = m.opts.Interval
		}
		w.mu.Lock()
		if w.resync {
			w.resync, index, wait = false, 0, 0
		}
		// Consul answers a blocking query within wait plus up to wait/16 of
		// jitter; past that (and a margin) the connection is dead.
		fctx, cancel := context.WithTimeout(ctx, wait+wait/16+m.opts.RequestTimeout)
		w.fetchCancel = cancel
		w.mu.Unlock()

		start := time.Now()
		data, newIndex, err := m.fetch.Fetch(fctx, w.dep, index, wait)
		cancel()
		if ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		resync := w.resync
		w.mu.Unlock()
		if err != nil {
			if resync {
				continue // cancelled for a resync: read again at once
			}
			m.opts.Errors.Inc()
			w.mu.Lock()
			w.failing, w.lastErr = true, err
			w.mu.Unlock()
			d := bo.Next()
			m.log.Warn("consul read failed; keeping the last good data", "dep", w.dep.String(), "err", err, "retry_in", d.Round(time.Millisecond).String())
			afterErr = true
			if !sleep(ctx, d) {
				return
			}
			continue
		}
		bo.Reset()
		w.mu.Lock()
		recovered := w.failing
		w.failing, w.lastErr, w.lastOK = false, nil, time.Now()
		w.mu.Unlock()
		if recovered {
			m.log.Info("consul read recovered", "dep", w.dep.String())
		}
		if newIndex < index {
			// Consul's index went backwards: the agent restarted or a snapshot
			// was restored. Every other watcher's index is meaningless too.
			m.log.Warn("consul index went backwards; full resync", "dep", w.dep.String(), "index", newIndex, "previous", index)
			m.opts.Resets.Inc()
			m.Resync()
			w.mu.Lock()
			w.resync = false
			w.mu.Unlock()
			select {
			case <-w.wake:
			default:
			}
		}
		if newIndex == 0 {
			newIndex = 1 // Consul's guidance: never block on index 0
		}
		if m.brain.Set(w.dep, data) {
			m.signal()
		}
		same := newIndex == index
		index = newIndex
		afterErr = false
		switch {
		case !m.opts.Blocking:
			if !m.sleepOrResync(ctx, w, m.opts.Interval) {
				return
			}
		case same && wait > 0 && time.Since(start) < wait/2:
			// A blocking read that came back early with nothing new: the
			// blocking is broken somewhere; fall back to polling.
			if !m.sleepOrResync(ctx, w, m.opts.SpuriousDelay) {
				return
			}
		}
	}
}

// sleepOrResync waits d, ending early on a resync request; false when ctx ended.
func (m *Manager) sleepOrResync(ctx context.Context, w *watcher, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	case <-w.wake:
		return true
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
