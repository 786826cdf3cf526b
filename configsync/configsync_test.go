package configsync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sidecarkit/sidecarkit/configsync"
	"github.com/sidecarkit/sidecarkit/integration/testenv"
	"github.com/sidecarkit/sidecarkit/shared/app"
	"github.com/sidecarkit/sidecarkit/shared/config"
	"github.com/sidecarkit/sidecarkit/shared/logging"
)

// TestMain doubles as the child process of TestSignalReachesChildProcess:
// with CONFIGSYNC_TEST_CHILD set it records every SIGHUP in that file.
func TestMain(m *testing.M) {
	if out := os.Getenv("CONFIGSYNC_TEST_CHILD"); out != "" {
		hups := make(chan os.Signal, 16)
		signal.Notify(hups, syscall.SIGHUP)
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		os.WriteFile(out+".ready", []byte("ok"), 0o644)
		for {
			select {
			case <-hups:
				f, _ := os.OpenFile(out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
				f.WriteString("HUP\n")
				f.Close()
			case <-term:
				os.Exit(0)
			}
		}
	}
	os.Exit(m.Run())
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type harness struct {
	t    *testing.T
	rt   *app.Runtime
	logs *syncBuf
	done chan error

	stop     func()
	stopOnce sync.Once
}

func kvClient(t *testing.T, c *testenv.Consul) *api.KV {
	t.Helper()
	cl, err := api.NewClient(&api.Config{Address: c.Addr})
	if err != nil {
		t.Fatal(err)
	}
	return cl.KV()
}

func put(t *testing.T, kv *api.KV, k, v string) {
	t.Helper()
	if _, err := kv.Put(&api.KVPair{Key: k, Value: []byte(v)}, nil); err != nil {
		t.Fatalf("put %s: %v", k, err)
	}
}

func parse(t *testing.T, args, env []string) *configsync.Config {
	t.Helper()
	var c configsync.Config
	l := config.NewLoader("configsync")
	configsync.Bind(l, &c)
	if _, err := l.Parse(args, env); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	if err := configsync.Validate(l, &c); err != nil {
		t.Fatalf("validate %v: %v", args, err)
	}
	return &c
}

// start runs configsync's Run in this process against the given flags.
func start(t *testing.T, consul *testenv.Consul, args ...string) *harness {
	t.Helper()
	c := parse(t, append([]string{"--consul-addr", consul.Addr}, args...), nil)
	logs := &syncBuf{}
	log, _ := logging.New(logs, "json", "debug", "configsync")
	h := &harness{t: t, rt: app.NewRuntime("configsync", log), logs: logs, done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { h.done <- configsync.Run(ctx, h.rt, c) }()
	h.stop = func() {
		h.stopOnce.Do(func() {
			h.rt.Stop()
			select {
			case err := <-h.done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("Run did not stop")
			}
			cancel()
		})
	}
	t.Cleanup(func() {
		h.stop()
		if t.Failed() {
			t.Logf("configsync log:\n%s", logs.String())
		}
	})
	return h
}

// synced reports whether the first complete sync happened.
func (h *harness) synced() bool {
	return h.metric("sidecarkit_configsync_last_success_timestamp_seconds") > 0
}

// metric sums the samples of name whose labels include want.
func (h *harness) metric(name string, want ...string) float64 {
	h.t.Helper()
	mfs, err := h.rt.Registry.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	sample:
		for _, m := range mf.Metric {
			for i := 0; i+1 < len(want); i += 2 {
				ok := false
				for _, lp := range m.Label {
					if lp.GetName() == want[i] && lp.GetValue() == want[i+1] {
						ok = true
					}
				}
				if !ok {
					continue sample
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			}
		}
	}
	return sum
}

// eventually polls cond for up to 60 s (a bound, not a timing assertion).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func fileIs(path, want string) func() bool {
	return func() bool { b, err := os.ReadFile(path); return err == nil && string(b) == want }
}

func TestPutReachesFiles(t *testing.T) {
	c := testenv.StartConsul(t)
	kv := kvClient(t, c)
	put(t, kv, "config/my-app/db/url", "postgres://db")
	put(t, kv, "config/my-app/feature", "on")
	put(t, kv, "single", "one")
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "upstreams.tmpl")
	os.WriteFile(tmpl, []byte(`feature={{ key "config/my-app/feature" }} user={{ env "USER_FOR_TEST" }}
{{ range tree "config/my-app" }}{{ .Key }}
{{ end }}`), 0o644)
	t.Setenv("USER_FOR_TEST", "alice")
	h := start(t, c, "--source", "consul://"+c.Addr+"/config/my-app", "--dest", dir+"/current",
		"--file", "single="+dir+"/single.txt", "--template", tmpl+"="+dir+"/rendered.txt", "--mode", "0640")
	eventually(t, "first sync", h.synced)
	for path, want := range map[string]string{
		"current/db/url": "postgres://db", "current/feature": "on", "single.txt": "one",
		"rendered.txt": "feature=on user=alice\ndb/url\nfeature\n",
	} {
		if b, err := os.ReadFile(filepath.Join(dir, path)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", path, b, err, want)
		}
	}
	if st, _ := os.Stat(dir + "/single.txt"); st.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", st.Mode())
	}
	inode := func(p string) uint64 {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Sys().(*syscall.Stat_t).Ino
	}
	single := inode(dir + "/single.txt")
	put(t, kv, "single", "one") // same value, new index
	put(t, kv, "config/my-app/feature", "off")
	eventually(t, "tree file updated", fileIs(dir+"/current/feature", "off"))
	if inode(dir+"/single.txt") != single {
		t.Error("an unchanged output was rewritten")
	}
	eventually(t, "template re-rendered", fileIs(dir+"/rendered.txt", "feature=off user=alice\ndb/url\nfeature\n"))
	put(t, kv, "single", "two")
	eventually(t, "single key file updated", fileIs(dir+"/single.txt", "two"))
	if h.metric("sidecarkit_configsync_syncs_total", "result", "ok") < 3 {
		t.Errorf("syncs_total{ok} = %v", h.metric("sidecarkit_configsync_syncs_total", "result", "ok"))
	}
	if h.metric("sidecarkit_configsync_last_success_timestamp_seconds") < float64(time.Now().Add(-time.Hour).Unix()) {
		t.Error("last_success_timestamp_seconds not set")
	}
}

