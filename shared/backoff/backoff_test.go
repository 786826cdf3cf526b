package backoff

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestDelayGrowsAndCaps(t *testing.T) {
	p := Policy{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: 0}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := p.Delay(i, nil); got != w*time.Millisecond {
			t.Errorf("attempt %d: got %v want %v", i, got, w*time.Millisecond)
		}
	}
	if got := p.Delay(5000, nil); got != time.Second {
		t.Errorf("huge attempt: got %v", got)
	}
}

func TestJitterStaysInRange(t *testing.T) {
	p := Policy{Initial: time.Second, Max: time.Minute, Jitter: 0.5}
	rnd := rand.New(rand.NewPCG(1, 2))
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := p.Delay(0, rnd)
		if d < 500*time.Millisecond || d > time.Second {
			t.Fatalf("delay %v outside [0.5s,1s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 100 {
		t.Fatalf("jitter produced only %d distinct delays", len(seen))
	}
}

func TestBackoffReset(t *testing.T) {
	b := Backoff{Policy: Policy{Initial: time.Millisecond, Max: time.Second, Jitter: 0}}
	b.Next()
	b.Next()
	if b.Attempt() != 2 {
		t.Fatalf("attempt %d", b.Attempt())
	}
	b.Reset()
	if d := b.Next(); d != time.Millisecond {
		t.Fatalf("after reset got %v", d)
	}
}
