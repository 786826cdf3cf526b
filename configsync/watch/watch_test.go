package watch

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/configsync/brain"
	"github.com/sidecarkit/sidecarkit/shared/backoff"
	"github.com/sidecarkit/sidecarkit/shared/logging"
)

// fakeConsul is an in-memory KV store with Consul's blocking semantics: a
// read with index blocks until the store's index passes it. It stands in for
// Consul only in these unit tests; the package's behaviour against the real
// agent is tested in the module's integration tests.
type fakeConsul struct {
	mu    sync.Mutex
	cond  *sync.Cond
	index uint64
	kv    map[string]string
	down  bool
	reads int
}

func newFake() *fakeConsul {
	f := &fakeConsul{kv: map[string]string{}, index: 10}
	f.cond = sync.NewCond(&f.mu)
	return f
}

func (f *fakeConsul) put(k, v string, index uint64) {
	f.mu.Lock()
	f.kv[k], f.index = v, index
	f.mu.Unlock()
	f.cond.Broadcast()
}

func (f *fakeConsul) setDown(d bool) {
	f.mu.Lock()
	f.down = d
	f.mu.Unlock()
	f.cond.Broadcast()
}

func (f *fakeConsul) Fetch(ctx context.Context, d brain.Dep, index uint64, wait time.Duration) (brain.Data, uint64, error) {
	stop := context.AfterFunc(ctx, func() { f.mu.Lock(); f.cond.Broadcast(); f.mu.Unlock() })
	defer stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	deadline := time.Now().Add(wait)
	for wait > 0 && f.index <= index && !f.down && ctx.Err() == nil && time.Now().Before(deadline) {
		f.cond.Wait()
	}
	if ctx.Err() != nil {
		return brain.Data{}, 0, ctx.Err()
	}
	if f.down {
		return brain.Data{}, 0, errors.New("connection refused")
	}
	v, ok := f.kv[d.Name]
	return brain.Data{Exists: ok, Value: []byte(v)}, f.index, nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

type count struct {
	mu sync.Mutex
	n  int
}

func (c *count) Inc()     { c.mu.Lock(); c.n++; c.mu.Unlock() }
func (c *count) get() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

func TestBlockingErrorsAndIndexBackwards(t *testing.T) {
	f := newFake()
	f.put("a", "1", 20)
	b := brain.New()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errs, resets count
	m := New(ctx, f, b, logging.Discard(), Options{Blocking: true, Interval: time.Minute,
		Backoff: backoff.Policy{Initial: time.Millisecond, Max: 5 * time.Millisecond}, Errors: &errs, Resets: &resets})
	dep := brain.Dep{Kind: brain.Key, Name: "a"}
	m.Ensure([]brain.Dep{dep})
	value := func() string { d, _ := b.Get(dep); return string(d.Value) }
	waitFor(t, "first read", func() bool { return value() == "1" })
	<-m.Changed()

	f.put("a", "2", 21)
	waitFor(t, "blocking read sees the change", func() bool { return value() == "2" })

	// Consul goes away: the data stays, errors count, staleness grows.
	f.setDown(true)
	waitFor(t, "errors", func() bool { return errs.get() > 2 && m.Status(time.Now()).Failing == 1 })
	if value() != "2" {
		t.Fatalf("data lost while Consul is down: %q", value())
	}
	if st := m.Status(time.Now().Add(time.Hour)); st.Staleness < time.Hour {
		t.Fatalf("staleness %v", st.Staleness)
	}
	// It comes back with an empty store and a smaller index (a dev agent
	// restarted): the index is reset, the new answer is taken at once.
	f.mu.Lock()
	f.kv, f.index = map[string]string{"a": "fresh"}, 5
	f.mu.Unlock()
	f.setDown(false)
	waitFor(t, "resync after the index went backwards", func() bool { return value() == "fresh" })
	if resets.get() != 1 {
		t.Fatalf("resets = %d", resets.get())
	}
	f.put("a", "after", 6)
	waitFor(t, "blocking resumes on the new index", func() bool { return value() == "after" })
	if st := m.Status(time.Now()); st.Failing != 0 || st.Staleness != 0 {
		t.Fatalf("status after recovery %+v", st)
	}

	// Dropping a dependency stops its watcher and forgets its data.
	m.Ensure(nil)
	if _, ok := b.Get(dep); ok {
		t.Fatal("forgotten dependency still in the brain")
	}
	cancel()
	m.Wait()
}

func TestPolling(t *testing.T) {
	f := newFake()
	f.put("a", "1", 20)
	b := brain.New()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := New(ctx, f, b, logging.Discard(), Options{Blocking: false, Interval: 20 * time.Millisecond})
	dep := brain.Dep{Kind: brain.Key, Name: "a"}
	m.Ensure([]brain.Dep{dep})
	f.put("a", "2", 21)
	waitFor(t, "poll sees the change", func() bool { d, _ := b.Get(dep); return string(d.Value) == "2" })
	cancel()
	m.Wait()
}
