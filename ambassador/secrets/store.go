// Package secrets fetches the secrets the outputs need from Vault and keeps
// them fresh (renewing leases, replacing credentials before they expire,
// re-reading static secrets), and renders the outputs whenever something
// changed. Scheduling decisions come from package lease; file contents from
// package render; files are written by package dest.
package secrets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sidecarkit/sidecarkit/ambassador/auth"
	"github.com/sidecarkit/sidecarkit/ambassador/lease"
	"github.com/sidecarkit/sidecarkit/ambassador/render"
	"github.com/sidecarkit/sidecarkit/shared/backoff"
)

// ErrNotFound is a path with no secret.
var ErrNotFound = errors.New("no secret at this path")

// Permanent reports whether a fetch error will not go away by retrying soon:
// Vault refused (4xx) or there is no secret at the path.
func Permanent(err error) bool { return auth.Permanent(err) || errors.Is(err, ErrNotFound) }

// Fetcher talks to Vault; Vault implements it.
type Fetcher interface {
	Fetch(ctx context.Context, path string, params []string) (*render.Secret, lease.State, error)
	Renew(ctx context.Context, leaseID string, increment time.Duration) (time.Duration, error)
	Revoke(ctx context.Context, leaseID string) error
	// Canonical names the secret at path the way Fetch reads it (a KV v2
	// "secret/app" is "secret/data/app"), so that two spellings share one
	// tracker and change together.
	Canonical(ctx context.Context, path string) string
}

// Store holds the fetched secrets; it is the render.Source of the outputs.
// Asking for a secret it does not have starts tracking it.
type Store struct {
	fetch   Fetcher
	policy  lease.Policy
	backoff backoff.Policy
	log     *slog.Logger
	denied  func() // tells the auth manager about a 403

	mu      sync.Mutex
	ctx     context.Context
	wg      sync.WaitGroup
	entries map[string]*entry
	epoch   chan struct{} // closed (and replaced) when the token changes
	changed chan struct{}

	fetches  *prometheus.CounterVec
	renewals *prometheus.CounterVec
}

type entry struct {
	path   string
	params []string
	secret *render.Secret
	state  lease.State
	err    error // last fetch error, while secret is nil or stale
}

// NewStore returns a store; Start must be called before secrets are asked for.
func NewStore(f Fetcher, p lease.Policy, b backoff.Policy, log *slog.Logger, reg prometheus.Registerer) *Store {
	s := &Store{
		fetch: f, policy: p, backoff: b, log: log,
		entries: map[string]*entry{}, epoch: make(chan struct{}), changed: make(chan struct{}, 1),
		fetches:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sidecarkit_ambassador_secret_fetches_total", Help: "Secret reads from Vault by result (ok, unchanged, error)."}, []string{"result"}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sidecarkit_ambassador_lease_renewals_total", Help: "Lease renewals by result (ok, capped, error)."}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(s.fetches, s.renewals)
	}
	return s
}

// Start lets the store track secrets until ctx ends. denied is called when
// Vault refuses the token.
func (s *Store) Start(ctx context.Context, denied func()) {
	s.mu.Lock()
	s.ctx, s.denied = ctx, denied
	s.mu.Unlock()
}

// Wait waits for every tracker to stop (after the Start context ended).
func (s *Store) Wait() { s.wg.Wait() }

// Changed receives when a secret's data changed (or its fetch failed).
func (s *Store) Changed() <-chan struct{} { return s.changed }

// TokenChanged makes every leased secret be fetched again: its lease belonged
// to the old token.
func (s *Store) TokenChanged() {
	s.mu.Lock()
	close(s.epoch)
	s.epoch = make(chan struct{})
	s.mu.Unlock()
}

func key(path string, params []string) string {
	if len(params) == 0 {
		return path
	}
	p := append([]string(nil), params...)
	sort.Strings(p)
	return path + " " + strings.Join(p, " ")
}

// Pending wraps the reason a secret is not there yet.
type Pending struct{ Cause error }

func (p *Pending) Error() string {
	if p.Cause == nil {
		return render.ErrPending.Error()
	}
	return render.ErrPending.Error() + ": " + p.Cause.Error()
}
func (p *Pending) Unwrap() []error { return []error{render.ErrPending, p.Cause} }

// Secret implements render.Source. The last good value is served while a
// refresh fails (Vault down): files keep their content.
func (s *Store) Secret(path string, params []string) (*render.Secret, error) {
	s.mu.Lock()
	ctx := s.ctx
	s.mu.Unlock()
	if ctx != nil && len(params) == 0 {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		path = s.fetch.Canonical(cctx, path)
		cancel()
	}
	k := key(path, params)
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[k]
	if !ok {
		if s.ctx == nil {
			return nil, errors.New("secret store not started")
		}
		e = &entry{path: path, params: append([]string(nil), params...)}
		s.entries[k] = e
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.track(s.ctx, k, e) }()
		return nil, &Pending{}
	}
	if e.secret != nil {
		return e.secret, nil
	}
	if e.err != nil && Permanent(e.err) {
		return nil, e.err
	}
	return nil, &Pending{Cause: e.err}
}

