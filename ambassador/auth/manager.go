package auth

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sidecarkit/sidecarkit/ambassador/dest"
	"github.com/sidecarkit/sidecarkit/shared/backoff"
)

// Manager keeps a valid token on Client. The token is never logged.
type Manager struct {
	Client *vault.Client
	Method Method
	Log    *slog.Logger
	// Sink, when its Path is set, receives the token (mode 0400 by default)
	// after every login.
	Sink dest.File
	// Backoff paces login attempts while they fail.
	Backoff backoff.Policy
	// FailFast makes Run return the first permanent login error (init mode)
	// instead of retrying.
	FailFast bool
	// Increment is the TTL asked for at each renewal (0: the token's own).
	Increment time.Duration

	mu        sync.Mutex
	token     string
	expires   time.Time
	have      chan struct{} // closed at the first token
	changed   chan struct{} // a signal after every new token (not the first)
	recheck   chan struct{}
	logins    *prometheus.CounterVec
	renewals  *prometheus.CounterVec
	ttl       prometheus.Gauge
	initOnce  sync.Once
	gotFirst  bool
	lastLogin time.Time
}

func (m *Manager) init() {
	m.initOnce.Do(func() {
		m.have = make(chan struct{})
		m.changed = make(chan struct{}, 1)
		m.recheck = make(chan struct{}, 1)
		m.logins = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sidecarkit_ambassador_logins_total", Help: "Vault logins by result (ok, error)."}, []string{"result"})
		m.renewals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sidecarkit_ambassador_token_renewals_total", Help: "Token renewals by result (ok, error)."}, []string{"result"})
		m.ttl = prometheus.NewGauge(prometheus.GaugeOpts{Name: "sidecarkit_ambassador_token_expiry_timestamp_seconds", Help: "When the current token expires (0: never)."})
	})
}

// Register adds the manager's metrics to reg.
func (m *Manager) Register(reg prometheus.Registerer) {
	m.init()
	reg.MustRegister(m.logins, m.renewals, m.ttl)
}

// Token returns the current token ("" before the first login).
func (m *Manager) Token() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.token
}

// Have closes when the first token is there.
func (m *Manager) Have() <-chan struct{} { m.init(); return m.have }

// Changed receives after every re-login: leases that belonged to the old
// token may be gone and should be fetched again.
func (m *Manager) Changed() <-chan struct{} { m.init(); return m.changed }

// Denied tells the manager that Vault refused the token (403): it checks the
// token and logs in again if it is no longer valid (revoked).
func (m *Manager) Denied() {
	m.init()
	select {
	case m.recheck <- struct{}{}:
	default:
	}
}

// Run logs in and keeps the token alive until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	m.init()
	// A token from the operator (token method) cannot be replaced by a
	// login: when it runs out, the file is re-read, and while it still holds
	// the same token the checks back off instead of spinning.
	stale := backoff.Backoff{Policy: m.Backoff}
	prev := ""
	for {
		secret, err := m.login(ctx)
		if err != nil {
			return err
		}
		if tok := secret.Auth.ClientToken; tok == prev {
			d := stale.Next()
			m.Log.Warn("the token source still holds the token that ran out; checking again later", "method", m.Method.String(), "retry_in", d.Round(time.Millisecond).String())
			if err := sleep(ctx, d); err != nil {
				return err
			}
			continue
		}
		stale.Reset()
		prev = secret.Auth.ClientToken
		m.install(secret)
		if err := m.watch(ctx, secret); err != nil {
			return err
		}
	}
}

