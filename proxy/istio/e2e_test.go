package istio_test

// The seed's Istio resources loaded by the real proxy (server.Helper run by
// app.Run, the same path as the binary) and proved with traffic from real
// clients to real backends.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/sidecarkit/sidecarkit/proxy/mtls/mtlstest"
	"github.com/sidecarkit/sidecarkit/proxy/server"
	"github.com/sidecarkit/sidecarkit/shared/app"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuf collects the proxy's output.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type proxy struct {
	admin string
	out   *syncBuf
}

// startProxy runs the proxy with args until the test ends.
func startProxy(t *testing.T, args ...string) *proxy {
	t.Helper()
	p := &proxy{admin: freePort(t), out: &syncBuf{}}
	args = append([]string{"--admin-addr", p.admin, "--prometheus-addr=", "--drain-delay=0s", "--drain-timeout=2s", "--access-log=false", "--log-level=warn"}, args...)
	sigs := make(chan os.Signal, 1)
	done := make(chan int, 1)
	go func() {
		done <- app.Run(context.Background(), server.Helper(args, nil), args, nil, p.out, p.out, sigs)
	}()
	t.Cleanup(func() {
		sigs <- syscall.SIGTERM
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("proxy did not stop")
		}
	})
	for deadline := time.Now().Add(20 * time.Second); ; {
		select {
		case rc := <-done:
			t.Fatalf("proxy exited %d:\n%s", rc, p.out.String())
		default:
		}
		resp, err := http.Get("http://" + p.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy not ready:\n%s", p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// backend is one upstream endpoint counting what it receives, by path.
type backend struct {
	addr   string
	port   string
	mu     sync.Mutex
	counts map[string]int
	protos map[string]int
	fail   atomic.Int32 // status to answer every request with (0: 200)
}

func newBackend(t *testing.T, name string) *backend {
	t.Helper()
	b := &backend{counts: map[string]int{}, protos: map[string]int{}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.counts[r.URL.Path]++
		b.protos[r.Proto]++
		b.mu.Unlock()
		switch {
		case r.URL.Path == "/fail":
			w.WriteHeader(503)
		case r.URL.Path == "/reset":
			panic(http.ErrAbortHandler) // the stream/connection is reset before a response
		case b.fail.Load() != 0:
			w.WriteHeader(int(b.fail.Load()))
		default:
			io.WriteString(w, name)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h2c.NewHandler(h, &http2.Server{})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	b.addr = ln.Addr().String()
	_, b.port, _ = net.SplitHostPort(b.addr)
	return b
}

func (b *backend) count(path string) int { b.mu.Lock(); defer b.mu.Unlock(); return b.counts[path] }

func (b *backend) total() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, c := range b.counts {
		n += c
	}
	return n
}

// seedDir copies the seed's files (names) into a temp dir with extra
// documents (a ServiceEntry giving the hosts' endpoints, as Istio without
// Kubernetes learns them).
func seedDir(t *testing.T, names []string, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata", "seed", n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for n, s := range extra {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func serviceEntry(host string, eps []*backend, labels []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: endpoints, namespace: production}
spec:
  hosts: [%s]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints:
`, host)
	for i, e := range eps {
		fmt.Fprintf(&b, "  - {address: 127.0.0.1, ports: {http: %s}, labels: {version: %s}}\n", e.port, labels[i])
	}
	return b.String()
}

func send(c *http.Client, method, url, host string) (int, error) {
	req, _ := http.NewRequest(method, url, nil)
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestSeedCanarySplitAndRetries(t *testing.T) {
	v1, v2 := newBackend(t, "v1"), newBackend(t, "v2")
	dir := seedDir(t, []string{"virtualservice.yaml", "destinationrule.yaml"}, map[string]string{
		"endpoints.yaml": serviceEntry("payment-service.production.svc.cluster.local", []*backend{v1, v2}, []string{"v1", "v2"}),
	})
	out := freePort(t)
	startProxy(t, "--istio-config", dir, "--istio-namespace", "production", "--outbound-addr", out)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	url := "http://" + out + "/"

	// 90/10 over 10,000 requests.
	const n, workers = 10000, 8
	var failed atomic.Int32
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/workers; i++ {
				if code, err := send(c, "GET", url, "payment-service"); err != nil || code != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed", failed.Load(), n)
	}
	a, b := v1.count("/"), v2.count("/")
	share := float64(b) / float64(a+b) * 100
	t.Logf("split over %d requests: v1 %d, v2 %d (%.2f %% to v2)", a+b, a, b, share)
	if a+b != n || share < 8.5 || share > 11.5 { // binomial sd at p=0.1, n=10000: 0.3 %
		t.Errorf("v2 got %.2f %% (want 10 ± 1.5)", share)
	}
	// h2UpgradePolicy: UPGRADE: the proxy speaks HTTP/2 (h2c) to the upstream.
	if v1.protos["HTTP/2.0"] == 0 || v1.protos["HTTP/1.1"] != 0 {
		t.Errorf("upstream protocols %v: want HTTP/2 only (h2UpgradePolicy: UPGRADE)", v1.protos)
	}

	// retries: {attempts: 3, retryOn: 5xx,reset}: 1 + 3 tries per request,
	// counted at the upstream, for a 503 and for a reset.
	const m = 20
	for i := 0; i < m; i++ {
		if code, err := send(c, "POST", "http://"+out+"/fail", "payment-service"); err != nil || code != 503 {
			t.Fatalf("/fail: %d %v", code, err)
		}
		if code, err := send(c, "GET", "http://"+out+"/reset", "payment-service"); err != nil || code != 503 {
			t.Fatalf("/reset: %d %v", code, err)
		}
	}
	tries5xx := v1.count("/fail") + v2.count("/fail")
	triesReset := v1.count("/reset") + v2.count("/reset")
	t.Logf("retries: %d requests answered 503 -> %d upstream tries; %d reset -> %d tries", m, tries5xx, m, triesReset)
	if tries5xx != 4*m || triesReset != 4*m {
		t.Errorf("upstream tries: 5xx %d, reset %d; want %d each (1 + 3 retries)", tries5xx, triesReset, 4*m)
	}
}

func TestSeedOutlierEjection(t *testing.T) {
	bs := []*backend{newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c"), newBackend(t, "d")}
	// The seed's DestinationRule as written; a VirtualService without retries
	// so each request is one upstream try.
	dir := seedDir(t, []string{"destinationrule.yaml"}, map[string]string{
		"endpoints.yaml": serviceEntry("payment-service.production.svc.cluster.local", bs, []string{"v1", "v1", "v2", "v2"}),
		"vs.yaml": `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: payment-service, namespace: production}
spec:
  hosts: [payment-service]
  http: [{route: [{destination: {host: payment-service}}], retries: {attempts: 0}}]
`,
	})
	out := freePort(t)
	startProxy(t, "--istio-config", dir, "--istio-namespace", "production", "--outbound-addr", out)
	c := &http.Client{}
	url := "http://" + out + "/"

	// One endpoint answers 500: ejected after exactly 5 (consecutive5xxErrors: 5).
	bs[0].fail.Store(500)
	for i := 0; i < 100; i++ {
		if _, err := send(c, "GET", url, "payment-service"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("one failing endpoint of 4, 100 requests: it got %d, the others %d %d %d", bs[0].total(), bs[1].total(), bs[2].total(), bs[3].total())
	if bs[0].total() != 5 {
		t.Errorf("failing endpoint got %d requests; want exactly 5 (ejected after 5 consecutive 5xx)", bs[0].total())
	}

	// Every endpoint fails: maxEjectionPercent 50 keeps 2 of 4 in service.
	for _, b := range bs {
		b.fail.Store(503)
	}
	before := make([]int, len(bs))
	for i, b := range bs {
		before[i] = b.total()
	}
	for i := 0; i < 100; i++ {
		if _, err := send(c, "GET", url, "payment-service"); err != nil {
			t.Fatal(err)
		}
	}
	mid := make([]int, len(bs))
	for i, b := range bs {
		mid[i] = b.total()
	}
	for i := 0; i < 40; i++ {
		send(c, "GET", url, "payment-service")
	}
	serving := 0
	for i, b := range bs {
		if b.total() > mid[i] {
			serving++
		}
	}
	t.Logf("all 4 failing: requests per endpoint %v -> %v; endpoints still serving: %d", before, mid, serving)
	if serving != 2 {
		t.Errorf("%d endpoints still get traffic; want 2 (maxEjectionPercent 50 of 4)", serving)
	}
}

func TestSeedStrictMTLSAndAuthorization(t *testing.T) {
	ca := mtlstest.NewCA(t, "cluster.local")
	certDir := t.TempDir()
	cert, key := ca.Issue(t, "spiffe://cluster.local/ns/production/sa/payment-service")
	for n, b := range map[string][]byte{"cert-chain.pem": cert, "key.pem": key, "root-cert.pem": ca.PEM} {
		if err := os.WriteFile(filepath.Join(certDir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	appB := newBackend(t, "payment-service")
	dir := seedDir(t, []string{"security.yaml"}, nil)
	in := freePort(t)
	startProxy(t, "--istio-config", dir, "--istio-namespace", "production", "--istio-labels", "app=payment-service,version=v1",
		"--istio-certs", certDir, "--app", appB.addr, "--inbound-addr", in)

	// STRICT: plaintext is refused.
	plain := &http.Client{Timeout: 5 * time.Second}
	if code, err := send(plain, "POST", "http://"+in+"/api/v1/charge", "payment-service"); err == nil {
		t.Errorf("plaintext request answered %d; STRICT must refuse it", code)
	}

	client := func(id string) *http.Client {
		cp, kp := ca.Issue(t, id)
		pair, err := tls.X509KeyPair(cp, kp)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca.PEM)
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool}}}
	}
	order := client("spiffe://cluster.local/ns/production/sa/order-service")
	other := client("spiffe://cluster.local/ns/production/sa/frontend")
	for _, tc := range []struct {
		c      *http.Client
		who    string
		method string
		path   string
		want   int
	}{
		{order, "order-service", "POST", "/api/v1/charge", 200},
		{order, "order-service", "GET", "/api/v1/charge", 403},
		{order, "order-service", "POST", "/api/v1/refund", 403},
		{other, "frontend", "POST", "/api/v1/charge", 403},
	} {
		code, err := send(tc.c, tc.method, "https://"+in+tc.path, "payment-service")
		if err != nil || code != tc.want {
			t.Errorf("%s %s %s: %d %v, want %d", tc.who, tc.method, tc.path, code, err, tc.want)
		}
	}
	if n := appB.total(); n != 1 {
		t.Errorf("the app received %d requests; want only the one allowed", n)
	}
}

func TestReloadFollowsTheDirectory(t *testing.T) {
	v1, v2 := newBackend(t, "v1"), newBackend(t, "v2")
	dir := seedDir(t, []string{"virtualservice.yaml", "destinationrule.yaml"}, map[string]string{
		"endpoints.yaml": serviceEntry("payment-service.production.svc.cluster.local", []*backend{v1, v2}, []string{"v1", "v2"}),
	})
	out := freePort(t)
	p := startProxy(t, "--istio-config", dir, "--istio-namespace", "production", "--outbound-addr", out)
	c := &http.Client{}
	// Shift everything to v2, as a canary promotion does.
	vs, _ := os.ReadFile(filepath.Join(dir, "virtualservice.yaml"))
	s := strings.Replace(string(vs), "weight: 90", "weight: 0", 1)
	s = strings.Replace(s, "weight: 10", "weight: 100", 1)
	tmp := filepath.Join(dir, ".vs.tmp")
	os.WriteFile(tmp, []byte(s), 0o644)
	os.Rename(tmp, filepath.Join(dir, "virtualservice.yaml"))
	waitFor(t, func() bool {
		base := v1.count("/")
		for i := 0; i < 20; i++ {
			send(c, "GET", "http://"+out+"/", "payment-service")
		}
		return v1.count("/") == base
	})
	// A broken file is refused; the running translation stays.
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {hostz: [a]}\n"), 0o644)
	waitFor(t, func() bool { return strings.Contains(p.out.String(), `unknown field \"hostz\"`) })
	base := v2.count("/")
	if code, _ := send(c, "GET", "http://"+out+"/", "payment-service"); code != 200 || v2.count("/") != base+1 {
		t.Errorf("after a bad file the running routes must stay: %d", code)
	}
}

func waitFor(t *testing.T, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !f(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 15s")
		}
	}
}

func TestValidateCommand(t *testing.T) {
	var out bytes.Buffer
	args := []string{"validate", "--istio-config", "testdata/seed-as-written", "--istio-namespace", "production"}
	rc := app.Run(context.Background(), server.Helper(args, nil), args, nil, &out, &out, nil)
	if rc != app.ExitConfig {
		t.Errorf("exit %d, want %d", rc, app.ExitConfig)
	}
	for _, want := range []string{
		"testdata/seed-as-written/virtualservice.yaml:22: VirtualService production/payment-service: spec.timeout: unknown field",
		"spec.http[].timeout",
		"testdata/seed-as-written/virtualservice.yaml:23: VirtualService production/payment-service: spec.retries: unknown field",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("validate output lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	args = []string{"validate", "--istio-config", "testdata/seed", "--istio-namespace", "production", "--istio-certs", "testdata/certs-not-needed-for-validate"}
	if rc := app.Run(context.Background(), server.Helper(args, nil), args, nil, &out, &out, nil); rc != 0 {
		t.Errorf("corrected seed: exit %d:\n%s", rc, out.String())
	}
}
