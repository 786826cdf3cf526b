package syncer

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/configsync/brain"
	"github.com/sidecarkit/sidecarkit/configsync/render"
	"github.com/sidecarkit/sidecarkit/configsync/watch"
	"github.com/sidecarkit/sidecarkit/shared/logging"
)

// fakeWatch is an in-memory stand-in for watch.Manager: the test writes the
// brain and pokes Changed itself.
type fakeWatch struct {
	mu      sync.Mutex
	ensured []brain.Dep
	changed chan struct{}
}

func (f *fakeWatch) Ensure(d []brain.Dep)          { f.mu.Lock(); f.ensured = d; f.mu.Unlock() }
func (f *fakeWatch) Changed() <-chan struct{}      { return f.changed }
func (f *fakeWatch) Status(time.Time) watch.Status { return watch.Status{} }
func (f *fakeWatch) deps() []brain.Dep             { f.mu.Lock(); defer f.mu.Unlock(); return f.ensured }

type fakeNotify struct {
	mu sync.Mutex
	n  int
}

func (f *fakeNotify) Trigger()                        { f.mu.Lock(); f.n++; f.mu.Unlock() }
func (f *fakeNotify) NotifyNow(context.Context) error { f.Trigger(); return nil }
func (f *fakeNotify) count() int                      { f.mu.Lock(); defer f.mu.Unlock(); return f.n }

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 3000; i++ {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestNothingPublishedBeforeACompleteRead(t *testing.T) {
	dir := t.TempDir()
	tmpl, err := render.Parse("t", `{{ key "a" }}-{{ key "b" }}`)
	if err != nil {
		t.Fatal(err)
	}
	b := brain.New()
	w := &fakeWatch{changed: make(chan struct{}, 1)}
	n := &fakeNotify{}
	ready := make(chan struct{})
	s := &Syncer{
		Outputs: []Output{{Kind: Template, Source: "t", Template: tmpl, Dest: filepath.Join(dir, "out")}},
		View:    b, Watch: w, Notify: n, Log: logging.Discard(),
		Ready: func() { close(ready) },
	}
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- s.Run(context.Background(), stop) }()
	poke := func() { w.changed <- struct{}{} }

	// One pass names both keys: an unknown key renders as "" for the rest
	// of the pass so that later calls are discovered too.
	waitUntil(t, "watches on a and b", func() bool { return len(w.deps()) == 2 })
	b.Set(brain.Dep{Kind: brain.Key, Name: "a"}, brain.Data{Exists: true, Value: []byte("A")})
	poke()
	poke()
	if _, err := os.Stat(filepath.Join(dir, "out")); !os.IsNotExist(err) {
		t.Fatal("published before every dependency was read")
	}
	b.Set(brain.Dep{Kind: brain.Key, Name: "b"}, brain.Data{Exists: true, Value: []byte("B")})
	poke()
	<-ready
	if got, _ := os.ReadFile(filepath.Join(dir, "out")); string(got) != "A-B" {
		t.Fatalf("out = %q", got)
	}
	if n.count() != 0 {
		t.Fatal("notified for a file created from nothing at start")
	}
	// A change to an existing file is news to the app; an unchanged
	// render is not rewritten and not news.
	b.Set(brain.Dep{Kind: brain.Key, Name: "b"}, brain.Data{Exists: true, Value: []byte("C")})
	poke()
	waitUntil(t, "notification", func() bool { return n.count() == 1 })
	poke()
	time.Sleep(50 * time.Millisecond)
	if n.count() != 1 {
		t.Fatalf("notified %d times for one change", n.count())
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
