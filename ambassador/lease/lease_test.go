package lease

import (
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestNext(t *testing.T) {
	p := Policy{Refresh: 30 * time.Second, Jitter: -1}
	cases := []struct {
		name string
		s    State
		act  Action
		at   time.Duration
	}{
		{"static", State{Kind: Static, Obtained: t0}, Refetch, 30 * time.Second},
		{"static with lease hint", State{Kind: Static, Obtained: t0, Duration: 768 * time.Hour}, Refetch, 30 * time.Second},
		{"renewable at 2/3", State{Kind: Renewable, Obtained: t0, Duration: 90 * time.Second}, Renew, 60 * time.Second},
		{"expiring refetch at 2/3", State{Kind: Expiring, Obtained: t0, Duration: 30 * time.Second}, Refetch, 20 * time.Second},
		{"tiny lease floors at min", State{Kind: Expiring, Obtained: t0, Duration: 600 * time.Millisecond}, Refetch, 500 * time.Millisecond},
		{"renewable zero duration is static", State{Kind: Renewable, Obtained: t0}, Refetch, 30 * time.Second},
	}
	for _, c := range cases {
		act, at := Next(c.s, p, nil)
		if act != c.act || at.Sub(t0) != c.at {
			t.Errorf("%s: got %v at +%v, want %v at +%v", c.name, act, at.Sub(t0), c.act, c.at)
		}
	}
}

func TestNextJitterStaysInsideLease(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 1000; i++ {
		d := time.Duration(1+rnd.IntN(3600)) * time.Second
		s := State{Kind: Renewable, Obtained: t0, Duration: d}
		_, at := Next(s, Policy{Jitter: 0.1}, rnd)
		w := at.Sub(t0)
		if w > d || w <= 0 {
			t.Fatalf("lease %v: wait %v outside the lease", d, w)
		}
		if d > 10*time.Second && (w < time.Duration(float64(d)*0.59) || w > time.Duration(float64(d)*0.74)) {
			t.Fatalf("lease %v: wait %v not near 2/3", d, w)
		}
	}
}

func TestAfterRenew(t *testing.T) {
	now := t0.Add(time.Minute)
	s := AfterRenew(State{Kind: Renewable}, now, time.Minute, time.Minute)
	if s.Kind != Renewable || s.Duration != time.Minute || !s.Obtained.Equal(now) {
		t.Fatalf("full renewal: %+v", s)
	}
	s = AfterRenew(State{Kind: Renewable}, now, time.Minute, 20*time.Second)
	if s.Kind != Expiring {
		t.Fatalf("capped renewal must expire: %+v", s)
	}
	act, at := Next(s, Policy{Jitter: -1}, nil)
	if act != Refetch || at.Sub(now) >= 20*time.Second {
		t.Fatalf("capped lease: %v at %v, want refetch before its end", act, at.Sub(now))
	}
}
