package upstream

import (
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// endpoint is one upstream address with its live state; it survives
// discovery updates that keep its address.
type endpoint struct {
	addr   string
	weight int
	labels map[string]string

	active       atomic.Int64 // requests in flight (least_request)
	ejectedUntil atomic.Int64 // unix nanos; 0 or past = in service

	mu       sync.Mutex // guards the outlier counters below
	consec5  int
	consecGw int
	ejection int       // ejections in a row (multiplier of the base ejection time)
	lastEnd  time.Time // end of the last ejection
}

func (e *endpoint) available(now int64) bool { return e.ejectedUntil.Load() <= now }

func (e *endpoint) matches(labels map[string]string) bool {
	for k, v := range labels {
		if got, ok := e.labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// pool is an immutable set of endpoints with precomputed load-balancing
// tables; only the round-robin cursor moves.
type pool struct {
	eps   []*endpoint
	wheel []int32 // smooth weighted round-robin order
	cum   []int   // cumulative weights for weighted random
	total int
	rr    atomic.Uint64
}

// maxWheel bounds the round-robin table; larger weight sums are scaled down.
const maxWheel = 4096

func newPool(eps []*endpoint) *pool {
	p := &pool{eps: eps}
	if len(eps) == 0 {
		return p
	}
	ws := make([]int, len(eps))
	for i, e := range eps {
		ws[i] = e.weight
		p.total += e.weight
		p.cum = append(p.cum, p.total)
	}
	p.wheel = smoothWRR(ws, maxWheel)
	return p
}

// smoothWRR returns nginx's smooth weighted round-robin sequence over
// weights (each ≥ 1), reduced by their gcd and scaled to at most limit.
func smoothWRR(weights []int, limit int) []int32 {
	w := append([]int(nil), weights...)
	g := 0
	sum := 0
	for _, x := range w {
		g = gcd(g, x)
	}
	for i := range w {
		w[i] /= g
		sum += w[i]
	}
	if sum > limit {
		scale := float64(limit) / float64(sum)
		sum = 0
		for i := range w {
			w[i] = max(1, int(float64(w[i])*scale))
			sum += w[i]
		}
	}
	cur := make([]int, len(w))
	out := make([]int32, 0, sum)
	for range sum {
		best := 0
		for i := range w {
			cur[i] += w[i]
			if cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= sum
		out = append(out, int32(best))
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// pick chooses an endpoint by policy, skipping ejected ones and, when
// another is available, avoid (the host a retry just failed on). With
// every endpoint ejected it picks among all (Envoy's panic routing).
func (p *pool) pick(policy string, avoid *endpoint, now int64) *endpoint {
	n := len(p.eps)
	if n == 0 {
		return nil
	}
	if n == 1 {
		return p.eps[0]
	}
	ok := func(e *endpoint) bool { return e != avoid && e.available(now) }
	switch policy {
	case Random:
		if e := p.eps[p.weighted()]; ok(e) {
			return e
		}
	case LeastRequest:
		// Two distinct choices (re-drawn a few times when weights make
		// the same one likely), the one with fewer requests in flight wins.
		i := p.weighted()
		j := p.weighted()
		for k := 0; j == i && k < 4; k++ {
			j = p.weighted()
		}
		if j == i {
			j = (i + 1 + rand.IntN(n-1)) % n
		}
		a, b := p.eps[i], p.eps[j]
		if ok(a) && ok(b) {
			if b.active.Load() < a.active.Load() {
				return b
			}
			return a
		}
		if ok(a) {
			return a
		}
		if ok(b) {
			return b
		}
	default:
		start := p.rr.Add(1)
		m := uint64(len(p.wheel))
		if e := p.eps[p.wheel[start%m]]; ok(e) {
			return e
		}
		// The turn of an unusable endpoint: spread it over the usable
		// ones (Envoy balances over the healthy set), not to the next one.
		if e := p.nth(ok, start); e != nil {
			return e
		}
	}
	// Fallbacks: any usable endpoint, chosen evenly, then the avoided one,
	// then anything (panic routing).
	off := rand.IntN(n)
	if e := p.nth(ok, uint64(rand.Uint32())); e != nil {
		return e
	}
	if avoid != nil && avoid.available(now) {
		return avoid
	}
	return p.eps[off]
}

// nth returns the (k mod usable)-th endpoint for which ok holds, nil if none.
func (p *pool) nth(ok func(*endpoint) bool, k uint64) *endpoint {
	usable := 0
	for _, e := range p.eps {
		if ok(e) {
			usable++
		}
	}
	if usable == 0 {
		return nil
	}
	k %= uint64(usable)
	for _, e := range p.eps {
		if ok(e) {
			if k == 0 {
				return e
			}
			k--
		}
	}
	return nil
}

func (p *pool) weighted() int {
	r := rand.IntN(p.total)
	return sort.SearchInts(p.cum, r+1)
}

// hostSet is one immutable snapshot of a cluster's endpoints.
type hostSet struct {
	all     *pool
	subsets map[string]*pool
	byAddr  map[string]*endpoint
}

// buildHostSet makes a snapshot from endpoint configs, reusing the live
// endpoints of prev that keep their address (and so their outlier state).
func buildHostSet(cfgs []EndpointConfig, subsets []SubsetConfig, prev *hostSet) *hostSet {
	hs := &hostSet{subsets: map[string]*pool{}, byAddr: map[string]*endpoint{}}
	var all []*endpoint
	for _, c := range cfgs {
		if _, dup := hs.byAddr[c.Address]; dup {
			continue
		}
		w := c.Weight
		if w <= 0 {
			w = 1
		}
		var e *endpoint
		if prev != nil {
			if old := prev.byAddr[c.Address]; old != nil && old.weight == w && sameLabels(old.labels, c.Labels) {
				e = old
			}
		}
		if e == nil {
			e = &endpoint{addr: c.Address, weight: w, labels: c.Labels}
			if prev != nil {
				if old := prev.byAddr[c.Address]; old != nil {
					e.ejectedUntil.Store(old.ejectedUntil.Load())
				}
			}
		}
		hs.byAddr[c.Address] = e
		all = append(all, e)
	}
	hs.all = newPool(all)
	for _, s := range subsets {
		var in []*endpoint
		for _, e := range all {
			if e.matches(s.Labels) {
				in = append(in, e)
			}
		}
		hs.subsets[s.Name] = newPool(in)
	}
	return hs
}

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
