package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "proxy-bin")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "proxy")
	out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build proxy: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is the proxy binary run by a test.
type proc struct {
	cmd               *exec.Cmd
	inbound, outbound string
	admin             string
	out               *lockedBuf
	exited            chan struct{}
	exitCode          int
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func startBinary(t *testing.T, wrap []string, args ...string) *proc {
	t.Helper()
	p := &proc{
		inbound:  fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		outbound: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		admin:    fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		out:      &lockedBuf{},
		exited:   make(chan struct{}),
	}
	argv := append(append([]string{}, wrap...), binPath, "--inbound-addr", p.inbound, "--outbound-addr", p.outbound,
		"--admin-addr", p.admin, "--prometheus-addr", "", "--access-log=false")
	argv = append(argv, args...)
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.cmd.Wait()
		p.exitCode = p.cmd.ProcessState.ExitCode()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("proxy output:\n%s", tail(p.out.String()))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if r, err := http.Get("http://" + p.admin + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("proxy exited %d:\n%s", p.exitCode, p.out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("proxy not ready:\n%s", p.out.String())
	return nil
}

func tail(s string) string {
	if len(s) > 6000 {
		return s[len(s)-6000:]
	}
	return s
}

// stat reads one value from the proxy's /stats.
func (p *proc) stat(t *testing.T, prefix string) float64 {
	resp, err := http.Get("http://" + p.admin + "/stats")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, prefix) {
			v, _ := strconv.ParseFloat(l[strings.LastIndex(l, " ")+1:], 64)
			sum += v
		}
	}
	return sum
}

func (p *proc) rssPeakKiB() int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			n, _ := strconv.Atoi(strings.Fields(l)[1])
			return n
		}
	}
	return 0
}

func TestVersionAndValidate(t *testing.T) {
	out, err := exec.Command(binPath, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "proxy") {
		t.Fatalf("--version: %v %s", err, out)
	}
	cmd := exec.Command(binPath, "validate", "--mode", "sideways", "--app", "nohost", "--upstream", "ftp://x")
	out, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 {
		t.Fatalf("validate exit %d: %s", cmd.ProcessState.ExitCode(), out)
	}
	for _, want := range []string{`mode "sideways"`, `app "nohost"`, `upstream "ftp://x"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("validate output lacks %s:\n%s", want, out)
		}
	}
}

// TestDrainWith200InFlight: SIGTERM with 200 slow requests in flight — none
// fails, the outbound listener still serves the app while inbound drains,
// and the process exits 0.
func TestDrainWith200InFlight(t *testing.T) {
	f := testenv.StartFortioServer(t)
	p := startBinary(t, nil, "--app", f.Addr, "--upstream", "http://"+f.Addr, "--drain-delay", "300ms", "--drain-timeout", "30s")
	const n = 200
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := c.Get("http://" + p.inbound + "/echo?delay=2s")
			if err != nil {
				failed.Add(1)
				t.Logf("in-flight request failed: %v", err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed.Add(1)
				return
			}
			ok.Add(1)
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for p.stat(t, "sidecarkit_proxy_requests_active{listener=\"inbound\"}") < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(500 * time.Millisecond) // past the drain delay: inbound no longer accepts
	// The app can still call out while its inbound requests finish.
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + p.outbound + "/echo")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("outbound during drain: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if _, err := net.DialTimeout("tcp", p.inbound, time.Second); err == nil {
		t.Errorf("inbound still accepts after the drain delay")
	}
	wg.Wait()
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("proxy did not exit after drain")
	}
	if failed.Load() != 0 || ok.Load() != n {
		t.Fatalf("%d ok, %d failed of %d in flight", ok.Load(), failed.Load(), n)
	}
	if p.exitCode != 0 {
		t.Fatalf("exit code %d", p.exitCode)
	}
}

// TestLargeTransfersBoundedMemory streams 1 GiB up and 1 GiB down through
// the proxy and checks its peak RSS stays far below that.
func TestLargeTransfersBoundedMemory(t *testing.T) {
	const size = 1 << 30
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			n, _ := io.Copy(io.Discard, r.Body)
			fmt.Fprint(w, n)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(size))
		buf := make([]byte, 256<<10)
		for sent := 0; sent < size; sent += len(buf) {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	p := startBinary(t, nil, "--app", ln.Addr().String())

	resp, err := http.Post("http://"+p.inbound+"/up", "application/octet-stream", io.LimitReader(zeros{}, size))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != strconv.Itoa(size) {
		t.Fatalf("upload: backend got %s bytes", b)
	}
	resp, err = http.Get("http://" + p.inbound + "/down")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	peak := p.rssPeakKiB()
	t.Logf("proxy peak RSS after 2 GiB streamed: %d KiB", peak)
	if peak > 64<<10 {
		t.Fatalf("proxy peak RSS %d KiB: bodies are being buffered", peak)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// Test5000Connections holds 5,000 concurrent requests, each on its own
// connection, through the proxy to fortio's echo server.
func Test5000Connections(t *testing.T) {
	const n = 5000
	var rl syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl)
	if rl.Cur < 3*n {
		rl.Cur = min(rl.Max, 4*n)
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	if rl.Cur < 3*n {
		testenv.Unavailable(t, "needs %d open files, limit is %d", 3*n, rl.Cur)
	}
	f := testenv.StartFortioServer(t)
	p := startBinary(t, nil, "--app", f.Addr)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", p.inbound, 10*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		fmt.Fprintf(c, "GET /echo?delay=3s HTTP/1.1\r\nHost: app\r\n\r\n")
		conns = append(conns, c)
	}
	deadline := time.Now().Add(60 * time.Second)
	max := 0.0
	for time.Now().Before(deadline) {
		v := p.stat(t, "sidecarkit_proxy_downstream_connections_active")
		if v > max {
			max = v
		}
		if max >= n {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	okCount := 0
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			okCount++
		}
	}
	if okCount != n || max < n {
		t.Fatalf("%d of %d answered 200; at most %.0f connections open at once", okCount, n, max)
	}
	t.Logf("%d concurrent connections, all answered; peak RSS %d KiB", n, p.rssPeakKiB())
}

// TestRealClients drives the binary with curl (HTTP/1.1, h2c prior
// knowledge, a chunked upload) and h2load (h2c, many streams).
func TestRealClients(t *testing.T) {
	curl := testenv.Tool(t, "curl", "curl")
	h2load := testenv.Tool(t, "h2load", "nghttp2-client")
	f := testenv.StartFortioServer(t)
	p := startBinary(t, nil, "--app", f.Addr)
	for _, args := range [][]string{
		{"-sS", "-o", "/dev/null", "-w", "%{http_code} %{http_version}", "http://" + p.inbound + "/echo"},
		{"-sS", "-o", "/dev/null", "-w", "%{http_code} %{http_version}", "--http2-prior-knowledge", "http://" + p.inbound + "/echo"},
		{"-sS", "-o", "/dev/null", "-w", "%{http_code} %{http_version}", "-H", "Transfer-Encoding: chunked", "--data-binary", "@/etc/os-release", "http://" + p.inbound + "/echo"},
	} {
		out, err := exec.Command(curl, args...).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), "200 ") {
			t.Errorf("curl %v: %v %s", args, err, out)
		}
	}
	out, err := exec.Command(h2load, "-n", "2000", "-c", "4", "-m", "10", "http://"+p.inbound+"/echo").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "2000 succeeded, 0 failed") {
		t.Fatalf("h2load: %v\n%s", err, out)
	}
}