func TestDeleteRemovesFileFromTree(t *testing.T) {
	c := testenv.StartConsul(t)
	kv := kvClient(t, c)
	put(t, kv, "app/a", "1")
	put(t, kv, "app/b", "2")
	dir := t.TempDir()
	goroutines := runtime.NumGoroutine()
	h := start(t, c, "--tree", "app="+dir+"/cfg")
	eventually(t, "tree", fileIs(dir+"/cfg/b", "2"))
	if _, err := kv.Delete("app/b", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b removed", func() bool { _, err := os.Stat(dir + "/cfg/b"); return os.IsNotExist(err) })
	if b, _ := os.ReadFile(dir + "/cfg/a"); string(b) != "1" {
		t.Fatalf("a = %q", b)
	}
	// Shutdown leaves no goroutine behind (watchers, notifier, idle
	// connections to Consul).
	h.stop()
	eventually(t, "goroutines back to where they were", func() bool { return runtime.NumGoroutine() <= goroutines })
}

func TestMissingKeyKeepsNothingAndIsNotReady(t *testing.T) {
	c := testenv.StartConsul(t)
	kv := kvClient(t, c)
	dir := t.TempDir()
	h := start(t, c, "--file", "needed="+dir+"/needed")
	eventually(t, "render error counted", func() bool { return h.metric("sidecarkit_configsync_errors_total", "stage", "render") > 0 })
	if h.rt.Health.Ready() {
		t.Fatal("ready although a required key is missing")
	}
	if _, err := os.Stat(dir + "/needed"); !os.IsNotExist(err) {
		t.Fatalf("a file was written for a missing key: %v", err)
	}
	put(t, kv, "needed", "here")
	eventually(t, "file once the key exists", fileIs(dir+"/needed", "here"))
	eventually(t, "ready", func() bool { return h.synced() && h.rt.Health.Ready() })
}

func TestBurstGivesOneRenderAndOneNotification(t *testing.T) {
	c := testenv.StartConsul(t)
	kv := kvClient(t, c)
	put(t, kv, "burst/value", "start")
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	dir := t.TempDir()
	// The wait window (3 s after the last change) is far longer than the gap
	// between two PUTs; the burst is one change as far as the app can tell.
	h := start(t, c, "--tree", "burst="+dir+"/cfg", "--wait-min", "3s", "--wait-max", "5m",
		"--notify-url", srv.URL, "--notify-debounce", "0")
	eventually(t, "first sync", h.synced)
	pub0 := h.metric("sidecarkit_configsync_publishes_total")
	syncs0 := h.metric("sidecarkit_configsync_syncs_total")
	notes0 := hits.Load()
	var maxGap time.Duration
	last := time.Now()
	for i := 1; i <= 100; i++ {
		put(t, kv, "burst/value", fmt.Sprintf("v%d", i))
		if gap := time.Since(last); gap > maxGap {
			maxGap = gap
		}
		last = time.Now()
	}
	if maxGap > 2*time.Second {
		// The machine stalled for most of the window between two writes:
		// the burst was not one burst, and the test would prove nothing.
		testenv.Unavailable(t, "a PUT took %v, too close to the 3s wait window on this loaded machine", maxGap)
	}
	eventually(t, "the last value", fileIs(dir+"/cfg/value", "v100"))
	eventually(t, "the notification", func() bool { return hits.Load() > notes0 })
	time.Sleep(4 * time.Second) // one more wait window: nothing else may follow
	if d := h.metric("sidecarkit_configsync_publishes_total") - pub0; d != 1 {
		t.Errorf("publishes after the burst = %v, want 1", d)
	}
	if d := h.metric("sidecarkit_configsync_syncs_total") - syncs0; d != 1 {
		t.Errorf("renders after the burst = %v, want 1", d)
	}
	if d := hits.Load() - notes0; d != 1 {
		t.Errorf("notifications after the burst = %d, want 1", d)
	}
}

func TestConcurrentReaderNeverSeesPartialOrMixed(t *testing.T) {
	c := testenv.StartConsul(t)
	cl, _ := api.NewClient(&api.Config{Address: c.Addr})
	kv := cl.KV()
	// Two keys always change together in one transaction; each value is
	// large enough that a torn write would show.
	val := func(n int) string { return fmt.Sprintf("v%06d|%s|end", n, strings.Repeat("x", 8<<10)) }
	write := func(n int) {
		ops := api.KVTxnOps{
			{Verb: api.KVSet, Key: "pair/a", Value: []byte(val(n))},
			{Verb: api.KVSet, Key: "pair/b", Value: []byte(val(n))},
		}
		ok, resp, _, err := kv.Txn(ops, nil)
		if err != nil || !ok {
			t.Errorf("txn: %v %+v", err, resp)
		}
	}
	write(0)
	dir := t.TempDir()
	h := start(t, c, "--tree", "pair="+dir+"/cfg", "--file", "pair/a="+dir+"/a.txt")
	eventually(t, "first sync", h.synced)

	stop := make(chan struct{})
	var writes sync.WaitGroup
	writes.Add(1)
	go func() {
		defer writes.Done()
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			write(n)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	link := dir + "/cfg"
	versions := map[string]bool{}
	pruned := 0
	for i := 0; i < 100_000; i++ {
		if i%2 == 0 {
			b, err := os.ReadFile(dir + "/a.txt")
			if err != nil {
				t.Fatalf("read %d: file missing: %v", i, err)
			}
			if !strings.HasSuffix(string(b), "|end") || len(b) != len(val(0)) {
				t.Fatalf("read %d: partial file (%d bytes)", i, len(b))
			}
			continue
		}
		// A reader resolves the link once and reads the whole tree from
		// the version it names.
		target, err := os.Readlink(link)
		if err != nil {
			t.Fatalf("read %d: link: %v", i, err)
		}
		vdir := filepath.Join(dir, target)
		a, errA := os.ReadFile(vdir + "/a")
		b, errB := os.ReadFile(vdir + "/b")
		if os.IsNotExist(errA) || os.IsNotExist(errB) {
			// Two publishes happened between resolving and reading: the
			// version was pruned. Never a mix, only gone; read again.
			if _, err := os.Stat(vdir); os.IsNotExist(err) {
				pruned++
				continue
			}
			t.Fatalf("read %d: version %s exists but misses a file: %v %v", i, target, errA, errB)
		}
		if errA != nil || errB != nil {
			t.Fatalf("read %d: %v %v", i, errA, errB)
		}
		if string(a[:7]) != string(b[:7]) {
			t.Fatalf("read %d: mixed tree: a=%s b=%s", i, a[:7], b[:7])
		}
		if !strings.HasSuffix(string(a), "|end") || len(a) != len(val(0)) || len(b) != len(a) {
			t.Fatalf("read %d: partial file in tree", i)
		}
		versions[string(a[:7])] = true
	}
	close(stop)
	writes.Wait()
	if len(versions) < 2 {
		t.Fatalf("the reader saw only %d version(s); the test proved nothing", len(versions))
	}
	t.Logf("100k reads saw %d versions of the tree (%d reads found their version pruned, never mixed)", len(versions), pruned)
}

func TestConsulRestartKeepsFilesAndResumes(t *testing.T) {
	c := testenv.StartConsul(t)
	kv := kvClient(t, c)
	// Push the index well past where a fresh agent starts.
	for i := 0; i < 60; i++ {
		put(t, kv, "svc/filler", fmt.Sprint(i))
	}
	put(t, kv, "svc/conf", "before")
	dir := t.TempDir()
	h := start(t, c, "--tree", "svc="+dir+"/cfg", "--file", "svc/conf="+dir+"/conf")
	eventually(t, "first sync", fileIs(dir+"/conf", "before"))

	c.Stop()
	eventually(t, "consul errors counted", func() bool { return h.metric("sidecarkit_configsync_errors_total", "stage", "consul") >= 2 })
	eventually(t, "staleness reported", func() bool { return h.metric("sidecarkit_configsync_staleness_seconds") > 0 })
	if b, _ := os.ReadFile(dir + "/conf"); string(b) != "before" {
		t.Fatalf("file changed while Consul is down: %q", b)
	}
	if b, _ := os.ReadFile(dir + "/cfg/conf"); string(b) != "before" {
		t.Fatalf("tree changed while Consul is down: %q", b)
	}
	if !h.rt.Health.Ready() {
		t.Fatal("readiness dropped while the last good files are in place")
	}

	c.Start() // a dev agent: empty, its index starts again
	eventually(t, "index reset detected", func() bool { return h.metric("sidecarkit_configsync_index_resets_total") >= 1 })
	// The empty agent has no keys: missing keys are errors, the files stay.
	if b, _ := os.ReadFile(dir + "/conf"); string(b) != "before" {
		t.Fatalf("file lost after an empty agent came back: %q", b)
	}
	put(t, kv, "svc/conf", "after")
	eventually(t, "sync resumed (file)", fileIs(dir+"/conf", "after"))
	eventually(t, "sync resumed (tree)", fileIs(dir+"/cfg/conf", "after"))
	eventually(t, "staleness back to 0", func() bool { return h.metric("sidecarkit_configsync_staleness_seconds") == 0 })
}

func TestSignalReachesChildProcess(t *testing.T) {
	c := testenv.StartConsul(t)
	kv := kvClient(t, c)
	put(t, kv, "hup/conf", "1")
	dir := t.TempDir()
	// A real child process with a name no other process has.
	name := fmt.Sprintf("cshup%d", os.Getpid()%100000)
	self, _ := os.Executable()
	bin := filepath.Join(dir, name)
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(bin, data, 0o755)
	record := filepath.Join(dir, "hups")
	child := exec.Command(bin, "-test.run=^$")
	child.Env = append(os.Environ(), "CONFIGSYNC_TEST_CHILD="+record)
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Signal(syscall.SIGTERM); child.Wait() }()
	eventually(t, "child ready", func() bool { _, err := os.Stat(record + ".ready"); return err == nil })

	h := start(t, c, "--file", "hup/conf="+dir+"/conf", "--notify-process", name, "--notify-signal", "HUP", "--notify-debounce", "0")
	// A file created from nothing at start is no news to the app; a
	// replaced one is. (An existing file changed while configsync was down
	// is news too: see the restart below.)
	eventually(t, "first sync", h.synced)
	put(t, kv, "hup/conf", "2")
	eventually(t, "HUP after a change", func() bool { b, _ := os.ReadFile(record); return strings.Count(string(b), "HUP") == 1 })
	eventually(t, "counted", func() bool { return h.metric("sidecarkit_configsync_notifications_total", "result", "ok") == 1 })
	h.stop()
	put(t, kv, "hup/conf", "3")
	start(t, c, "--file", "hup/conf="+dir+"/conf", "--notify-process", name, "--notify-signal", "HUP", "--notify-debounce", "0")
	eventually(t, "HUP after a restart that replaced the file", func() bool { b, _ := os.ReadFile(record); return strings.Count(string(b), "HUP") == 2 })
}

func TestWebhookRetriedUntil200(t *testing.T) {
	c := testenv.StartConsul(t)
	kv := kvClient(t, c)
	put(t, kv, "hook/conf", "1")
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			t.Errorf("method %s", r.Method)
		}
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	h := start(t, c, "--file", "hook/conf="+dir+"/conf", "--notify-url", srv.URL+"/-/reload", "--notify-status", "200", "--notify-debounce", "0")
	eventually(t, "first sync", h.synced)
	put(t, kv, "hook/conf", "2")
	eventually(t, "notification delivered", func() bool { return h.metric("sidecarkit_configsync_notifications_total", "result", "ok") == 1 })
	if n := calls.Load(); n != 3 {
		t.Fatalf("webhook called %d times, want 3 (503, 503, 200)", n)
	}
}

