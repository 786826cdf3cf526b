package upstream

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOutlierEjectsAndRestores(t *testing.T) {
	bad := newBackend(t, "bad", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	g1, g2 := newBackend(t, "g1", nil), newBackend(t, "g2", nil)
	c := newCluster(t, ClusterConfig{
		Endpoints:        []EndpointConfig{{Address: bad.addr()}, {Address: g1.addr()}, {Address: g2.addr()}},
		OutlierDetection: &OutlierConfig{Consecutive5xx: 3, Interval: 20 * time.Millisecond, BaseEjectionTime: 300 * time.Millisecond, MaxEjectionPercent: 50},
	})
	noRetry := withPolicy(&RoutePolicy{Retries: fastRetry(0)})
	for bad.hits.Load() < 3 {
		get(t, c, noRetry, "GET", "/", nil)
	}
	if testCounter(c.m.ejections) != 1 {
		t.Fatalf("ejections = %v after 3 consecutive 5xx", testCounter(c.m.ejections))
	}
	waitFor(t, "ejections_active gauge", func() bool { return testGauge(c.m.ejected) == 1 })
	// While ejected it gets no traffic (checked within the ejection time:
	// the sweep below proves the time had not passed when hits stayed at 3).
	hits := bad.hits.Load()
	for range 20 {
		get(t, c, noRetry, "GET", "/", nil)
	}
	ejectedNow := false
	for _, e := range c.Endpoints() {
		if e.Address == bad.addr() {
			ejectedNow = e.Ejected
		}
	}
	if ejectedNow && bad.hits.Load() != hits {
		t.Fatalf("ejected endpoint got %d requests", bad.hits.Load()-hits)
	}
	// It returns after its ejection time.
	waitFor(t, "the endpoint to return", func() bool { return testGauge(c.m.ejected) == 0 })
	before := bad.hits.Load()
	for range 6 {
		get(t, c, noRetry, "GET", "/", nil)
	}
	if bad.hits.Load() == before {
		t.Fatal("restored endpoint gets no traffic")
	}
}

func TestOutlierPolicyPure(t *testing.T) {
	p := newOutlierPolicy(&OutlierConfig{Consecutive5xx: 2, ConsecutiveGatewayErrors: 1, Interval: time.Second, BaseEjectionTime: 10 * time.Second, MaxEjectionPercent: 10})
	now := time.Unix(1000, 0)
	e := &endpoint{addr: "a"}
	if ok, _ := p.record(e, status5xx, now, 0, 4); ok {
		t.Fatal("ejected after one 500")
	}
	if ok, _ := p.record(e, okResponse, now, 0, 4); ok {
		t.Fatal("success ejected")
	}
	if ok, _ := p.record(e, status5xx, now, 0, 4); ok {
		t.Fatal("success must reset the count")
	}
	// A gateway error trips consecutive_gateway_errors: 1.
	ok, until := p.record(e, gatewayStatus, now, 0, 4)
	if !ok || until != now.Add(10*time.Second) {
		t.Fatalf("first ejection: %v until %v", ok, until)
	}
	// Second ejection right after the first ends: twice the base.
	now = until
	ok, until = p.record(e, connectFailed, now, 0, 4)
	if !ok || until != now.Add(20*time.Second) {
		t.Fatalf("second ejection: %v for %v", ok, until.Sub(now))
	}
	// After 5 intervals in service the multiplier decays back.
	now = until.Add(5 * time.Second)
	ok, until = p.record(e, connectFailed, now, 0, 4)
	if !ok || until != now.Add(10*time.Second) {
		t.Fatalf("decayed ejection: %v for %v", ok, until.Sub(now))
	}
	// max_ejection_percent 10 of 4: one may always be ejected, not two.
	e2 := &endpoint{addr: "b"}
	if ok, _ := p.record(e2, gatewayStatus, now, 1, 4); ok {
		t.Fatal("second endpoint ejected beyond max_ejection_percent")
	}
}

func TestCanarySplit(t *testing.T) {
	v1, v2 := newBackend(t, "v1", nil), newBackend(t, "v2", nil)
	c := newCluster(t, ClusterConfig{
		Endpoints: []EndpointConfig{{Address: v1.addr(), Labels: map[string]string{"version": "v1"}}, {Address: v2.addr(), Labels: map[string]string{"version": "v2"}}},
		Subsets:   []SubsetConfig{{Name: "v1", Labels: map[string]string{"version": "v1"}}, {Name: "v2", Labels: map[string]string{"version": "v2"}}},
	})
	pol := &RoutePolicy{
		HeaderSubsets:   []HeaderSubset{{Header: "x-canary", Value: "true", Subset: "v2"}},
		WeightedSubsets: []WeightedSubset{{Subset: "v1", Weight: 90}, {Subset: "v2", Weight: 10}},
	}
	if err := pol.Validate(&c.cfg); err != nil {
		t.Fatal(err)
	}
	const n = 10000
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				resp, _, _, err := get(t, c, withPolicy(pol), "GET", "/", nil)
				if err != nil || resp.StatusCode != 200 {
					t.Errorf("canary request: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	share := float64(v2.hits.Load()) / n
	t.Logf("v1 %d, v2 %d (%.2f%%)", v1.hits.Load(), v2.hits.Load(), share*100)
	if math.Abs(share-0.10) > 0.02 {
		t.Fatalf("canary share %.3f, want 0.10 ± 0.02", share)
	}
	// Header-based: x-canary: true always goes to v2.
	before := v2.hits.Load()
	for range 50 {
		var att Attempt
		req, _ := http.NewRequestWithContext(WithAttempt(withPolicy(pol), &att), "GET", "http://svc/", nil)
		req.Header.Set("x-canary", "true")
		resp, err := c.RoundTrip(req)
		if err != nil || resp.Header.Get("X-Backend") != "v2" || att.Subset != "v2" {
			t.Fatalf("x-canary request went to %v (%v)", resp.Header.Get("X-Backend"), err)
		}
		resp.Body.Close()
	}
	if v2.hits.Load()-before != 50 {
		t.Fatal("header routing miscounted")
	}
	// An empty subset is UH.
	_, _, att, err := get(t, c, withPolicy(&RoutePolicy{Subset: "v3"}), "GET", "/", nil)
	if StatusOf(err) != 503 || !hasFlag(att, FlagNoHealthy) {
		t.Fatalf("unknown subset: %v %+v", err, att)
	}
}

func TestLoadBalancers(t *testing.T) {
	a, b := newBackend(t, "a", nil), newBackend(t, "b", nil)
	// Weighted round robin is exact: 3:1.
	c := newCluster(t, ClusterConfig{Endpoints: []EndpointConfig{{Address: a.addr(), Weight: 3}, {Address: b.addr(), Weight: 1}}})
	for range 400 {
		get(t, c, context.Background(), "GET", "/", nil)
	}
	if a.hits.Load() != 300 || b.hits.Load() != 100 {
		t.Fatalf("weighted round robin 3:1 gave %d:%d", a.hits.Load(), b.hits.Load())
	}
	// Random spreads roughly by weight.
	a.hits.Store(0)
	b.hits.Store(0)
	r := newCluster(t, ClusterConfig{Name: "random", LBPolicy: Random, Endpoints: []EndpointConfig{{Address: a.addr(), Weight: 3}, {Address: b.addr(), Weight: 1}}})
	for range 2000 {
		get(t, r, context.Background(), "GET", "/", nil)
	}
	if share := float64(a.hits.Load()) / 2000; share < 0.65 || share > 0.85 {
		t.Fatalf("random 3:1 gave share %.2f", share)
	}
	// Least request avoids the endpoint that is busy.
	g := newGate(t)
	idle := newBackend(t, "idle", nil)
	lr := newCluster(t, ClusterConfig{Name: "lr", LBPolicy: LeastRequest, Endpoints: []EndpointConfig{{Address: g.addr()}, {Address: idle.addr()}}})
	done := make(chan struct{})
	go func() {
		for range 3 {
			// Until it holds three requests, the gate gets some.
			for g.hits.Load() == 0 {
				get(t, lr, context.Background(), "GET", "/", nil)
			}
			break
		}
		close(done)
	}()
	<-g.in
	// Now the gate holds one request: P2C compares two distinct endpoints,
	// so with two it always picks the idle one.
	before := idle.hits.Load()
	gateHits := g.hits.Load()
	for range 200 {
		get(t, lr, context.Background(), "GET", "/", nil)
	}
	g.release <- struct{}{}
	<-done
	if g.hits.Load() != gateHits || idle.hits.Load()-before != 200 {
		t.Fatalf("least request sent to the busy endpoint: gate %d idle %d", g.hits.Load()-gateHits, idle.hits.Load()-before)
	}
}

func TestSmoothWRR(t *testing.T) {
	got := smoothWRR([]int{5, 1, 1}, 100)
	want := []int32{0, 0, 1, 0, 2, 0, 0}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("smoothWRR(5,1,1) = %v, want %v", got, want)
	}
	if got := smoothWRR([]int{10000, 10000, 1}, 100); len(got) > 100 || len(got) < 3 {
		t.Fatalf("wheel not bounded: %d", len(got))
	}
}

// TestDNSLocalhost resolves through the system resolver.
func TestDNSLocalhost(t *testing.T) {
	b := newBackend(t, "local", nil)
	_, port, _ := net.SplitHostPort(b.addr())
	p, _ := strconv.Atoi(port)
	c := newCluster(t, ClusterConfig{Name: "localhost", DNS: &DNSConfig{Name: "localhost", Port: p}})
	<-c.Ready()
	if len(c.Endpoints()) == 0 {
		t.Fatal("localhost resolved to nothing")
	}
	// localhost may also resolve to ::1 where nothing listens: a retry on
	// connect-failure (the default policy) reaches 127.0.0.1.
	for range 4 {
		if _, body, _, err := get(t, c, context.Background(), "GET", "/", nil); err != nil || body != "hello from local" {
			t.Fatalf("via DNS localhost: %q %v", body, err)
		}
	}
}

func TestHTTP2PriorKnowledge(t *testing.T) {
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.Proto) }))
	s.Config.Protocols = new(http.Protocols)
	s.Config.Protocols.SetUnencryptedHTTP2(true)
	s.Config.Protocols.SetHTTP1(true)
	s.Start()
	defer s.Close()
	c := newCluster(t, ClusterConfig{Protocol: HTTP2, Endpoints: []EndpointConfig{{Address: strings.TrimPrefix(s.URL, "http://")}}})
	if _, body, _, err := get(t, c, context.Background(), "GET", "/", nil); err != nil || body != "HTTP/2.0" {
		t.Fatalf("h2c: %q %v", body, err)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, body, _, err := get(t, c, context.Background(), "GET", "/", nil); err != nil || body != "HTTP/2.0" {
				t.Errorf("h2c: %q %v", body, err)
			}
		}()
	}
	wg.Wait()
	if n := testCounter(c.m.cxTotal); n != 1 {
		t.Fatalf("h2c used %v connections for 21 requests, want 1 (multiplexed)", n)
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	cfg := ClusterConfig{Name: "", Endpoints: []EndpointConfig{{Address: "nohost"}, {Address: "h:99999", Weight: -1}}, DNS: &DNSConfig{Name: "x", Port: 0},
		LBPolicy: "fastest", Protocol: "spdy", Subsets: []SubsetConfig{{Name: "a"}, {Name: "a", Labels: map[string]string{"v": "1"}}},
		CircuitBreakers: BreakerConfig{MaxRetries: -1}, RetryBudget: &BudgetConfig{Percent: 120}, OutlierDetection: &OutlierConfig{MaxEjectionPercent: 200}}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"name", `endpoints[0].address "nohost"`, `endpoints[1].address "h:99999"`, `endpoints[1].weight "-1"`, "exactly one endpoint source", `dns.port "0"`,
		`lb_policy "fastest"`, `protocol "spdy"`, `subsets[0].labels`, `subsets[1].name "a"`, `max_retries "-1"`, `retry_budget.percent "120"`, `max_ejection_percent "200"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("validation error lacks %q:\n%v", want, err)
		}
	}
	rp := RoutePolicy{Timeout: -1, Retries: &RetryPolicy{Attempts: -1, RetryOn: []string{"5xx,bogus"}, RetriableStatusCodes: []int{42}}, WeightedSubsets: []WeightedSubset{{Subset: "nope", Weight: 0}}}
	err = rp.Validate(&ClusterConfig{Name: "c"})
	for _, want := range []string{`timeout`, `retries.attempts "-1"`, `retries.retry_on "bogus"`, `retriable_status_codes "42"`, `weighted_subsets[0].subset "nope"`, `weighted_subsets "0"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("route validation error lacks %q:\n%v", want, err)
		}
	}
}