// login tries until it succeeds, ctx ends, or (FailFast) Vault refuses.
func (m *Manager) login(ctx context.Context) (*vault.Secret, error) {
	b := backoff.Backoff{Policy: m.Backoff}
	// Never log in in a tight loop, even when a token dies at once.
	if since := time.Since(m.lastLogin); !m.lastLogin.IsZero() && since < time.Second {
		if err := sleep(ctx, time.Second-since); err != nil {
			return nil, err
		}
	}
	for {
		lc, err := m.Client.Clone()
		if err != nil {
			return nil, err
		}
		lc.ClearToken()
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		s, err := m.Method.Login(lctx, lc)
		cancel()
		m.lastLogin = time.Now()
		if err == nil {
			m.logins.WithLabelValues("ok").Inc()
			return s, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		m.logins.WithLabelValues("error").Inc()
		if m.FailFast && Permanent(err) {
			return nil, fmt.Errorf("vault login (%s): %w", m.Method, err)
		}
		d := b.Next()
		m.Log.Warn("vault login failed; retrying", "method", m.Method.String(), "err", err, "retry_in", d.Round(time.Millisecond).String())
		if err := sleep(ctx, d); err != nil {
			return nil, err
		}
	}
}

func (m *Manager) install(s *vault.Secret) {
	tok := s.Auth.ClientToken
	m.Client.SetToken(tok)
	ttl := time.Duration(s.Auth.LeaseDuration) * time.Second
	m.mu.Lock()
	m.token = tok
	m.expires = time.Time{}
	if ttl > 0 {
		m.expires = time.Now().Add(ttl)
	}
	first := !m.gotFirst
	m.gotFirst = true
	exp := m.expires
	m.mu.Unlock()
	if exp.IsZero() {
		m.ttl.Set(0)
	} else {
		m.ttl.Set(float64(exp.Unix()))
	}
	m.Log.Info("vault token obtained", "method", m.Method.String(), "ttl", ttl.String(), "renewable", s.Auth.Renewable)
	if m.Sink.Path != "" {
		if _, err := m.Sink.Write([]byte(tok)); err != nil {
			m.Log.Error("token sink", "err", err)
		}
	}
	if first {
		close(m.have)
		return
	}
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// watch renews the token until it cannot be renewed any more, then returns
// nil so Run logs in again. It returns an error only when ctx ends.
func (m *Manager) watch(ctx context.Context, s *vault.Secret) error {
	if s.Auth.LeaseDuration == 0 { // a token that never expires (root, periodic-less service token without TTL)
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-m.recheck:
				if m.invalid(ctx) {
					return nil
				}
			}
		}
	}
	w, err := m.Client.NewLifetimeWatcher(&vault.LifetimeWatcherInput{Secret: s, Increment: int(m.Increment / time.Second)})
	if err != nil {
		return fmt.Errorf("token watcher: %w", err)
	}
	go w.Start()
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-w.DoneCh():
			if err != nil {
				m.renewals.WithLabelValues("error").Inc()
				m.Log.Warn("vault token renewal failed until the token expired; logging in again", "err", err)
			} else {
				m.Log.Info("vault token cannot be renewed further (max TTL or not renewable); logging in again")
			}
			return nil
		case r := <-w.RenewCh():
			m.renewals.WithLabelValues("ok").Inc()
			if r.Secret != nil && r.Secret.Auth != nil {
				ttl := time.Duration(r.Secret.Auth.LeaseDuration) * time.Second
				m.mu.Lock()
				m.expires = time.Now().Add(ttl)
				m.mu.Unlock()
				m.ttl.Set(float64(time.Now().Add(ttl).Unix()))
				m.Log.Debug("vault token renewed", "ttl", ttl.String())
			}
		case <-m.recheck:
			if m.invalid(ctx) {
				m.Log.Warn("vault token no longer valid (revoked?); logging in again")
				return nil
			}
		}
	}
}

// invalid looks the token up; true when Vault says it is no longer valid.
func (m *Manager) invalid(ctx context.Context) bool {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := m.Client.Auth().Token().LookupSelfWithContext(lctx)
	return err != nil && Denied(err)
}

// Revoke revokes the token if it came from a login (for --revoke-on-shutdown).
func (m *Manager) Revoke(ctx context.Context) error {
	if !m.Method.Revocable() || m.Token() == "" {
		return nil
	}
	if err := m.Client.Auth().Token().RevokeSelfWithContext(ctx, ""); err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	m.Log.Info("vault token revoked")
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
