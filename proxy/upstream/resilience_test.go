package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// fastRetry retries quickly so tests stay short.
func fastRetry(attempts int, on ...string) *RetryPolicy {
	return &RetryPolicy{Attempts: attempts, RetryOn: on, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond}
}

func withPolicy(p *RoutePolicy) context.Context { return WithRoute(context.Background(), p) }

func TestRetriesAgainstFortio(t *testing.T) {
	f := testenv.StartFortioServer(t)
	c := newCluster(t, ClusterConfig{Endpoints: []EndpointConfig{{Address: f.Addr}}, CircuitBreakers: BreakerConfig{MaxRetries: 100}})

	// Half the answers are 503: with 20 retries every GET succeeds.
	pol := &RoutePolicy{Retries: fastRetry(20, "5xx")}
	for i := range 100 {
		resp, _, att, err := get(t, c, withPolicy(pol), "GET", "/echo?status=503:50", nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %d: %v %v (attempt %+v)", i, err, resp, att)
		}
	}
	if r := testCounter(c.m.retries); r < 10 {
		t.Fatalf("expected retries against a 50%% failing upstream, got %v", r)
	}

	// A POST is never retried on a 503 ...
	before := testCounter(c.m.retries)
	resp, _, att, err := get(t, c, withPolicy(pol), "POST", "/echo?status=503", strings.NewReader("payload"))
	if err != nil || resp.StatusCode != 503 || att.Tries != 1 {
		t.Fatalf("POST: %v %v tries=%d", err, resp, att.Tries)
	}
	if testCounter(c.m.retries) != before {
		t.Fatal("a POST was retried")
	}
	// ... unless the route allows it.
	allow := &RoutePolicy{Retries: &RetryPolicy{Attempts: 2, RetryOn: []string{"5xx"}, RetryNonIdempotent: true, BackoffBase: time.Millisecond}}
	resp, _, att, err = get(t, c, withPolicy(allow), "POST", "/echo?status=503", strings.NewReader("payload"))
	if err != nil || resp.StatusCode != 503 || att.Tries != 3 || !hasFlag(att, FlagRetryLimit) {
		t.Fatalf("POST with retry_non_idempotent: %v %v attempt=%+v", err, resp, att)
	}

	// Retriable status codes only retry the listed ones.
	codes := &RoutePolicy{Retries: &RetryPolicy{Attempts: 3, RetryOn: []string{"retriable-status-codes"}, RetriableStatusCodes: []int{429}, BackoffBase: time.Millisecond}}
	_, _, att, _ = get(t, c, withPolicy(codes), "GET", "/echo?status=503", nil)
	if att.Tries != 1 {
		t.Fatalf("503 is not in retriable_status_codes but was tried %d times", att.Tries)
	}
	_, _, att, _ = get(t, c, withPolicy(codes), "GET", "/echo?status=429", nil)
	if att.Tries != 4 {
		t.Fatalf("429 tried %d times, want 4", att.Tries)
	}
}

func hasFlag(a *Attempt, f string) bool {
	for _, x := range a.Flags {
		if x == f {
			return true
		}
	}
	return false
}

// resetServer accepts connections, reads a little and resets them.
func resetServer(t *testing.T) (string, *atomic.Int64) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			go func() {
				conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				conn.Read(make([]byte, 1024))
				conn.(*net.TCPConn).SetLinger(0) // RST, not FIN
				conn.Close()
			}()
		}
	}()
	t.Cleanup(func() { l.Close() })
	return l.Addr().String(), &n
}

func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