// runOnce runs the whole helper (flags, env, exit code) in this process.
func runOnce(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	var out syncBuf
	args = append([]string{"--once", "--admin-addr", "127.0.0.1:0", "--startup-timeout", "60s"}, args...)
	code := app.Run(context.Background(), configsync.Helper(), args, env, &out, &out, make(chan os.Signal))
	return code, out.String()
}

func TestOnce(t *testing.T) {
	c := testenv.StartConsul(t)
	kv := kvClient(t, c)
	put(t, kv, "config/my-app/a", "alpha")
	put(t, kv, "config/my-app/b/c", "gamma")
	dir := t.TempDir()
	const token = "s3cr3t-token-value"

	// The seed's own configuration: CONFIG_SOURCE and SYNC_INTERVAL.
	code, out := runOnce(t, []string{"CONFIG_SOURCE=consul://" + c.Addr + "/config/my-app", "SYNC_INTERVAL=30s", "CONSUL_HTTP_TOKEN=" + token},
		"--dest", dir+"/current")
	if code != 0 {
		t.Fatalf("--once exit %d:\n%s", code, out)
	}
	if b, _ := os.ReadFile(dir + "/current/b/c"); string(b) != "gamma" {
		t.Fatalf("b/c = %q", b)
	}

	// A missing required key: exit 2, nothing written.
	code, out = runOnce(t, []string{"CONSUL_HTTP_ADDR=" + c.Addr, "CONSUL_HTTP_TOKEN=" + token},
		"--file", "config/my-app/a="+dir+"/a", "--file", "config/my-app/nope="+dir+"/nope")
	if code != app.ExitConfig {
		t.Fatalf("missing key: exit %d, want 2:\n%s", code, out)
	}
	if !strings.Contains(out, `config/my-app/nope`) {
		t.Fatalf("the error does not name the key:\n%s", out)
	}
	for _, f := range []string{"a", "nope"} {
		if _, err := os.Stat(dir + "/" + f); !os.IsNotExist(err) {
			t.Fatalf("%s written although the run failed", f)
		}
	}
	if strings.Contains(out, token) {
		t.Fatalf("the token leaked into the output:\n%s", out)
	}

	// Consul unreachable: retried with backoff until the startup deadline, exit 1.
	code, out = runOnce(t, []string{"CONSUL_HTTP_TOKEN=" + token}, "--consul-addr", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		"--file", "x="+dir+"/x", "--startup-timeout", "2s")
	if code != app.ExitRuntime {
		t.Fatalf("unreachable: exit %d, want 1:\n%s", code, out)
	}
	if strings.Contains(out, token) {
		t.Fatalf("the token leaked into the output:\n%s", out)
	}

	// Bad configuration: every problem named, exit 2.
	code, out = runOnce(t, nil, "--source", "http://x/y", "--mode", "999", "--tree", "nodest")
	if code != app.ExitConfig || !strings.Contains(out, "source") || !strings.Contains(out, "mode") || !strings.Contains(out, "nodest") {
		t.Fatalf("bad config: exit %d:\n%s", code, out)
	}
}

