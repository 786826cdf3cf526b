package secrets

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/ambassador/lease"
	"github.com/sidecarkit/sidecarkit/ambassador/render"
	"github.com/sidecarkit/sidecarkit/shared/backoff"
)

// fakeVault is an in-memory Fetcher: each fetch issues credentials with a
// renewable lease of lease; renewals grant grants in turn (then refuse).
type fakeVault struct {
	mu      sync.Mutex
	lease   time.Duration
	grants  []time.Duration
	fetches int
	renews  int
	down    bool
}

func (f *fakeVault) Fetch(ctx context.Context, path string, params []string) (*render.Secret, lease.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, lease.State{}, errors.New("connection refused")
	}
	f.fetches++
	s := &render.Secret{LeaseID: "db/creds/" + fmt.Sprint(f.fetches), LeaseDuration: int(f.lease / time.Second), Renewable: true,
		Data: map[string]any{"username": fmt.Sprintf("user%d", f.fetches)}}
	return s, lease.State{Kind: lease.Renewable, Obtained: time.Now(), Duration: f.lease}, nil
}

func (f *fakeVault) Renew(ctx context.Context, id string, inc time.Duration) (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.renews++
	if len(f.grants) == 0 {
		return 0, errors.New("lease not found")
	}
	g := f.grants[0]
	f.grants = f.grants[1:]
	return g, nil
}

func (f *fakeVault) Revoke(ctx context.Context, id string) error       { return nil }
func (f *fakeVault) Canonical(ctx context.Context, path string) string { return path }

func TestStoreRenewsThenReplaces(t *testing.T) {
	fv := &fakeVault{lease: 1200 * time.Millisecond, grants: []time.Duration{1200 * time.Millisecond, 600 * time.Millisecond}}
	st := NewStore(fv, lease.Policy{Jitter: -1, Min: 50 * time.Millisecond}, backoff.Policy{Initial: 10 * time.Millisecond}, slog.New(slog.DiscardHandler), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); st.Wait() }()
	st.Start(ctx, nil)

	if _, err := st.Secret("db/creds/app", nil); !errors.Is(err, render.ErrPending) {
		t.Fatalf("first ask: %v", err)
	}
	user := func() string {
		s, err := st.Secret("db/creds/app", nil)
		if err != nil {
			return ""
		}
		return s.Data["username"].(string)
	}
	deadline := time.Now().Add(30 * time.Second)
	for user() != "user2" && time.Now().Before(deadline) {
		select {
		case <-st.Changed():
		case <-time.After(100 * time.Millisecond):
		}
	}
	fv.mu.Lock()
	defer fv.mu.Unlock()
	// Renewed in full once, then capped (600ms < 1200ms asked), then replaced
	// by a fresh fetch rather than renewed past the cap.
	if user() != "user2" || fv.renews != 2 || fv.fetches != 2 {
		t.Fatalf("user %q after %d renewals and %d fetches", user(), fv.renews, fv.fetches)
	}
}

func TestStoreKeepsLastValueWhileVaultIsDown(t *testing.T) {
	fv := &fakeVault{lease: time.Hour}
	st := NewStore(fv, lease.Policy{Refresh: 50 * time.Millisecond}, backoff.Policy{Initial: 10 * time.Millisecond}, slog.New(slog.DiscardHandler), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); st.Wait() }()
	st.Start(ctx, nil)
	st.Secret("kv/app", nil)
	<-st.Changed()
	fv.mu.Lock()
	fv.down = true
	fv.mu.Unlock()
	st.TokenChanged() // forces a refetch of the leased secret, which fails
	<-st.Changed()
	s, err := st.Secret("kv/app", nil)
	if err != nil || s.Data["username"] != "user1" {
		t.Fatalf("last value not served while down: %v %v", s, err)
	}
}
