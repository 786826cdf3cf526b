package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/shared/config"
)

// echoCfg is the config of a small HTTP helper used to test the lifecycle.
type echoCfg struct {
	Listen string
	Delay  time.Duration
	Ready  bool
}

// echoHelper serves HTTP on Listen; every request takes Delay. It stops
// accepting when Stopping closes and returns when in-flight requests finish.
func echoHelper(t *testing.T, bound chan<- string) Helper[echoCfg] {
	return Helper[echoCfg]{
		Name:      "echo",
		AdminAddr: "127.0.0.1:0",
		Bind: func(l *config.Loader, c *echoCfg) {
			l.String(&c.Listen, "listen", "127.0.0.1:0", "")
			l.Duration(&c.Delay, "delay", 0, "")
			l.Bool(&c.Ready, "ready", true, "")
		},
		Validate: func(l *config.Loader, c *echoCfg) error {
			var p config.Problems
			if c.Delay > time.Minute {
				p.Add("delay", c.Delay, "at most 1m")
			}
			return p.Err()
		},
		Run: func(ctx context.Context, rt *Runtime, c *echoCfg) error {
			ln, err := net.Listen("tcp", c.Listen)
			if err != nil {
				return err
			}
			flag := rt.Health.NewFlag("listener")
			if c.Ready {
				flag.Set(nil)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(c.Delay)
				fmt.Fprint(w, "ok")
			})}
			go srv.Serve(ln)
			bound <- ln.Addr().String()
			select {
			case <-rt.Stopping():
			case <-ctx.Done():
			}
			return srv.Shutdown(ctx)
		},
	}
}