func TestRetryResetAndConnectFailure(t *testing.T) {
	good := newBackend(t, "good", nil)
	reset, resets := resetServer(t)
	c := newCluster(t, ClusterConfig{Endpoints: []EndpointConfig{{Address: reset}, {Address: good.addr()}}})

	// Without a retry on reset the reset is the answer: 503 UC.
	_, _, att, err := get(t, c, withPolicy(&RoutePolicy{Retries: fastRetry(0)}), "GET", "/", nil)
	for att.Host != reset { // round robin: make sure we hit the reset endpoint once
		_, _, att, err = get(t, c, withPolicy(&RoutePolicy{Retries: fastRetry(0)}), "GET", "/", nil)
	}
	var ue *Error
	if !errors.As(err, &ue) || ue.Flag != FlagConnTerminate || StatusOf(err) != 503 || !hasFlag(att, FlagConnTerminate) {
		t.Fatalf("reset without retry: err=%v attempt=%+v", err, att)
	}
	// With retry_on reset every GET succeeds, on the good endpoint.
	pol := &RoutePolicy{Retries: fastRetry(2, "reset")}
	for range 20 {
		resp, _, att, err := get(t, c, withPolicy(pol), "GET", "/", nil)
		if err != nil || resp.StatusCode != 200 || att.Host != good.addr() {
			t.Fatalf("GET with retry on reset: %v %v %+v", err, resp, att)
		}
	}
	if resets.Load() == 0 {
		t.Fatal("reset server never reached")
	}
	// A POST reset after it was sent is not retried (it may have been processed).
	before := good.hits.Load()
	for range 4 {
		get(t, c, withPolicy(pol), "POST", "/", strings.NewReader("x"))
	}
	if got := good.hits.Load() - before; got != 2 {
		t.Fatalf("4 POSTs round-robined over reset+good reached good %d times, want 2 (no retry of non-idempotent)", got)
	}

	// Connection refused: retried for any method (nothing was sent).
	c2 := newCluster(t, ClusterConfig{Name: "refused", Endpoints: []EndpointConfig{{Address: closedPort(t)}, {Address: good.addr()}}})
	cf := &RoutePolicy{Retries: fastRetry(2, "connect-failure")}
	for range 10 {
		resp, _, att, err := get(t, c2, withPolicy(cf), "POST", "/", strings.NewReader("body"))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("POST after connect failure: %v %+v", err, att)
		}
	}
	// Only refused endpoints: UF 503 with URX.
	c3 := newCluster(t, ClusterConfig{Name: "down", Endpoints: []EndpointConfig{{Address: closedPort(t)}}})
	_, _, att, err = get(t, c3, withPolicy(cf), "GET", "/", nil)
	if !errors.As(err, &ue) || ue.Flag != FlagConnectFail || att.Tries != 3 || !hasFlag(att, FlagRetryLimit) {
		t.Fatalf("all endpoints down: %v %+v", err, att)
	}
}

func TestRetryReplaysBody(t *testing.T) {
	var calls atomic.Int64
	var mu sync.Mutex
	var bodies []string
	b := newBackend(t, "flaky", func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(data))
		mu.Unlock()
		if calls.Add(1) == 1 {
			w.WriteHeader(503)
			return
		}
		w.Write(data)
	})
	c := newCluster(t, ClusterConfig{Endpoints: []EndpointConfig{{Address: b.addr()}}})
	payload := strings.Repeat("0123456789", 2000)
	// A reader without GetBody, as a server request is.
	resp, body, att, err := get(t, c, withPolicy(&RoutePolicy{Retries: fastRetry(2, "5xx")}), "PUT", "/", io.NopCloser(strings.NewReader(payload)))
	if err != nil || resp.StatusCode != 200 || body != payload || att.Tries != 2 {
		t.Fatalf("PUT retried: err=%v status=%v len=%d tries=%d", err, resp, len(body), att.Tries)
	}
	if len(bodies) != 2 || bodies[0] != payload || bodies[1] != payload {
		t.Fatalf("upstream saw bodies of %d and %d bytes", len(bodies[0]), len(bodies[1]))
	}
	// Over max_replay_bytes the first answer stands.
	calls.Store(0)
	small := &RoutePolicy{Retries: &RetryPolicy{Attempts: 2, RetryOn: []string{"5xx"}, MaxReplayBytes: 100, BackoffBase: time.Millisecond}}
	resp, _, att, err = get(t, c, withPolicy(small), "PUT", "/", io.NopCloser(strings.NewReader(payload)))
	if err != nil || resp.StatusCode != 503 || att.Tries != 1 {
		t.Fatalf("PUT over max_replay_bytes: %v %v tries=%d", err, resp, att.Tries)
	}
}

