// Package health holds a helper's probe state — named readiness checks,
// startup latch and draining — and the `wait` client that blocks until a
// readiness endpoint answers 200.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"time"
)

// ErrDraining is the readiness failure while the helper drains.
var ErrDraining = errors.New("draining")

// State is the probe state of one helper. The zero value is not usable; call New.
type State struct {
	mu       sync.Mutex
	checks   []check
	draining bool
	started  bool
	onStart  []func()
}

type check struct {
	name string
	fn   func() error
}

// Result is one readiness check's outcome.
type Result struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	Err  string `json:"error,omitempty"`
}

// ErrStarting is the readiness failure before any check is registered: the
// admin server answers before the helper has said what "ready" means, and
// that moment must not read as ready.
var ErrStarting = errors.New("starting: no readiness check registered yet")

// New returns an empty state: not ready until a check is registered, not
// started, not draining.
func New() *State { return &State{} }

// AddCheck registers a named readiness check; fn must be cheap and safe for
// concurrent use. A nil error means this part of the helper can do its job.
func (s *State) AddCheck(name string, fn func() error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, check{name, fn})
}

// Flag is a readiness check the helper sets: pending until the first Set.
type Flag struct {
	mu  sync.Mutex
	err error
}

// NewFlag registers a check that fails with "pending" until Set(nil).
func (s *State) NewFlag(name string) *Flag {
	f := &Flag{err: errors.New("pending")}
	s.AddCheck(name, f.Err)
	return f
}

// Set records the check's outcome: nil is ready.
func (f *Flag) Set(err error) { f.mu.Lock(); f.err = err; f.mu.Unlock() }

// Err returns the current outcome.
func (f *Flag) Err() error { f.mu.Lock(); defer f.mu.Unlock(); return f.err }

// Check runs every check. Ready is false while draining whatever the checks say.
func (s *State) Check() (ready bool, results []Result) {
	s.mu.Lock()
	checks := append([]check(nil), s.checks...)
	draining := s.draining
	s.mu.Unlock()
	ready = !draining && len(checks) > 0
	if draining {
		results = append(results, Result{Name: "draining", Err: ErrDraining.Error()})
	}
	if len(checks) == 0 {
		results = append(results, Result{Name: "starting", Err: ErrStarting.Error()})
	}
	for _, c := range checks {
		err := c.fn()
		r := Result{Name: c.name, OK: err == nil}
		if err != nil {
			r.Err = err.Error()
			ready = false
		}
		results = append(results, r)
	}
	sort.SliceStable(results, func(i, j int) bool { return results[i].Name < results[j].Name })
	if ready {
		s.markStarted()
	}
	return ready, results
}

// Ready reports whether every check passes and the helper is not draining.
func (s *State) Ready() bool { r, _ := s.Check(); return r }

func (s *State) markStarted() {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return
	}
	s.started = true
	fns := s.onStart
	s.onStart = nil
	s.mu.Unlock()
	for _, f := range fns {
		f()
	}
}

// OnStarted runs f once, the first time the helper is ready (at once if it
// already was).
func (s *State) OnStarted(f func()) {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		f()
		return
	}
	s.onStart = append(s.onStart, f)
	s.mu.Unlock()
}

// Started reports whether the helper has been ready at least once; it never
// turns false again (startupProbe semantics).
func (s *State) Started() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.started }

// SetDraining turns the helper not-ready for good; it reports whether this
// call was the one that started draining.
func (s *State) SetDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.draining = true
	return true
}

// Draining reports whether draining has started.
func (s *State) Draining() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.draining }

// Wait polls url until it answers 200, ctx ends, or the request fails for a
// reason other than "not there yet". Connection refused and non-200 answers are
// retried every interval; the returned error says what was last seen.
func Wait(ctx context.Context, client *http.Client, url string, interval time.Duration) error {
	if client == nil {
		client = &http.Client{Timeout: 2 * time.Second}
	}
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	last := "no answer yet"
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("wait for %s: %w", url, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("HTTP %d %q", resp.StatusCode, string(body))
		} else if ctx.Err() == nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: not ready before the deadline; last seen: %s", url, last)
		case <-t.C:
		}
	}
}