var _ = prometheus.NewRegistry

func TestServiceTemplate(t *testing.T) {
	c := testenv.StartConsul(t)
	cl, _ := api.NewClient(&api.Config{Address: c.Addr})
	reg := func(id string, port int) {
		if err := cl.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: id, Name: "web", Port: port, Address: "10.0.0.1", Tags: []string{"blue"}}); err != nil {
			t.Fatal(err)
		}
	}
	reg("web-1", 8080)
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "up.tmpl")
	os.WriteFile(tmpl, []byte(`{{ range service "blue.web" }}server {{ .Address }}:{{ .Port }};
{{ end }}`), 0o644)
	start(t, c, "--template", tmpl+"="+dir+"/up.conf")
	eventually(t, "one upstream", fileIs(dir+"/up.conf", "server 10.0.0.1:8080;\n"))
	reg("web-2", 8081)
	eventually(t, "two upstreams", fileIs(dir+"/up.conf", "server 10.0.0.1:8080;\nserver 10.0.0.1:8081;\n"))
	if err := cl.Agent().ServiceDeregister("web-1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "one left", fileIs(dir+"/up.conf", "server 10.0.0.1:8081;\n"))
}

func TestValidateNamesEveryProblem(t *testing.T) {
	var out syncBuf
	code := app.Run(context.Background(), configsync.Helper(), []string{"validate", "--source", "consul://u:pw@h/x",
		"--file", "a/../b=/x", "--template", "/nonexistent.tmpl=/out", "--wait-min", "5s", "--wait-max", "1s", "--consistency", "weird",
		"--owner", "nosuchuser:x", "--tree", "p=relative/dir"}, nil, &out, &out, nil)
	if code != app.ExitConfig {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	for _, want := range []string{"source", "credentials", "a/../b", "/nonexistent.tmpl", "wait-max", "consistency", "owner", "relative/dir"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not mention %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "pw@") {
		t.Errorf("password echoed:\n%s", out.String())
	}
}

// TestBinaryLifecycle runs the built binary as a pod would: ready after the
// first sync, metrics on the admin port, SIGTERM → exit 0.
func TestBinaryLifecycle(t *testing.T) {
	c := testenv.StartConsul(t)
	kv := kvClient(t, c)
	put(t, kv, "bin/conf", "1")
	dir := t.TempDir()
	bin := filepath.Join(dir, "configsync")
	build := exec.Command("go", "build", "-o", bin, "./cmd/configsync")
	build.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	var logs syncBuf
	cmd := exec.Command(bin, "--tree", "bin="+dir+"/cfg")
	cmd.Env = []string{"CONSUL_HTTP_ADDR=" + c.Addr, "CONSUL_HTTP_TOKEN=tok-must-not-leak", "CONFIGSYNC_ADMIN_ADDR=" + admin}
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	}()
	eventually(t, "readyz 200", func() bool {
		r, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 200
	})
	if b, _ := os.ReadFile(dir + "/cfg/conf"); string(b) != "1" {
		t.Fatalf("conf = %q", b)
	}
	r, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(r.Body)
	r.Body.Close()
	for _, m := range []string{"sidecarkit_configsync_syncs_total", "sidecarkit_configsync_staleness_seconds", "sidecarkit_configsync_notifications_total", "sidecarkit_configsync_last_success_timestamp_seconds"} {
		if !strings.Contains(body.String(), m) {
			t.Errorf("metric %s missing", m)
		}
	}
	r, err = http.Get("http://" + admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var status struct {
		Outputs []struct {
			Output        string `json:"output"`
			LastPublished string `json:"last_published"`
		} `json:"outputs"`
		Ready bool `json:"ready"`
	}
	if err := json.NewDecoder(r.Body).Decode(&status); err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if !status.Ready || len(status.Outputs) != 1 || status.Outputs[0].LastPublished == "" || !strings.Contains(status.Outputs[0].Output, "cfg") {
		t.Fatalf("status %+v", status)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit after SIGTERM\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "tok-must-not-leak") || strings.Contains(body.String(), "tok-must-not-leak") {
		t.Fatal("token leaked into logs or metrics")
	}
}

func TestOwnerModeAndCommandNotification(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "chown to another user needs root")
	}
	c := testenv.StartConsul(t)
	kv := kvClient(t, c)
	put(t, kv, "own/conf", "1")
	dir := t.TempDir()
	marker := filepath.Join(dir, "reloaded")
	yaml := filepath.Join(dir, "configsync.yaml")
	os.WriteFile(yaml, []byte(fmt.Sprintf(`outputs:
  - key: own/conf
    dest: %s/conf
    mode: "0600"
    owner: "1234:5678"
notify-command: touch %s
notify-debounce: 0s
`, dir, marker)), 0o644)
	h := start(t, c, "--config", yaml)
	eventually(t, "first sync", h.synced)
	st, err := os.Stat(dir + "/conf")
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	if st.Mode().Perm() != 0o600 || sys.Uid != 1234 || sys.Gid != 5678 {
		t.Fatalf("mode %v owner %d:%d", st.Mode(), sys.Uid, sys.Gid)
	}
	put(t, kv, "own/conf", "2")
	eventually(t, "command ran", func() bool { _, err := os.Stat(marker); return err == nil })
}

