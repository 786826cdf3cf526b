// Package testenv starts the real servers sidecarkit's tests run against —
// Vault, Consul, VictoriaLogs, fortio — on loopback with free ports and temp
// directories, waits until each is ready and stops it when the test ends.
//
// The binaries come from `make testenv` (built from the Go module proxy into
// $SIDECARKIT_CACHE/bin, default ~/.cache/sidecarkit/bin). A missing binary,
// root or Docker skips the test with the command that fixes it — except in CI
// (CI=true), where it fails: a test that cannot run must never pass silently.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// CI reports whether the tests run in CI, where nothing may be skipped.
func CI() bool { v := os.Getenv("CI"); return v != "" && v != "false" && v != "0" }

// Unavailable fails the test in CI and skips it elsewhere, saying why and how
// to fix it.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if CI() {
		t.Fatalf("cannot run in CI: %s", msg)
	}
	t.Skipf("skipped (would fail in CI): %s", msg)
}

// CacheDir is where `make testenv` puts server binaries.
func CacheDir() string {
	if d := os.Getenv("SIDECARKIT_CACHE"); d != "" {
		return filepath.Join(d, "bin")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "sidecarkit", "bin")
}

// Binary returns the path of a testenv binary (vault, consul, victorialogs,
// fortio, consul-template, jaeger), or calls Unavailable.
func Binary(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(CacheDir(), name)
	if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
		Unavailable(t, "%s not built at %s: run `make testenv` (or `integration/testenv/build.sh %s`)", name, p, name)
	}
	return p
}

// Tool returns the path of a program on PATH (nginx, haproxy, curl, ...), or
// calls Unavailable with the apt package to install.
func Tool(t testing.TB, name, aptPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
			if _, serr := os.Stat(filepath.Join(dir, name)); serr == nil {
				return filepath.Join(dir, name)
			}
		}
		Unavailable(t, "%s not installed: apt-get install -y %s", name, aptPackage)
	}
	return p
}

// RequireRoot calls Unavailable unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "needs root (network namespaces, iptables)")
	}
}

// RequireDocker calls Unavailable unless a Docker engine answers.
func RequireDocker(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		Unavailable(t, "docker not installed")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		Unavailable(t, "docker engine not reachable: %v: %s", err, bytes.TrimSpace(out))
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Process is a server started by a test; it can be stopped and started again
// on the same ports and data directory.
type Process struct {
	t       testing.TB
	name    string
	argv    []string
	env     []string
	ready   func() error
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start launches the process and waits up to 60 s until ready() succeeds.
func (p *Process) Start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatalf("%s: log file: %v", p.name, err)
	}
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		p.t.Fatalf("%s: start %v: %v", p.name, p.argv, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	p.cmd, p.done = cmd, done
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			p.cmd = nil
			p.t.Fatalf("%s exited while starting; log %s:\n%s", p.name, p.logPath, tail(p.logPath))
		default:
		}
		if last = p.ready(); last == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.t.Fatalf("%s not ready after 60s: %v; log:\n%s", p.name, last, tail(p.logPath))
}

// Stop sends SIGTERM (SIGINT for servers that ignore it) and waits for exit,
// killing after 20 s.
func (p *Process) Stop() { p.stop(syscall.SIGTERM) }

// Kill sends SIGKILL and waits.
func (p *Process) Kill() { p.stop(syscall.SIGKILL) }

func (p *Process) stop(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	p.cmd = nil
}

// Log returns what the process wrote so far.
func (p *Process) Log() string { b, _ := os.ReadFile(p.logPath); return string(b) }

// Pid returns the running process's pid (0 when stopped).
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// NewProcess prepares (without starting) a server process that a test owns;
// it is stopped at cleanup. ready is polled until it returns nil.
func NewProcess(t testing.TB, name string, argv, env []string, ready func() error) *Process {
	t.Helper()
	p := &Process{t: t, name: name, argv: argv, env: env, ready: ready, logPath: filepath.Join(t.TempDir(), name+".log")}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s log (%s):\n%s", name, p.logPath, tail(p.logPath))
		}
	})
	return p
}

func httpReady(url string, want func(*http.Response, []byte) error) func() error {
	c := &http.Client{Timeout: time.Second}
	return func() error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		if want != nil {
			return want(resp, buf.Bytes())
		}
		if resp.StatusCode != 200 {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	}
}

// Vault is a dev-mode Vault server with root token "root".
type Vault struct {
	*Process
	Addr  string // http://127.0.0.1:port
	Token string
}

// StartVault starts `vault server -dev` on a free port.
func StartVault(t testing.TB) *Vault {
	t.Helper()
	bin := Binary(t, "vault")
	port := FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	home := t.TempDir()
	p := NewProcess(t, "vault", []string{bin, "server", "-dev", "-dev-root-token-id=root", "-dev-listen-address=" + addr, "-dev-no-store-token"},
		[]string{"HOME=" + home, "VAULT_ADDR=http://" + addr, "VAULT_DISABLE_MLOCK=true", "SKIP_SETCAP=1"},
		httpReady("http://"+addr+"/v1/sys/health", nil))
	p.Start()
	return &Vault{Process: p, Addr: "http://" + addr, Token: "root"}
}