func TestTimeouts(t *testing.T) {
	f := testenv.StartFortioServer(t)
	c := newCluster(t, ClusterConfig{Endpoints: []EndpointConfig{{Address: f.Addr}}})
	// Per-try timeout, retried once, then UT 504.
	pol := &RoutePolicy{Retries: &RetryPolicy{Attempts: 1, PerTryTimeout: 50 * time.Millisecond, RetryOn: []string{"reset"}, BackoffBase: time.Millisecond}}
	_, _, att, err := get(t, c, withPolicy(pol), "GET", "/echo?delay=2s", nil)
	if StatusOf(err) != 504 || att.Tries != 2 || !hasFlag(att, FlagTimeout) {
		t.Fatalf("per-try timeout: %v %+v", err, att)
	}
	// Route timeout bounds everything.
	pol = &RoutePolicy{Timeout: 80 * time.Millisecond, Retries: fastRetry(0)}
	_, _, att, err = get(t, c, withPolicy(pol), "GET", "/echo?delay=2s", nil)
	if StatusOf(err) != 504 || !hasFlag(att, FlagTimeout) {
		t.Fatalf("route timeout: %v %+v", err, att)
	}
	// The response body is still readable after the headers arrived in time.
	resp, body, _, err := get(t, c, withPolicy(&RoutePolicy{Timeout: 5 * time.Second, Retries: &RetryPolicy{PerTryTimeout: time.Second}}), "POST", "/echo", strings.NewReader("abc"))
	if err != nil || resp.StatusCode != 200 || body != "abc" {
		t.Fatalf("normal request under timeouts: %v %v %q", err, resp, body)
	}
	// The downstream going away is DC, not a retry.
	ctx, cancel := context.WithCancel(withPolicy(&RoutePolicy{Retries: fastRetry(3, "5xx")}))
	time.AfterFunc(50*time.Millisecond, cancel)
	_, _, att, err = get(t, c, ctx, "GET", "/echo?delay=2s", nil)
	if StatusOf(err) != 499 || att.Tries != 1 {
		t.Fatalf("cancelled downstream: %v %+v", err, att)
	}
}

// retryStorm sends n requests from conc goroutines to an upstream that
// always answers 503 and returns upstream tries per request.
func retryStorm(t testing.TB, c *Cluster, path string, conc, n int) float64 {
	pol := &RoutePolicy{Retries: &RetryPolicy{Attempts: 3, RetryOn: []string{"5xx"}, BackoffBase: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond}}
	var wg sync.WaitGroup
	var next atomic.Int64
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				resp, _, _, err := get(t, c, withPolicy(pol), "GET", path, nil)
				if err != nil || resp.StatusCode != 503 {
					t.Errorf("storm request: %v %v", err, resp)
					return
				}
			}
		}()
	}
	wg.Wait()
	return (testCounter(c.m.rq) + testCounter(c.m.retries)) / testCounter(c.m.rq)
}

func TestRetryBudgetCapsAmplification(t *testing.T) {
	f := testenv.StartFortioServer(t)
	ep := []EndpointConfig{{Address: f.Addr}}
	noBudget := newCluster(t, ClusterConfig{Name: "nobudget", Endpoints: ep, CircuitBreakers: BreakerConfig{MaxRetries: 10000}})
	budget := newCluster(t, ClusterConfig{Name: "budget", Endpoints: ep, CircuitBreakers: BreakerConfig{MaxRetries: 10000}, RetryBudget: &BudgetConfig{Percent: 20, MinConcurrency: 1}})
	without := retryStorm(t, noBudget, "/echo?status=503", 16, 400)
	with := retryStorm(t, budget, "/echo?status=503", 16, 400)
	t.Logf("upstream tries per request at 100%% 503: without budget %.2f, with 20%% budget %.2f", without, with)
	if without != 4 {
		t.Fatalf("without a budget every request should be tried 1+3 times, got %.2f", without)
	}
	if with > 2 {
		t.Fatalf("with a 20%% budget amplification should stay well under 2x, got %.2f", with)
	}
	if testCounter(budget.m.retryOverflow) == 0 {
		t.Fatal("budget never refused a retry")
	}
}

// gate is a backend whose requests block until released.
type gate struct {
	*backend
	in      chan struct{}
	release chan struct{}
}

func newGate(t *testing.T) *gate {
	g := &gate{in: make(chan struct{}, 100), release: make(chan struct{})}
	g.backend = newBackend(t, "gate", func(w http.ResponseWriter, r *http.Request) {
		g.in <- struct{}{}
		<-g.release
		w.Write([]byte("done"))
	})
	return g
}