// adminAddrOf extracts the admin address from the "starting" log line.
func adminAddrOf(t *testing.T, logs *syncBuffer) string {
	t.Helper()
	for i := 0; i < 200; i++ {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `"msg":"starting"`) {
				i := strings.Index(line, `"admin":"`)
				rest := line[i+9:]
				return rest[:strings.IndexByte(rest, '"')]
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no starting line in logs:\n%s", logs.String())
	return ""
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func status(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestDrainWithRequestsInFlight(t *testing.T) {
	bound := make(chan string, 1)
	sigs := make(chan os.Signal, 2)
	var logs syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- Run(context.Background(), echoHelper(t, bound), []string{"--delay=400ms", "--drain-delay=300ms", "--drain-timeout=10s"}, nil, &logs, &logs, sigs)
	}()
	addr := <-bound
	admin := "http://" + adminAddrOf(t, &logs)
	waitFor(t, func() bool { return status(admin+"/readyz") == 200 })
	if status(admin+"/startupz") != 200 {
		t.Fatal("startupz not 200 once ready")
	}

	// 50 requests in flight on their own connections, then SIGTERM.
	const n = 50
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			resp, err := c.Get("http://" + addr + "/")
			if err != nil {
				failed.Add(1)
				t.Logf("in-flight request failed: %v", err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				ok.Add(1)
			} else {
				failed.Add(1)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond) // let them connect
	sigs <- syscall.SIGTERM
	// Readiness turns false at once, while the listener still serves (drain-delay).
	waitFor(t, func() bool { return status(admin+"/readyz") == 503 })
	if c := status("http://" + addr + "/"); c != 200 {
		t.Errorf("during drain-delay a new request got %d, want 200", c)
	}
	wg.Wait()
	if got := <-code; got != ExitOK {
		t.Fatalf("exit code %d, want 0; logs:\n%s", got, logs.String())
	}
	if failed.Load() != 0 || ok.Load() != n {
		t.Fatalf("%d ok, %d failed of %d in-flight requests", ok.Load(), failed.Load(), n)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("listener still accepting after exit")
	}
	for _, want := range []string{`"msg":"shutting down"`, `"msg":"drained"`, `"helper":"echo"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %s", want)
		}
	}
}

func TestVerboseReadyzNamesFailingCheck(t *testing.T) {
	bound := make(chan string, 1)
	sigs := make(chan os.Signal, 1)
	var logs syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- Run(context.Background(), echoHelper(t, bound), []string{"--ready=false", "--drain-delay=0"}, nil, &logs, &logs, sigs)
	}()
	<-bound
	admin := "http://" + adminAddrOf(t, &logs)
	resp, err := http.Get(admin + "/readyz?verbose")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), "[-]listener failed: pending") {
		t.Fatalf("readyz?verbose: %d %q", resp.StatusCode, body)
	}
	if status(admin+"/startupz") != 503 || status(admin+"/livez") != 200 {
		t.Fatal("startupz should fail and livez pass before readiness")
	}
	// POST /quitquitquit ends the process with 0.
	if _, err := http.Post(admin+"/quitquitquit", "", nil); err != nil {
		t.Fatal(err)
	}
	if got := <-code; got != ExitOK {
		t.Fatalf("exit %d", got)
	}
}

func TestStartupTimeoutExits1(t *testing.T) {
	bound := make(chan string, 1)
	var logs syncBuffer
	got := Run(context.Background(), echoHelper(t, bound), []string{"--ready=false", "--startup-timeout=300ms"}, nil, &logs, &logs, nil)
	if got != ExitRuntime {
		t.Fatalf("exit %d, want 1", got)
	}
	if !strings.Contains(logs.String(), "listener: pending") {
		t.Errorf("startup failure does not name the failing check:\n%s", logs.String())
	}
}

func TestSecondSignalExitsAtOnce(t *testing.T) {
	bound := make(chan string, 1)
	sigs := make(chan os.Signal, 2)
	var logs syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- Run(context.Background(), echoHelper(t, bound), []string{"--drain-delay=1h"}, nil, &logs, &logs, sigs)
	}()
	<-bound
	sigs <- syscall.SIGTERM
	sigs <- syscall.SIGINT
	select {
	case got := <-code:
		if got != ExitRuntime {
			t.Fatalf("exit %d", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second signal did not exit")
	}
}

func TestDrainEndpointKeepsRunning(t *testing.T) {
	bound := make(chan string, 1)
	sigs := make(chan os.Signal, 1)
	var logs syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- Run(context.Background(), echoHelper(t, bound), []string{"--drain-delay=0"}, nil, &logs, &logs, sigs)
	}()
	addr := <-bound
	admin := "http://" + adminAddrOf(t, &logs)
	waitFor(t, func() bool { return status(admin+"/readyz") == 200 })
	resp, err := http.Post(admin+"/drain", "", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST /drain: %v %v", err, resp)
	}
	if status(admin+"/readyz") != 503 {
		t.Fatal("still ready after /drain")
	}
	if status("http://"+addr+"/") != 200 {
		t.Fatal("/drain stopped the helper's work")
	}
	if status(admin+"/startupz") != 200 {
		t.Fatal("startupz must stay 200 once started")
	}
	sigs <- syscall.SIGTERM
	if got := <-code; got != ExitOK {
		t.Fatalf("exit %d", got)
	}
}

func TestValidateAndConfigErrors(t *testing.T) {
	bound := make(chan string, 1)
	var out, errb bytes.Buffer
	h := echoHelper(t, bound)
	if got := Run(context.Background(), h, []string{"validate", "--delay=2h", "--log-level=loud", "--admin-addr=nope"}, []string{"ECHO_DRAIN_TIMEOUT=soon"}, &out, &errb, nil); got != ExitConfig {
		t.Fatalf("exit %d, want 2", got)
	}
	for _, want := range []string{`ECHO_DRAIN_TIMEOUT="soon"`} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
	errb.Reset()
	if got := Run(context.Background(), h, []string{"validate", "--delay=2h", "--log-level=loud", "--admin-addr=nope"}, nil, &out, &errb, nil); got != ExitConfig {
		t.Fatalf("exit %d, want 2", got)
	}
	for _, want := range []string{`delay "2h0m0s": at most 1m`, `log-level "loud"`, `admin-addr "nope"`} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
	out.Reset()
	if got := Run(context.Background(), h, []string{"validate"}, nil, &out, &errb, nil); got != ExitOK || !strings.Contains(out.String(), "valid") {
		t.Fatalf("valid config: exit %d %q", got, out.String())
	}
	out.Reset()
	if got := Run(context.Background(), h, []string{"--version"}, nil, &out, &errb, nil); got != ExitOK || !strings.HasPrefix(out.String(), "echo ") {
		t.Fatalf("--version: %d %q", got, out.String())
	}
	if got := Run(context.Background(), h, []string{"frobnicate"}, nil, &out, &errb, nil); got != ExitConfig {
		t.Fatalf("unknown subcommand: exit %d", got)
	}
}

func TestRunErrorExits1AndConfigError2(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{{errors.New("boom"), ExitRuntime}, {fmt.Errorf("secret file: %w", ErrConfig), ExitConfig}, {nil, ExitOK}} {
		h := Helper[struct{}]{Name: "x", AdminAddr: "127.0.0.1:0", Run: func(context.Context, *Runtime, *struct{}) error { return tc.err }}
		var b bytes.Buffer
		if got := Run(context.Background(), h, nil, nil, &b, &b, nil); got != tc.want {
			t.Errorf("Run returning %v: exit %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestWaitSubcommand(t *testing.T) {
	var ready atomic.Bool
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			http.Error(w, "not yet", 503)
			return
		}
		fmt.Fprint(w, "ok")
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	h := Helper[struct{}]{Name: "x", AdminAddr: ln.Addr().String()}

	var out, errb bytes.Buffer
	if got := Run(context.Background(), h, []string{"wait", "--timeout=500ms", "--interval=50ms"}, nil, &out, &errb, nil); got != ExitRuntime {
		t.Fatalf("wait on a not-ready server: exit %d", got)
	}
	if !strings.Contains(errb.String(), `HTTP 503 "not yet`) {
		t.Errorf("timeout message does not say what was seen: %s", errb.String())
	}
	time.AfterFunc(300*time.Millisecond, func() { ready.Store(true) })
	out.Reset()
	if got := Run(context.Background(), h, []string{"wait", "--timeout=20s", "--interval=50ms"}, nil, &out, &errb, nil); got != ExitOK {
		t.Fatalf("wait: exit %d: %s", got, errb.String())
	}
	// --url and the connection-refused case.
	port := ln.Addr().(*net.TCPAddr).Port + 1
	errb.Reset()
	if got := Run(context.Background(), h, []string{"wait", "--timeout=300ms", fmt.Sprintf("--url=http://127.0.0.1:%d/readyz", port)}, nil, &out, &errb, nil); got != ExitRuntime {
		t.Fatalf("wait on nothing: exit %d", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("condition not reached in 10s")
}

func TestParseConfigMatchesRun(t *testing.T) {
	h := echoHelper(t, make(chan string, 1))
	file := t.TempDir() + "/echo.yaml"
	os.WriteFile(file, []byte("delay: 3s\ndrain-delay: 1s\n"), 0o600)
	c, path, err := ParseConfig(h, []string{"run", "--config", file, "--ready=false"}, []string{"ECHO_LISTEN=127.0.0.1:9"})
	if err != nil || path != file || c.Delay != 3*time.Second || c.Ready || c.Listen != "127.0.0.1:9" {
		t.Fatalf("ParseConfig: %+v %q %v", c, path, err)
	}
	os.WriteFile(file, []byte("delay: 2h\nbogus: 1\n"), 0o600)
	_, _, err = ParseConfig(h, []string{"--config", file}, nil)
	if err == nil || !strings.Contains(err.Error(), `"bogus": unknown key`) {
		t.Fatalf("bad file: %v", err)
	}
	if _, _, err := ParseConfig(h, []string{"run", "stray"}, nil); err == nil || !strings.Contains(err.Error(), "unexpected arguments") {
		t.Fatalf("stray positional: %v", err)
	}
}
