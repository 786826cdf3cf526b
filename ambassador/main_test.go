package ambassador_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// suite is what TestMain shares with the tests: the built binary, every log
// line any ambassador wrote during the run (and its /metrics at stop), and
// every secret value the tests used — at the end no value may appear in any
// of those lines.
type suite struct {
	bin    string
	logDir string

	mu      sync.Mutex
	secrets map[string]string // value -> what it is
}

var s suite // set once by TestMain, read-only for the tests except through its mutex

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ambassador-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s = suite{bin: filepath.Join(dir, "ambassador"), logDir: filepath.Join(dir, "logs"), secrets: map[string]string{}}
	os.MkdirAll(s.logDir, 0o755)
	out, err := exec.Command("go", "build", "-o", s.bin, "./cmd/ambassador").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build ambassador: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	if leaks := s.leaks(); len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "SECRET VALUES IN LOGS:\n%s\n", strings.Join(leaks, "\n"))
		code = 1
	} else {
		fmt.Fprintf(os.Stderr, "log audit: %d secret values, none in %s\n", len(s.secrets), s.logDir)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// secret registers a value that must never be logged.
func secret(what, v string) string {
	v = strings.TrimSpace(v)
	if len(v) >= 4 {
		s.mu.Lock()
		s.secrets[v] = what
		s.mu.Unlock()
	}
	return v
}

// leaks greps every captured log line for every secret value.
func (s *suite) leaks() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	files, _ := filepath.Glob(filepath.Join(s.logDir, "*.log"))
	lines := 0
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			lines++
			for v, what := range s.secrets {
				if strings.Contains(sc.Text(), v) {
					out = append(out, fmt.Sprintf("%s: %s found in: %s", filepath.Base(f), what, sc.Text()))
				}
			}
		}
		fh.Close()
	}
	if lines == 0 && len(files) > 0 {
		out = append(out, "no log lines captured: the audit would prove nothing")
	}
	return out
}

// amb is one ambassador process.
type amb struct {
	t     *testing.T
	cmd   *exec.Cmd
	admin string
	proxy string
	log   string
	done  chan struct{}
	code  int
}

// startAmb runs the ambassador binary with args (admin and proxy ports are
// added) and returns at once.
func startAmb(t *testing.T, args []string, env ...string) *amb {
	t.Helper()
	a := &amb{t: t, admin: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), proxy: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), done: make(chan struct{})}
	a.log = filepath.Join(s.logDir, fmt.Sprintf("%s-%d.log", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano()))
	lf, err := os.Create(a.log)
	if err != nil {
		t.Fatal(err)
	}
	full := append([]string{"run", "--admin-addr", a.admin, "--proxy-addr", a.proxy, "--drain-delay", "0", "--log-level", "debug"}, args...)
	a.cmd = exec.Command(s.bin, full...)
	a.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	a.cmd.Stdout, a.cmd.Stderr = lf, lf
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		a.cmd.Wait()
		lf.Close()
		a.code = a.cmd.ProcessState.ExitCode()
		close(a.done)
	}()
	t.Cleanup(func() {
		a.stop()
		if t.Failed() {
			t.Logf("ambassador log:\n%s", tailOf(a.logText(), 6000))
		}
	})
	return a
}

func (a *amb) logText() string { b, _ := os.ReadFile(a.log); return string(b) }

func tailOf(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// stop sends SIGTERM and waits (SIGKILL after 20 s).
func (a *amb) stop() int {
	select {
	case <-a.done:
		return a.code
	default:
	}
	// The metrics join the audit: no secret value may appear there either.
	if code, body := a.get("/metrics"); code == 200 {
		os.WriteFile(strings.TrimSuffix(a.log, ".log")+"-metrics.log", []byte(body), 0o644)
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(20 * time.Second):
		a.cmd.Process.Kill()
		<-a.done
	}
	return a.code
}

// wait waits for the process to exit by itself.
func (a *amb) wait(d time.Duration) int {
	a.t.Helper()
	select {
	case <-a.done:
		return a.code
	case <-time.After(d):
		a.t.Fatalf("ambassador still running after %v", d)
		return -1
	}
}

func (a *amb) get(path string) (int, string) {
	resp, err := http.Get("http://" + a.admin + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// ready waits until /readyz answers 200.
func (a *amb) ready(d time.Duration) {
	a.t.Helper()
	eventually(a.t, d, "ambassador ready", func() error {
		select {
		case <-a.done:
			return fmt.Errorf("exited with %d", a.code)
		default:
		}
		if code, body := a.get("/readyz?verbose"); code != 200 {
			return fmt.Errorf("readyz %d: %s", code, body)
		}
		return nil
	})
}

// metric returns the sum of the samples of a metric whose line starts with prefix.
func (a *amb) metric(prefix string) float64 {
	_, body := a.get("/metrics")
	var sum float64
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			var v float64
			f := strings.Fields(l)
			fmt.Sscanf(f[len(f)-1], "%g", &v)
			sum += v
		}
	}
	return sum
}

// eventually polls f until it returns nil, failing the test after d. The
// bound only stops a broken test; it asserts nothing about speed.
func eventually(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v: %v", what, d, err)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return string(b)
}

func writeFile(t *testing.T, p, content string) string {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// cli runs the vault CLI and returns its trimmed output.
func cli(t *testing.T, v *testenv.Vault, args ...string) string {
	t.Helper()
	return strings.TrimSpace(v.CLI(t, args...))
}

var _ = bytes.NewReader
var _ = context.Background

func runWait(admin string) (string, error) {
	out, err := exec.Command(s.bin, "wait", "--admin-addr", admin, "--timeout", "10s").CombinedOutput()
	return string(out), err
}