// TestConsulTLS runs a real Consul agent that serves HTTPS only, with a CA
// and server certificate made by `consul tls`, and reads from it with
// CONSUL_CACERT.
func TestConsulTLS(t *testing.T) {
	bin := testenv.Binary(t, "consul")
	certs := t.TempDir()
	for _, args := range [][]string{{"tls", "ca", "create"}, {"tls", "cert", "create", "-server", "-dc", "dc1"}} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = certs
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("consul %v: %v\n%s", args, err, out)
		}
	}
	ca := filepath.Join(certs, "consul-agent-ca.pem")
	ports := make([]string, 6)
	for i := range ports {
		ports[i] = fmt.Sprint(testenv.FreePort(t))
	}
	hcl := fmt.Sprintf(`ports { http = -1, https = %s, grpc_tls = -1 }
tls { defaults { ca_file = %q, cert_file = %q, key_file = %q, verify_incoming = false } }`,
		ports[0], ca, filepath.Join(certs, "dc1-server-consul-0.pem"), filepath.Join(certs, "dc1-server-consul-0-key.pem"))
	addr := "127.0.0.1:" + ports[0]
	tlsCfg := api.TLSConfig{CAFile: ca}
	client := func() *api.Client {
		cl, err := api.NewClient(&api.Config{Address: addr, Scheme: "https", TLSConfig: tlsCfg})
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	p := testenv.NewProcess(t, "consul-tls", []string{bin, "agent", "-dev", "-client", "127.0.0.1", "-bind", "127.0.0.1",
		"-dns-port", ports[1], "-server-port", ports[2], "-serf-lan-port", ports[3], "-serf-wan-port", ports[4], "-grpc-port", ports[5],
		"-hcl", hcl, "-log-level", "warn"}, nil, func() error {
		leader, err := client().Status().Leader()
		if err == nil && leader == "" {
			err = fmt.Errorf("no leader yet")
		}
		return err
	})
	p.Start()
	if _, err := client().KV().Put(&api.KVPair{Key: "tls/conf", Value: []byte("secure")}, nil); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	code, out := runOnce(t, []string{"CONSUL_HTTP_ADDR=https://" + addr, "CONSUL_CACERT=" + ca}, "--file", "tls/conf="+dir+"/conf")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if b, _ := os.ReadFile(dir + "/conf"); string(b) != "secure" {
		t.Fatalf("conf = %q", b)
	}
	// The source URL form of the same.
	code, out = runOnce(t, []string{"CONFIG_SOURCE=consul+https://" + addr + "/tls", "CONSUL_CACERT=" + ca}, "--dest", dir+"/tree")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if b, _ := os.ReadFile(dir + "/tree/conf"); string(b) != "secure" {
		t.Fatalf("tree/conf = %q", b)
	}
	// A CA that did not sign Consul's certificate is the configuration's
	// fault: --once exits 2 at once instead of retrying.
	other := t.TempDir()
	cmd := exec.Command(bin, "tls", "ca", "create")
	cmd.Dir = other
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("consul tls ca create: %v\n%s", err, out)
	}
	code, out = runOnce(t, []string{"CONSUL_HTTP_ADDR=https://" + addr, "CONSUL_CACERT=" + filepath.Join(other, "consul-agent-ca.pem")},
		"--file", "tls/conf="+dir+"/wrong-ca")
	if code != app.ExitConfig || !strings.Contains(out, "certificate") {
		t.Fatalf("wrong CA: exit %d, want 2:\n%s", code, out)
	}
}

func TestPollingMode(t *testing.T) {
	c := testenv.StartConsul(t)
	kv := kvClient(t, c)
	put(t, kv, "poll/conf", "1")
	dir := t.TempDir()
	h := start(t, c, "--blocking=false", "--sync-interval", "200ms", "--consistency", "stale", "--file", "poll/conf="+dir+"/conf")
	eventually(t, "first sync", fileIs(dir+"/conf", "1"))
	put(t, kv, "poll/conf", "2")
	eventually(t, "polled change", fileIs(dir+"/conf", "2"))
	if h.metric("sidecarkit_configsync_errors_total", "stage", "consul") != 0 {
		t.Fatal("consul errors while polling")
	}
}
