// Package e2e brings the whole sidecarkit pod up in docker compose
// (integration/compose.yaml: pause, initnet, proxy, ambassador, configsync,
// adapter, the demo app, real Vault, Consul and VictoriaLogs) and checks it
// end to end from outside the pod. It needs Docker and docker-compose v1.29+;
// without them it fails in CI and skips elsewhere.
package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/integration/demoapp/load"
	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// stack is one compose project of the demo pod.
type stack struct {
	t       *testing.T
	project string
	file    string
	env     []string
	http    *http.Client

	app, prom, vlogs string // host addresses 127.0.0.1:port
}

func (s *stack) dc(ctx context.Context, args ...string) (string, error) {
	full := append([]string{"-p", s.project, "-f", s.file}, args...)
	cmd := exec.CommandContext(ctx, "docker-compose", full...)
	cmd.Env = append(os.Environ(), s.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("docker-compose %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), err
}

func (s *stack) mustDC(args ...string) string {
	s.t.Helper()
	// Bounds a hung docker-compose; `up` on a loaded machine may wait for
	// the helpers' health checks (start_period 60 s) before it returns.
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	out, err := s.dc(ctx, args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

func (s *stack) port(service string, port int) string {
	s.t.Helper()
	out := strings.TrimSpace(s.mustDC("port", service, strconv.Itoa(port)))
	if out == "" || strings.HasSuffix(out, ":0") {
		s.t.Fatalf("no host port for %s:%d (%q)", service, port, out)
	}
	return out
}

func (s *stack) get(url string, hdr ...string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// eventually polls f until it returns nil or the timeout passes. Timeouts
// here bound the test, they do not measure anything.
func eventually(t *testing.T, what string, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if last = f(); last == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func fingerprint(v string) string {
	s := sha256.Sum256([]byte(v))
	return hex.EncodeToString(s[:])[:16]
}

// leftovers lists the project's containers, volumes and networks.
func leftovers(project string) string {
	var all []string
	for _, kind := range []string{"ps -aq", "volume ls -q", "network ls -q"} {
		args := append(strings.Fields(kind), "--filter", "label=com.docker.compose.project="+project)
		out, _ := exec.Command("docker", args...).Output()
		if s := strings.TrimSpace(string(out)); s != "" {
			all = append(all, kind+": "+strings.ReplaceAll(s, "\n", " "))
		}
	}
	return strings.Join(all, "; ")
}

func requireTools(t *testing.T) {
	t.Helper()
	testenv.RequireDocker(t)
	if _, err := exec.LookPath("docker-compose"); err != nil {
		testenv.Unavailable(t, "docker-compose (v1.29+) not installed: apt-get install -y docker-compose")
	}
	// The server images are built from the `make testenv` binaries when
	// missing.
	for _, b := range []string{"vault", "consul", "victorialogs"} {
		if exec.Command("docker", "image", "inspect", "sidecarkit/server-"+b+":latest").Run() != nil {
			testenv.Binary(t, b)
		}
	}
}

// buildImages builds our images from the current tree (Go's build cache makes
// a rebuild quick) and the server images when missing.
func buildImages(t *testing.T, dir string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"proxy", "ambassador", "adapter", "configsync", "pause", "demoapp"},
		{"--missing", "server-vault", "server-consul", "server-victorialogs"},
	} {
		cmd := exec.CommandContext(ctx, filepath.Join(dir, "images.sh"), args...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("images.sh %v: %v\n%s", args, err, out)
		}
		t.Logf("images.sh %v:\n%s", args, lastLines(string(out), 12))
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func TestPodEndToEnd(t *testing.T) {
	requireTools(t)
	dir, _ := filepath.Abs("..")
	buildImages(t, dir)

	s := &stack{
		t:       t,
		project: fmt.Sprintf("sk-e2e-%d", os.Getpid()),
		file:    filepath.Join(dir, "compose.yaml"),
		// Empty host ports: docker picks free ones, so parallel runs and other
		// engineers' stacks never collide.
		env:  []string{"SK_APP_PORT=", "SK_PROXY_ADMIN_PORT=", "SK_PROXY_PROM_PORT=", "SK_VAULT_PORT=", "SK_CONSUL_PORT=", "SK_VLOGS_PORT="},
		http: &http.Client{Timeout: 15 * time.Second},
	}
	downed := false
	t.Cleanup(func() {
		if t.Failed() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			out, _ := s.dc(ctx, "ps")
			logs, _ := s.dc(ctx, "logs", "--no-color", "--tail=80")
			cancel()
			t.Logf("docker-compose ps:\n%s\nlogs:\n%s", out, logs)
		}
		if !downed {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			s.dc(ctx, "--profile", "tools", "down", "--volumes", "--remove-orphans", "--timeout", "10")
			cancel()
		}
	})

	start := time.Now()
	s.mustDC("up", "-d", "--remove-orphans")
	s.app, s.prom, s.vlogs = s.port("pod", 8080), s.port("pod", 15090), s.port("victorialogs", 9428)
	eventually(t, "app ready through the proxy", 2*time.Minute, func() error {
		code, body, err := s.get("http://" + s.app + "/readyz")
		if err == nil && code != 200 {
			err = fmt.Errorf("HTTP %d: %s", code, body)
		}
		return err
	})
	t.Logf("stack up and the app ready after %s", time.Since(start).Round(time.Second))
	run := fmt.Sprintf("e2e%d", time.Now().UnixNano())
	secrets := []string{"initial-password-1"}

	t.Run("startup order: init, then helpers ready, then the app", func(t *testing.T) {
		state := func(svc string) (started, finished time.Time, exit string) {
			id := strings.TrimSpace(s.mustDC("ps", "-q", svc))
			out, err := exec.Command("docker", "inspect", "-f", "{{.State.StartedAt}} {{.State.FinishedAt}} {{.State.ExitCode}}", id).Output()
			f := strings.Fields(string(out))
			if err != nil || len(f) != 3 {
				t.Fatalf("inspect %s: %v %q", svc, err, out)
			}
			started, _ = time.Parse(time.RFC3339Nano, f[0])
			finished, _ = time.Parse(time.RFC3339Nano, f[1])
			return started, finished, f[2]
		}
		_, initDone, code := state("init")
		if code != "0" {
			t.Fatalf("init exited %s", code)
		}
		for _, svc := range []string{"proxy", "ambassador", "configsync", "adapter", "app"} {
			if st, _, _ := state(svc); !st.After(initDone) {
				t.Errorf("%s started at %s, before init finished at %s", svc, st, initDone)
			}
		}
		// The app's first load already had the secret and the settings: the
		// helpers had rendered them before it started.
		_, body, err := s.get("http://" + s.app + "/state")
		var h struct {
			SHA      string            `json:"password_sha256"`
			Settings map[string]string `json:"settings"`
			Reloads  int               `json:"reloads"`
		}
		if err != nil || json.Unmarshal([]byte(body), &h) != nil || h.SHA != fingerprint("initial-password-1") || h.Settings["greeting"] != "hello" {
			t.Fatalf("app state at start: %v %s", err, body)
		}
		vl := &testenv.VictoriaLogs{URL: "http://" + s.vlogs}
		eventually(t, "the app's start line in VictoriaLogs", time.Minute, func() error {
			if n := vl.Count(t, `event:reload trigger:start password_sha256:`+h.SHA); n != 1 {
				return fmt.Errorf("%d start lines with the secret loaded", n)
			}
			if n := vl.Count(t, `event:reload trigger:retry`); n != 0 {
				return fmt.Errorf("the app had to retry loading %d times: it started before its files existed", n)
			}
			return nil
		})
	})

	t.Run("inbound through the proxy", func(t *testing.T) {
		rid := run + "-inbound"
		code, body, err := s.get("http://"+s.app+"/?tag="+run, "X-Request-Id", rid)
		if err != nil || code != 200 || !strings.Contains(body, "from demoapp") {
			t.Fatalf("GET / through the pod's port: %d %q %v", code, body, err)
		}
		// The client container outside the pod, by the pod's name.
		out := s.mustDC("run", "--rm", "client", "get", "http://pod:8080/")
		if !strings.Contains(out, "from demoapp") {
			t.Fatalf("client container: %s", out)
		}
		eventually(t, "the proxy's access log shows the request", 30*time.Second, func() error {
			logs := s.mustDC("logs", "--no-color", "proxy")
			if !strings.Contains(logs, rid) {
				return fmt.Errorf("request id %s not in the proxy's access log:\n%s", rid, lastLines(logs, 5))
			}
			return nil
		})
		_, metrics, err := s.get("http://" + s.prom + "/stats/prometheus")
		if n := metricSum(metrics, "sidecarkit_proxy_requests_total", `listener="inbound"`, `code_class="2xx"`); err != nil || n < 2 {
			t.Fatalf("proxy metrics: %v inbound 2xx requests (%v), want >= 2:\n%s", n, err, grepLines(metrics, "sidecarkit_proxy_requests_total"))
		}
	})

	t.Run("upstream through the outbound listener", func(t *testing.T) {
		rid := run + "-outbound"
		_, before, _ := s.get("http://" + s.prom + "/stats/prometheus")
		code, body, err := s.get("http://"+s.app+"/upstream", "X-Request-Id", rid)
		if err != nil || code != 200 {
			t.Fatalf("GET /upstream: %d %s %v", code, body, err)
		}
		var r struct {
			Status int `json:"upstream_status"`
			Body   struct {
				Service string              `json:"service"`
				Headers map[string][]string `json:"headers"`
			} `json:"upstream_body"`
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil || r.Status != 200 || r.Body.Service != "upstream" {
			t.Fatalf("upstream answer: %v %s", err, body)
		}
		if via := r.Body.Headers["Via"]; len(via) == 0 {
			t.Errorf("the upstream saw no Via header from the proxy: %v", r.Body.Headers)
		}
		_, after, _ := s.get("http://" + s.prom + "/stats/prometheus")
		out := func(m string) float64 {
			return metricSum(m, "sidecarkit_proxy_requests_total", `listener="outbound"`, `code_class="2xx"`)
		}
		if out(after) <= out(before) {
			t.Errorf("outbound 2xx requests did not grow: %v -> %v", out(before), out(after))
		}
		eventually(t, "the proxy's access log shows the outbound call", 30*time.Second, func() error {
			logs := s.mustDC("logs", "--no-color", "proxy")
			n := 0
			for _, l := range strings.Split(logs, "\n") {
				if strings.Contains(l, rid) && strings.Contains(l, `"listener":"outbound"`) && strings.Contains(l, "upstream:9090") {
					n++
				}
			}
			if n == 0 {
				return fmt.Errorf("no outbound access log line with %s:\n%s", rid, grepLines(logs, rid))
			}
			return nil
		})
	})

	t.Run("secret rotated in Vault reaches the app", func(t *testing.T) {
		pw := "rotated-" + run
		secrets = append(secrets, pw)
		s.mustDC("exec", "-T", "vault", "vault", "kv", "put", "secret/demoapp", "username=demoapp", "password="+pw)
		want := fingerprint(pw)
		eventually(t, "the app holds the new password", time.Minute, func() error {
			_, body, err := s.get("http://" + s.app + "/state")
			if err != nil {
				return err
			}
			var h struct {
				SHA string `json:"password_sha256"`
			}
			json.Unmarshal([]byte(body), &h)
			if h.SHA != want {
				return fmt.Errorf("app holds password %s, want %s", h.SHA, want)
			}
			return nil
		})
		// The app reads Vault itself through the ambassador's API proxy on
		// 127.0.0.1:8200, with no token of its own.
		code, body, err := s.get("http://" + s.app + "/vault")
		var v struct {
			SHA     string `json:"password_sha256"`
			Version int    `json:"version"`
		}
		if err != nil || code != 200 || json.Unmarshal([]byte(body), &v) != nil || v.SHA != want || v.Version < 2 {
			t.Fatalf("GET /vault through the ambassador's proxy: %d %v %s", code, err, body)
		}
	})

	t.Run("Consul change reaches the app's config", func(t *testing.T) {
		greeting := "bonjour-" + run
		s.mustDC("exec", "-T", "consul", "consul", "kv", "put", "config/demoapp/greeting", greeting)
		eventually(t, "the app greets with the new setting", time.Minute, func() error {
			_, body, err := s.get("http://" + s.app + "/")
			if err == nil && !strings.HasPrefix(body, greeting+" ") {
				err = fmt.Errorf("app says %q", body)
			}
			return err
		})
	})

	t.Run("a killed helper is restarted and keeps working", func(t *testing.T) {
		// restart: on-failure plays the native sidecar's restartPolicy: Always.
		// A crash, not `docker kill` (Docker never restarts a container it
		// was told to stop): SIGKILL the helper's process from the host.
		id := strings.TrimSpace(s.mustDC("ps", "-q", "configsync"))
		out, err := exec.Command("docker", "inspect", "-f", "{{.State.Pid}}", id).Output()
		pid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
		if err != nil || pid <= 0 {
			t.Fatalf("configsync pid: %v %q", err, out)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			testenv.Unavailable(t, "cannot SIGKILL configsync (pid %d) from the host: %v", pid, err)
		}
		eventually(t, "configsync restarted and healthy", 2*time.Minute, func() error {
			out, _ := exec.Command("docker", "inspect", "-f", "{{.RestartCount}} {{.State.Health.Status}}", id).Output()
			if f := strings.Fields(string(out)); len(f) != 2 || f[0] == "0" || f[1] != "healthy" {
				return fmt.Errorf("configsync: %q", out)
			}
			return nil
		})
		greeting := "hola-" + run
		s.mustDC("exec", "-T", "consul", "consul", "kv", "put", "config/demoapp/greeting", greeting)
		eventually(t, "the app greets with the setting written after the restart", time.Minute, func() error {
			_, body, err := s.get("http://" + s.app + "/")
			if err == nil && !strings.HasPrefix(body, greeting+" ") {
				err = fmt.Errorf("app says %q", body)
			}
			return err
		})
	})

	t.Run("app log lines arrive in VictoriaLogs normalized, none missing", func(t *testing.T) {
		const n = 2000
		tag := run + "logs"
		code, body, err := s.get(fmt.Sprintf("http://%s/log?n=%d&tag=%s", s.app, n, tag))
		if err != nil || code != 200 {
			t.Fatalf("GET /log: %d %s %v", code, body, err)
		}
		vl := &testenv.VictoriaLogs{URL: "http://" + s.vlogs}
		q := "tag:" + tag + " event:synthetic"
		eventually(t, "all lines in VictoriaLogs", 2*time.Minute, func() error {
			if c := vl.Count(t, q); c != n {
				return fmt.Errorf("%d of %d lines", c, n)
			}
			return nil
		})
		seen := make(map[int]int, n)
		for i, line := range vl.Query(t, q) {
			var doc map[string]any
			if err := json.Unmarshal([]byte(line), &doc); err != nil {
				t.Fatalf("not JSON: %s", line)
			}
			if i == 0 {
				t.Logf("first document: %s", line)
				for _, f := range []string{"_time", "level", "order_id", "status"} {
					if _, ok := doc[f]; !ok {
						t.Errorf("document has no %q field: %s", f, line)
					}
				}
				if doc["level"] != "INFO" || doc["status"] != "FULFILLED" {
					t.Errorf("fields not parsed from the legacy line: %s", line)
				}
			}
			k, _ := strconv.Atoi(fmt.Sprint(doc["n"]))
			seen[k]++
		}
		for i := 1; i <= n; i++ {
			if seen[i] != 1 {
				t.Errorf("line n=%d arrived %d times", i, seen[i])
			}
		}
	})

	t.Run("no secret in any log", func(t *testing.T) {
		logs := s.mustDC("logs", "--no-color")
		for _, v := range secrets {
			if strings.Contains(logs, v) {
				t.Errorf("a container log contains the secret value %q", v)
			}
		}
	})

	t.Run("docker-compose stop under load drains with zero failed requests", func(t *testing.T) {
		started := make(chan struct{})
		res := make(chan load.Result, 1)
		go func() {
			res <- load.Run(context.Background(), load.Options{
				URL:         "http://" + s.app + "/work?delay=300ms",
				ReadyURL:    "http://" + s.app + "/readyz",
				Concurrency: 8,
				Duration:    2 * time.Minute,
			}, started)
		}()
		select {
		case <-started:
		case r := <-res:
			t.Fatalf("load ended before any success: %+v", r)
		}
		time.Sleep(2 * time.Second) // steady state
		s.mustDC("stop", "--timeout", "40")
		r := <-res
		t.Logf("load: %+v", r)
		if r.Failed != 0 || r.OK == 0 || !r.Unready {
			t.Fatalf("drain: %d failed of %d (stopped by unready: %v): %v", r.Failed, r.Sent, r.Unready, r.Errors)
		}
		if r.AfterUnready == 0 {
			t.Errorf("no request was in flight when the drain started; the test proved nothing")
		}
		finished := map[string]time.Time{}
		for _, svc := range []string{"app", "proxy", "ambassador", "configsync", "adapter", "pod", "vault", "consul", "victorialogs"} {
			id := strings.TrimSpace(s.mustDC("ps", "-q", svc))
			out, _ := exec.Command("docker", "inspect", "-f", "{{.State.ExitCode}} {{.State.FinishedAt}}", id).Output()
			f := strings.Fields(string(out))
			if len(f) != 2 {
				t.Fatalf("inspect %s: %q", svc, out)
			}
			finished[svc], _ = time.Parse(time.RFC3339Nano, f[1])
			// The pod's members must exit cleanly; the servers' own exit
			// codes are theirs (consul -dev exits 1 after leaving).
			if f[0] != "0" && svc != "vault" && svc != "consul" && svc != "victorialogs" {
				t.Errorf("%s exited with %s after docker-compose stop", svc, f[0])
			}
		}
		// The order native sidecars give: the app first, then its helpers,
		// then the pod itself and the servers the helpers use.
		for _, h := range []string{"proxy", "ambassador", "configsync", "adapter"} {
			if !finished[h].After(finished["app"]) {
				t.Errorf("%s stopped (%s) before the app (%s)", h, finished[h], finished["app"])
			}
			if !finished["pod"].After(finished[h]) {
				t.Errorf("the pod stopped (%s) before %s (%s)", finished["pod"], h, finished[h])
			}
		}
		for h, srv := range map[string]string{"ambassador": "vault", "configsync": "consul", "adapter": "victorialogs"} {
			if !finished[srv].After(finished[h]) {
				t.Errorf("%s stopped (%s) before %s (%s) could finish with it", srv, finished[srv], h, finished[h])
			}
		}
	})

	t.Run("tear-down leaves nothing behind", func(t *testing.T) {
		s.mustDC("--profile", "tools", "down", "--volumes", "--remove-orphans", "--timeout", "10")
		downed = true
		if left := leftovers(s.project); left != "" {
			t.Fatalf("left behind: %s", left)
		}
	})
}

// metricSum adds the values of the series of metric name whose labels
// contain every one of labels.
func metricSum(metrics, name string, labels ...string) float64 {
	var sum float64
next:
	for _, l := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		for _, lb := range labels {
			if !strings.Contains(l, lb) {
				continue next
			}
		}
		f := strings.Fields(l)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
		}
	}
	return sum
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return lastLines(strings.Join(out, "\n"), 20)
}
