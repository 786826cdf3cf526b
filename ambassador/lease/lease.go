// Package lease decides when a secret must be renewed or fetched again: the
// pure scheduling core of the ambassador, over plain data and a clock value.
//
//   - a renewable lease is renewed at ~2/3 of its duration;
//   - a lease that cannot be renewed (not renewable, or its renewal was capped
//     by a max TTL) is replaced by fresh credentials at ~2/3 of what is left;
//   - a PKI certificate (no lease, an expiry) is re-issued at ~2/3 of its life;
//   - a static secret (no lease, no expiry) is re-read every refresh interval.
package lease

import (
	"math/rand/v2"
	"time"
)

// Kind is how a secret's freshness is kept.
type Kind int

// Kinds of secrets.
const (
	Static    Kind = iota // KV and other secrets without a lease: re-read every refresh interval
	Renewable             // a renewable lease
	Expiring              // a lease that cannot be renewed (further), or a certificate with an expiry
)

func (k Kind) String() string {
	switch k {
	case Renewable:
		return "renewable"
	case Expiring:
		return "expiring"
	}
	return "static"
}

// Action is what to do when the scheduled time comes.
type Action int

// Actions.
const (
	Refetch Action = iota // read the secret again (new credentials, new version)
	Renew                 // renew the lease in place
)

func (a Action) String() string {
	if a == Renew {
		return "renew"
	}
	return "refetch"
}

// State is what is known about one fetched secret.
type State struct {
	Kind     Kind
	Obtained time.Time     // when the secret (or its last renewal) was received
	Duration time.Duration // lease duration, or time to expiry at Obtained; 0 for static
}

// Policy are the scheduling knobs.
type Policy struct {
	Refresh  time.Duration // static re-read interval
	Fraction float64       // part of a lease after which to act; default 2/3
	Jitter   float64       // ± fraction of the wait randomised; default 0.05
	Min      time.Duration // never wait less than this; default 500ms
}

func (p Policy) norm() Policy {
	if p.Fraction <= 0 || p.Fraction >= 1 {
		p.Fraction = 2.0 / 3.0
	}
	if p.Jitter < 0 || p.Jitter >= 0.5 {
		p.Jitter = 0.05
	}
	if p.Min <= 0 {
		p.Min = 500 * time.Millisecond
	}
	return p
}

// Next returns the action to take for s and when. rnd draws the jitter (nil:
// the global source); a zero Jitter in p gives the default, a negative one none.
func Next(s State, p Policy, rnd *rand.Rand) (Action, time.Time) {
	noJitter := p.Jitter < 0
	p = p.norm()
	if noJitter {
		p.Jitter = 0
	}
	var wait time.Duration
	act := Refetch
	switch {
	case s.Kind == Static || s.Duration <= 0:
		wait = p.Refresh
		if wait <= 0 {
			wait = 5 * time.Minute
		}
		return Refetch, s.Obtained.Add(wait) // static polling keeps its exact interval
	case s.Kind == Renewable:
		act = Renew
		wait = time.Duration(float64(s.Duration) * p.Fraction)
	default:
		wait = time.Duration(float64(s.Duration) * p.Fraction)
	}
	if p.Jitter > 0 {
		var f float64
		if rnd != nil {
			f = rnd.Float64()
		} else {
			f = rand.Float64()
		}
		wait += time.Duration(float64(wait) * p.Jitter * (2*f - 1))
	}
	// Never past the end of the lease, never a busy loop.
	if limit := s.Duration - p.Min; wait > limit {
		wait = limit
	}
	if wait < p.Min {
		wait = p.Min
	}
	return act, s.Obtained.Add(wait)
}

// AfterRenew returns the state after a renewal at now that granted granted
// (Vault's new lease duration) when requested was asked for. A renewal that
// grants less than asked hit the max TTL: the lease cannot be stretched any
// further, so it becomes Expiring and will be replaced before it ends.
func AfterRenew(s State, now time.Time, requested, granted time.Duration) State {
	k := Renewable
	if granted <= 0 || (requested > 0 && granted < requested) {
		k = Expiring
	}
	return State{Kind: k, Obtained: now, Duration: granted}
}
