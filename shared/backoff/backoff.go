// Package backoff computes exponential retry delays with jitter.
package backoff

import (
	"math"
	"math/rand/v2"
	"time"
)

// Policy describes an exponential backoff: Initial, doubling (or Multiplier)
// up to Max, with full jitter of Jitter (0..1) of each delay.
type Policy struct {
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64 // default 2
	Jitter     float64 // fraction of the delay randomised, 0..1; default 0.2
}

// Default is the policy used where nothing else is configured.
var Default = Policy{Initial: 200 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2, Jitter: 0.2}

// Delay returns the delay before retry number attempt (0-based), with jitter
// drawn from rnd (nil uses the global source).
func (p Policy) Delay(attempt int, rnd *rand.Rand) time.Duration {
	initial, maxd, mult, jitter := p.Initial, p.Max, p.Multiplier, p.Jitter
	if initial <= 0 {
		initial = Default.Initial
	}
	if maxd <= 0 {
		maxd = Default.Max
	}
	if mult < 1 {
		mult = Default.Multiplier
	}
	if jitter < 0 || jitter > 1 {
		jitter = Default.Jitter
	}
	d := float64(initial) * math.Pow(mult, float64(attempt))
	if d > float64(maxd) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(maxd)
	}
	var f float64
	if rnd != nil {
		f = rnd.Float64()
	} else {
		f = rand.Float64()
	}
	// Jitter spreads the delay over [d*(1-jitter), d].
	d -= d * jitter * f
	return time.Duration(d)
}

// Backoff is a stateful counter over a Policy; not safe for concurrent use.
type Backoff struct {
	Policy  Policy
	attempt int
}

// Next returns the next delay and advances the attempt counter.
func (b *Backoff) Next() time.Duration {
	d := b.Policy.Delay(b.attempt, nil)
	if b.attempt < 62 {
		b.attempt++
	}
	return d
}

// Attempt returns how many delays Next has handed out since the last Reset.
func (b *Backoff) Attempt() int { return b.attempt }

// Reset starts again from the initial delay.
func (b *Backoff) Reset() { b.attempt = 0 }