func TestEndpointStateSurvivesDiscoveryUpdates(t *testing.T) {
	a := []EndpointConfig{{Address: "10.0.0.1:80"}, {Address: "10.0.0.2:80", Labels: map[string]string{"v": "2"}}}
	hs := buildHostSet(a, []SubsetConfig{{Name: "v2", Labels: map[string]string{"v": "2"}}}, nil)
	e1 := hs.byAddr["10.0.0.1:80"]
	e1.ejectedUntil.Store(time.Now().Add(time.Hour).UnixNano())
	e1.active.Store(7)
	// Same endpoint in the next answer: same object, still ejected, still busy.
	hs2 := buildHostSet(append(a, EndpointConfig{Address: "10.0.0.3:80"}), []SubsetConfig{{Name: "v2", Labels: map[string]string{"v": "2"}}}, hs)
	if hs2.byAddr["10.0.0.1:80"] != e1 || e1.available(time.Now().UnixNano()) {
		t.Fatal("endpoint state lost across a discovery update")
	}
	if len(hs2.subsets["v2"].eps) != 1 || len(hs2.all.eps) != 3 {
		t.Fatalf("subsets rebuilt wrong: v2=%d all=%d", len(hs2.subsets["v2"].eps), len(hs2.all.eps))
	}
	// A weight change makes a new endpoint but keeps the ejection.
	hs3 := buildHostSet([]EndpointConfig{{Address: "10.0.0.1:80", Weight: 5}}, nil, hs2)
	if e := hs3.byAddr["10.0.0.1:80"]; e == e1 || e.weight != 5 || e.available(time.Now().UnixNano()) {
		t.Fatal("re-weighted endpoint lost its ejection")
	}
	// Round robin never picks the ejected one while another is in service.
	for range 10 {
		if e := hs2.all.pick(RoundRobin, nil, time.Now().UnixNano()); e == e1 {
			t.Fatal("picked an ejected endpoint")
		}
	}
}
