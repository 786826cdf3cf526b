package upstream

import (
	"testing"
	"time"
)

// After an ejection the ejected endpoint's turns spread over the healthy
// ones (Envoy balances over the healthy set), for every LB policy.
func TestPickSpreadsOverHealthy(t *testing.T) {
	for _, policy := range []string{"", Random, LeastRequest} {
		hs := buildHostSet([]EndpointConfig{{Address: "a:1"}, {Address: "b:1"}, {Address: "c:1"}}, nil, nil)
		p := hs.all
		now := time.Now().UnixNano()
		p.eps[1].ejectedUntil.Store(now + int64(time.Hour))
		count := map[string]int{}
		const n = 3000
		for range n {
			count[p.pick(policy, nil, now).addr]++
		}
		if count["b:1"] != 0 {
			t.Errorf("%q: ejected endpoint picked %d times", policy, count["b:1"])
		}
		for _, a := range []string{"a:1", "c:1"} {
			// Even split is 1500 each; allow sampling noise for the random policies.
			if count[a] < n*4/10 || count[a] > n*6/10 {
				t.Errorf("%q: %s got %d of %d (want about half): %v", policy, a, count[a], n, count)
			}
		}
	}
}