func TestCircuitBreakers(t *testing.T) {
	g := newGate(t)
	results := make(chan error, 4)
	send := func(c *Cluster) {
		resp, _, _, err := get(t, c, context.Background(), "GET", "/", nil)
		if err == nil && resp.StatusCode != 200 {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		results <- err
	}
	// max_connections 1 + max_pending_requests 1: the third is shed.
	c := newCluster(t, ClusterConfig{Endpoints: []EndpointConfig{{Address: g.addr()}},
		CircuitBreakers: BreakerConfig{MaxConnections: 1, MaxPendingRequests: 1}})
	go send(c)
	<-g.in // holds the only connection slot
	go send(c)
	waitFor(t, "a pending request", func() bool { return c.pending.Load() == 1 })
	_, _, att, err := get(t, c, context.Background(), "GET", "/", nil)
	if StatusOf(err) != 503 || !hasFlag(att, FlagOverflow) {
		t.Fatalf("over max_pending_requests: %v %+v", err, att)
	}
	g.release <- struct{}{}
	<-g.in
	g.release <- struct{}{}
	for range 2 {
		if err := <-results; err != nil {
			t.Fatalf("admitted request failed: %v", err)
		}
	}
	if testCounter(c.m.overflow.WithLabelValues(brPending)) != 1 {
		t.Fatal("pending overflow not counted")
	}

	// max_requests 2: the third concurrent request is shed.
	c2 := newCluster(t, ClusterConfig{Name: "maxrq", Endpoints: []EndpointConfig{{Address: g.addr()}},
		CircuitBreakers: BreakerConfig{MaxRequests: 2}})
	go send(c2)
	go send(c2)
	<-g.in
	<-g.in
	_, _, att, err = get(t, c2, context.Background(), "GET", "/", nil)
	if StatusOf(err) != 503 || !hasFlag(att, FlagOverflow) {
		t.Fatalf("over max_requests: %v %+v", err, att)
	}
	g.release <- struct{}{}
	g.release <- struct{}{}
	for range 2 {
		if err := <-results; err != nil {
			t.Fatalf("admitted request failed: %v", err)
		}
	}
	// Slots are free again.
	if resp, _, _, err := func() (*http.Response, string, *Attempt, error) {
		go func() { <-g.in; g.release <- struct{}{} }()
		return get(t, c2, context.Background(), "GET", "/", nil)
	}(); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the burst: %v", err)
	}
	if a := testGauge(c2.m.active); a != 0 {
		t.Fatalf("rq_active %v after all requests finished", a)
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fullBacklog returns the address of a listening socket with a backlog of
// zero that never accepts: once it holds a connection, further SYNs are
// dropped and connecting hangs — a real connect timeout on loopback.
func fullBacklog(t *testing.T) string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	// Fill the queue; these complete (or not) in the background.
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	t.Cleanup(func() {
		close(done)
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	for range 4 {
		go func() {
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			select {
			case <-done:
				c.Close()
			default:
				conns = append(conns, c)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	return addr
}

func TestConnectTimeout(t *testing.T) {
	good := newBackend(t, "good", nil)
	hang := fullBacklog(t)
	c := newCluster(t, ClusterConfig{ConnectTimeout: 150 * time.Millisecond, Endpoints: []EndpointConfig{{Address: hang}}})
	_, _, att, err := get(t, c, withPolicy(&RoutePolicy{Retries: fastRetry(0)}), "GET", "/", nil)
	if StatusOf(err) != 503 || !hasFlag(att, FlagConnectFail) {
		t.Fatalf("connect timeout: %v %+v", err, att)
	}
	// With another endpoint, connect-failure retries land there.
	c2 := newCluster(t, ClusterConfig{Name: "two", ConnectTimeout: 150 * time.Millisecond, Endpoints: []EndpointConfig{{Address: hang}, {Address: good.addr()}}})
	for range 4 {
		if resp, _, att, err := get(t, c2, context.Background(), "POST", "/", strings.NewReader("x")); err != nil || resp.StatusCode != 200 {
			t.Fatalf("POST with the default policy past a hanging endpoint: %v %+v", err, att)
		}
	}
}

func TestMaxRetriesBreaker(t *testing.T) {
	f := testenv.StartFortioServer(t)
	c := newCluster(t, ClusterConfig{Endpoints: []EndpointConfig{{Address: f.Addr}}, CircuitBreakers: BreakerConfig{MaxRetries: 1}})
	amp := retryStorm(t, c, "/echo?status=503", 8, 200)
	if amp >= 4 || testCounter(c.m.overflow.WithLabelValues(brRetries)) == 0 {
		t.Fatalf("max_retries 1 under 8 concurrent failing requests: amplification %.2f, overflow %v", amp, testCounter(c.m.overflow.WithLabelValues(brRetries)))
	}
}