// CLI runs the vault CLI against this server and returns its combined output.
func (v *Vault) CLI(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(v.argv[0], args...)
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+v.Addr, "VAULT_TOKEN="+v.Token, "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("vault %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Consul is a dev-mode Consul agent.
type Consul struct {
	*Process
	Addr string // 127.0.0.1:port (the form CONSUL_HTTP_ADDR takes)
	URL  string // http://127.0.0.1:port
}

// StartConsul starts `consul agent -dev` with free ports. Its data lives in
// memory: Stop+Start gives an empty agent whose index starts again (a real
// "index went backwards" case).
func StartConsul(t testing.TB) *Consul {
	t.Helper()
	bin := Binary(t, "consul")
	ports := make([]int, 6)
	for i := range ports {
		ports[i] = FreePort(t)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	argv := []string{bin, "agent", "-dev", "-client", "127.0.0.1", "-bind", "127.0.0.1",
		"-http-port", strconv.Itoa(ports[0]), "-dns-port", strconv.Itoa(ports[1]), "-server-port", strconv.Itoa(ports[2]),
		"-serf-lan-port", strconv.Itoa(ports[3]), "-serf-wan-port", strconv.Itoa(ports[4]), "-grpc-port", strconv.Itoa(ports[5]),
		"-hcl", "ports { grpc_tls = -1 }", "-log-level", "warn"}
	p := NewProcess(t, "consul", argv, nil, httpReady("http://"+addr+"/v1/status/leader", func(r *http.Response, b []byte) error {
		if r.StatusCode != 200 || len(bytes.Trim(b, "\" \n")) == 0 {
			return errors.New("no leader yet")
		}
		return nil
	}))
	p.Start()
	return &Consul{Process: p, Addr: addr, URL: "http://" + addr}
}

// VictoriaLogs is a VictoriaLogs server (accepts the Elasticsearch bulk API at
// URL+"/insert/elasticsearch/_bulk"; read back with URL+"/select/logsql/query").
type VictoriaLogs struct {
	*Process
	URL string
}

// StartVictoriaLogs starts VictoriaLogs on a free port with its data in a temp
// dir that survives Stop/Start. Stop it with SIGTERM (Stop): SIGKILL loses the
// last seconds it acknowledged.
func StartVictoriaLogs(t testing.TB) *VictoriaLogs {
	t.Helper()
	bin := Binary(t, "victorialogs")
	port := FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := NewProcess(t, "victorialogs", []string{bin, "-httpListenAddr=" + addr, "-storageDataPath=" + t.TempDir(), "-loggerLevel=WARN", "-retentionPeriod=100y"}, nil,
		httpReady("http://"+addr+"/health", nil))
	p.Start()
	return &VictoriaLogs{Process: p, URL: "http://" + addr}
}

// Count returns the number of log entries matching the LogsQL query q.
func (v *VictoriaLogs) Count(t testing.TB, q string) int {
	t.Helper()
	resp, err := http.PostForm(v.URL+"/select/logsql/query", map[string][]string{"query": {q + " | stats count() n"}})
	if err != nil {
		t.Fatalf("victorialogs query: %v", err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("victorialogs query %q: HTTP %d: %s", q, resp.StatusCode, buf.String())
	}
	// One JSON line: {"n":"123"}
	s := buf.String()
	i := strings.Index(s, `"n":"`)
	if i < 0 {
		return 0
	}
	s = s[i+5:]
	n, _ := strconv.Atoi(s[:strings.IndexByte(s, '"')])
	return n
}

// Query returns the raw JSON lines of the LogsQL query q.
func (v *VictoriaLogs) Query(t testing.TB, q string) []string {
	t.Helper()
	resp, err := http.PostForm(v.URL+"/select/logsql/query", map[string][]string{"query": {q}})
	if err != nil {
		t.Fatalf("victorialogs query: %v", err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("victorialogs query %q: HTTP %d: %s", q, resp.StatusCode, buf.String())
	}
	var out []string
	for _, l := range strings.Split(buf.String(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// Fortio is fortio's echo server (`fortio server`): it answers
// ?status=503:50&delay=10ms:20 and echoes bodies.
type Fortio struct {
	*Process
	Addr string // 127.0.0.1:port
}

// StartFortioServer starts `fortio server` on a free HTTP port.
func StartFortioServer(t testing.TB) *Fortio {
	t.Helper()
	bin := Binary(t, "fortio")
	port := FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := NewProcess(t, "fortio", []string{bin, "server", "-http-port", addr, "-grpc-port", "disabled", "-redirect-port", "disabled", "-loglevel", "warning"}, nil,
		httpReady("http://"+addr+"/debug", nil))
	p.Start()
	return &Fortio{Process: p, Addr: addr}
}

func (v *VictoriaLogs) waitABit() { time.Sleep(100 * time.Millisecond) }

// Jaeger is a Jaeger all-in-one (in-memory storage) receiving OTLP.
type Jaeger struct {
	*Process
	OTLPHTTP string // http://127.0.0.1:port (append /v1/traces)
	OTLPGRPC string // http://127.0.0.1:port
	Query    string // http://127.0.0.1:port (GET /api/traces/<trace id>)
}

// StartJaeger starts Jaeger all-in-one on free ports.
func StartJaeger(t testing.TB) *Jaeger {
	t.Helper()
	bin := Binary(t, "jaeger")
	hp := func() string { return fmt.Sprintf("127.0.0.1:%d", FreePort(t)) }
	otlpHTTP, otlpGRPC, query, admin := hp(), hp(), hp(), hp()
	argv := []string{bin, "--collector.otlp.http.host-port=" + otlpHTTP, "--collector.otlp.grpc.host-port=" + otlpGRPC,
		"--query.http-server.host-port=" + query, "--query.grpc-server.host-port=" + hp(), "--admin.http.host-port=" + admin,
		"--collector.grpc-server.host-port=" + hp(), "--collector.http-server.host-port=" + hp(), "--log-level=warn"}
	p := NewProcess(t, "jaeger", argv, []string{"SPAN_STORAGE_TYPE=memory"}, httpReady("http://"+query+"/api/services", nil))
	p.Start()
	return &Jaeger{Process: p, OTLPHTTP: "http://" + otlpHTTP, OTLPGRPC: "http://" + otlpGRPC, Query: "http://" + query}
}