func (s *Store) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *Store) currentEpoch() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch
}

// track keeps one secret fresh until ctx ends.
func (s *Store) track(ctx context.Context, k string, e *entry) {
	b := backoff.Backoff{Policy: s.backoff}
	for ctx.Err() == nil {
		epoch := s.currentEpoch()
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		sec, st, err := s.fetch.Fetch(fctx, e.path, e.params)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.fetches.WithLabelValues("error").Inc()
			if auth.Denied(err) && s.denied != nil {
				s.denied()
			}
			s.mu.Lock()
			first := e.err == nil || e.err.Error() != err.Error()
			e.err = err
			s.mu.Unlock()
			if first {
				s.log.Warn("fetch secret failed; keeping the last value and retrying", "secret", e.path, "err", err)
			}
			s.signal()
			d := b.Next()
			if s.policy.Refresh > 0 && d > s.policy.Refresh {
				d = s.policy.Refresh // a secret created later is picked up within the refresh interval
			}
			if !wait(ctx, d, nil) {
				return
			}
			continue
		}
		b.Reset()
		s.mu.Lock()
		same := e.secret != nil && reflect.DeepEqual(e.secret.Data, sec.Data)
		hadErr := e.err != nil
		e.secret, e.state, e.err = sec, st, nil
		s.mu.Unlock()
		if same {
			s.fetches.WithLabelValues("unchanged").Inc()
		} else {
			s.fetches.WithLabelValues("ok").Inc()
			s.log.Info("secret fetched", "secret", e.path, "kind", st.Kind.String(), "lease", st.Duration.String())
		}
		if !same || hadErr {
			s.signal()
		}
		if !s.keepFresh(ctx, e, st, epoch) {
			return
		}
	}
}

// keepFresh renews e's lease until the secret must be fetched again; false
// when ctx ended.
func (s *Store) keepFresh(ctx context.Context, e *entry, st lease.State, epoch <-chan struct{}) bool {
	for {
		act, at := lease.Next(st, s.policy, nil)
		var ep <-chan struct{}
		if st.Kind != lease.Static {
			ep = epoch // a new token: leased secrets are fetched again
		}
		if !wait(ctx, time.Until(at), ep) {
			return ctx.Err() == nil
		}
		if act == lease.Refetch {
			return true
		}
		s.mu.Lock()
		id := e.secret.LeaseID
		s.mu.Unlock()
		requested := st.Duration
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		granted, err := s.fetch.Renew(rctx, id, requested)
		cancel()
		if ctx.Err() != nil {
			return false
		}
		now := time.Now()
		if err != nil {
			s.renewals.WithLabelValues("error").Inc()
			if auth.Permanent(err) {
				s.log.Warn("lease renewal refused; fetching new credentials", "secret", e.path, "err", err)
				return true
			}
			// Vault unreachable: try again until the lease is nearly over.
			left := st.Obtained.Add(st.Duration).Sub(now)
			s.log.Warn("lease renewal failed; will retry", "secret", e.path, "err", err, "lease_left", left.Round(time.Second).String())
			if left <= time.Second {
				return true
			}
			st = lease.State{Kind: lease.Renewable, Obtained: now, Duration: left}
			continue
		}
		st = lease.AfterRenew(st, now, requested, granted)
		if st.Kind == lease.Expiring {
			s.renewals.WithLabelValues("capped").Inc()
			s.log.Info("lease renewal capped by max TTL; new credentials before it ends", "secret", e.path, "lease", granted.String())
		} else {
			s.renewals.WithLabelValues("ok").Inc()
			s.log.Debug("lease renewed", "secret", e.path, "lease", granted.String())
		}
		s.mu.Lock()
		e.state = st
		if e.secret != nil { // copy: renders may be reading the old one
			c := *e.secret
			c.LeaseDuration = int(granted / time.Second)
			e.secret = &c
		}
		s.mu.Unlock()
	}
}

// wait sleeps d; false when ctx ended or interrupt closed first.
func wait(ctx context.Context, d time.Duration, interrupt <-chan struct{}) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-interrupt:
		return false
	case <-t.C:
		return true
	}
}

// Revoke revokes every lease the store holds (for --revoke-on-shutdown).
func (s *Store) Revoke(ctx context.Context) error {
	s.mu.Lock()
	var ids []string
	for _, e := range s.entries {
		if e.secret != nil && e.secret.LeaseID != "" {
			ids = append(ids, e.secret.LeaseID)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, id := range ids {
		if err := s.fetch.Revoke(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("revoke %d of %d leases failed: %w", len(errs), len(ids), errors.Join(errs...))
	}
	if len(ids) > 0 {
		s.log.Info("leases revoked", "count", len(ids))
	}
	return nil
}
