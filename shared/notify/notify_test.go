package notify

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sidecarkit/sidecarkit/shared/config"
	"github.com/sidecarkit/sidecarkit/shared/logging"
)

// TestMain doubles as the child process: with SK_NOTIFY_CHILD set it waits for
// SIGHUPs and appends a line to the file named there for each one.
func TestMain(m *testing.M) {
	if out := os.Getenv("SK_NOTIFY_CHILD"); out != "" {
		ch := make(chan os.Signal, 8)
		signal.Notify(ch, syscall.SIGHUP)
		os.WriteFile(out+".ready", nil, 0o644)
		for range ch {
			f, _ := os.OpenFile(out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			f.WriteString("HUP\n")
			f.Close()
		}
	}
	os.Exit(m.Run())
}

// startChild runs this test binary under a unique name as a real child
// process that records every SIGHUP.
func startChild(t *testing.T) (name string, pid int, hups func() int) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	name = fmt.Sprintf("sknotify%06d", rand.IntN(1e6))
	bin := filepath.Join(dir, name)
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "hups")
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), "SK_NOTIFY_CHILD="+out)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; i < 500; i++ {
		if _, err := os.Stat(out + ".ready"); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return name, cmd.Process.Pid, func() int {
		b, _ := os.ReadFile(out)
		return strings.Count(string(b), "HUP")
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not reached in 10s", what)
}

func TestSignalByProcessNameReachesRealChild(t *testing.T) {
	name, pid, hups := startChild(t)
	pids, err := FindProcess("/proc", name)
	if err != nil || len(pids) != 1 || pids[0] != pid {
		t.Fatalf("FindProcess(%q) = %v, %v; want [%d]", name, pids, err, pid)
	}
	tgt := Signal{Sig: syscall.SIGHUP, Process: name}
	if err := tgt.Notify(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "child got SIGHUP", func() bool { return hups() == 1 })
}

func TestSignalByPidfile(t *testing.T) {
	_, pid, hups := startChild(t)
	pf := filepath.Join(t.TempDir(), "app.pid")
	os.WriteFile(pf, []byte(strconv.Itoa(pid)+"\n"), 0o644)
	if err := (Signal{Sig: syscall.SIGHUP, PIDFile: pf}).Notify(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "child got SIGHUP", func() bool { return hups() == 1 })
	os.WriteFile(pf, []byte("garbage"), 0o644)
	if err := (Signal{Sig: syscall.SIGHUP, PIDFile: pf}).Notify(context.Background()); err == nil || !strings.Contains(err.Error(), `"garbage" is not a pid`) {
		t.Fatalf("bad pidfile: %v", err)
	}
}

func TestNoProcessIsAnError(t *testing.T) {
	err := (Signal{Sig: syscall.SIGHUP, Process: "no-such-proc-xyz"}).Notify(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no process named") {
		t.Fatalf("got %v", err)
	}
}

func TestDebouncedBurstGivesOneNotificationAndWebhookRetriedUntil200(t *testing.T) {
	var calls, oks atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Fail the first two attempts of each notification.
		if n := calls.Add(1); n%3 != 0 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		oks.Add(1)
	}))
	defer srv.Close()
	reg := prometheus.NewRegistry()
	n := New(HTTP{URL: srv.URL + "/reload"}, Options{Debounce: 200 * time.Millisecond, Retries: 5, Timeout: time.Second}, logging.Discard(), reg, "sidecarkit_test_")
	n.policy.Initial = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.Run(ctx)
	for range 100 {
		n.Trigger()
		time.Sleep(time.Millisecond)
	}
	eventually(t, "webhook answered 200", func() bool { return oks.Load() == 1 })
	time.Sleep(400 * time.Millisecond)
	if oks.Load() != 1 || calls.Load() != 3 {
		t.Fatalf("100 triggers gave %d successful and %d total calls; want 1 and 3", oks.Load(), calls.Load())
	}
	if v := testutil.ToFloat64(n.sent.WithLabelValues("ok")); v != 1 {
		t.Fatalf("notifications_total{ok}=%v", v)
	}
}

func TestCommandTarget(t *testing.T) {
	out := filepath.Join(t.TempDir(), "ran")
	if err := (Command{Argv: []string{"touch", out}}).Notify(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(out); err != nil {
		t.Fatal("command did not run")
	}
	err := (Command{Argv: []string{"false"}}).Notify(context.Background())
	if err == nil || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("failing command: %v", err)
	}
}

func TestOptionsValidateAndURLRedacted(t *testing.T) {
	o := Options{Process: "app", Signal: "BOGUS", URL: "ftp://user:hunter2@x/", Retries: -1}
	var p config.Problems
	o.Validate(&p)
	msg := p.Err().Error()
	for _, want := range []string{"set only one", `notify-signal "BOGUS"`, `notify-retries "-1"`, "notify-url"} {
		if !strings.Contains(msg, want) {
			t.Errorf("lacks %q: %s", want, msg)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Errorf("password leaked into error: %s", msg)
	}
	err := HTTP{URL: "http://user:hunter2@127.0.0.1:1/x"}.Notify(context.Background())
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("password leaked or no error: %v", err)
	}
	for _, s := range []string{"HUP", "sighup", "SIGUSR1", "15"} {
		if _, err := ParseSignal(s); err != nil {
			t.Errorf("ParseSignal(%q): %v", s, err)
		}
	}
	_ = io.Discard
}
