// Command ambench is the ambassador's side-by-side benchmark against Vault
// Agent (integration/bench/ambassador.sh runs it): the same Vault, the same
// KV v2 secret, the same AppRole and the same refresh interval for both.
// It measures kv-put → file-updated and kv-put → app-notified latency over N
// rotations, the API proxy's added latency at a fixed rate with fortio, and
// steady RSS and CPU, and writes a Markdown report of ratios.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

type opts struct {
	vault, ambassador, fortio string
	out                       string
	rotations                 int
	refresh                   time.Duration
	qps                       int
	loadDur                   time.Duration
	steady                    time.Duration
}

func main() {
	var o opts
	flag.StringVar(&o.vault, "vault", "", "vault binary (server and agent)")
	flag.StringVar(&o.ambassador, "ambassador", "", "ambassador binary")
	flag.StringVar(&o.fortio, "fortio", "", "fortio binary")
	flag.StringVar(&o.out, "out", "", "Markdown report to write")
	flag.IntVar(&o.rotations, "rotations", 200, "secret rotations")
	flag.DurationVar(&o.refresh, "refresh", time.Second, "static secret refresh interval for both")
	flag.IntVar(&o.qps, "qps", 200, "API proxy load rate")
	flag.DurationVar(&o.loadDur, "load", 15*time.Second, "duration of one fortio run")
	flag.DurationVar(&o.steady, "steady", 30*time.Second, "steady-state RSS/CPU sampling window")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "ambench:", err)
		os.Exit(1)
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type proc struct {
	name string
	cmd  *exec.Cmd
}

func start(name, logPath string, argv []string, env []string) (*proc, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { cmd.Wait(); lf.Close() }()
	return &proc{name: name, cmd: cmd}, nil
}

func (p *proc) stop() {
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	time.Sleep(500 * time.Millisecond)
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

func waitHTTP(url string, want int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer %d within %v", url, want, d)
}

type vaultAPI struct{ addr, token string }

func (v vaultAPI) do(method, path string, body any) (map[string]any, error) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, v.addr+"/v1/"+path, r)
	req.Header.Set("X-Vault-Token", v.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: HTTP %d %s", method, path, resp.StatusCode, b)
	}
	var out map[string]any
	json.Unmarshal(b, &out)
	return out, nil
}

func run(o opts) error {
	la, _ := os.ReadFile("/proc/loadavg")
	loadStart := strings.Join(strings.Fields(string(la))[:3], " ")
	dir, err := os.MkdirTemp("", "ambench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()

	// Vault (dev mode).
	vport := freePort()
	vaddr := fmt.Sprintf("http://127.0.0.1:%d", vport)
	vp, err := start("vault", filepath.Join(dir, "vault.log"), []string{o.vault, "server", "-dev", "-dev-root-token-id=root",
		fmt.Sprintf("-dev-listen-address=127.0.0.1:%d", vport), "-dev-no-store-token"}, []string{"HOME=" + dir, "VAULT_DISABLE_MLOCK=true", "SKIP_SETCAP=1"})
	if err != nil {
		return err
	}
	procs = append(procs, vp)
	if err := waitHTTP(vaddr+"/v1/sys/health", 200, 60*time.Second); err != nil {
		return err
	}
	v := vaultAPI{vaddr, "root"}
	steps := []struct {
		m, p string
		b    any
	}{
		{"POST", "sys/auth/approle", map[string]any{"type": "approle"}},
		{"PUT", "sys/policies/acl/bench", map[string]any{"policy": `path "secret/data/*" { capabilities = ["read"] }`}},
		{"POST", "auth/approle/role/bench", map[string]any{"token_policies": "bench", "token_ttl": "1h"}},
		{"POST", "secret/data/bench", map[string]any{"data": map[string]any{"value": "0", "padding": strings.Repeat("x", 512)}}},
	}
	for _, s := range steps {
		if _, err := v.do(s.m, s.p, s.b); err != nil {
			return err
		}
	}
	rid, err := v.do("GET", "auth/approle/role/bench/role-id", nil)
	if err != nil {
		return err
	}
	roleID := rid["data"].(map[string]any)["role_id"].(string)
	secretIDFile := func(name string) (string, string, error) {
		sid, err := v.do("POST", "auth/approle/role/bench/secret-id", map[string]any{})
		if err != nil {
			return "", "", err
		}
		rf, sf := filepath.Join(dir, name+"-role-id"), filepath.Join(dir, name+"-secret-id")
		os.WriteFile(rf, []byte(roleID), 0o600)
		os.WriteFile(sf, []byte(sid["data"].(map[string]any)["secret_id"].(string)), 0o600)
		return rf, sf, nil
	}

	// The "app": an HTTP endpoint both helpers notify after a change.
	notified := &notifyLog{}
	nport := freePort()
	nsrv := &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", nport), Handler: notified}
	go nsrv.ListenAndServe()
	defer nsrv.Close()

	// Rendered files go to tmpfs, as in a pod (emptyDir medium: Memory), for both.
	outDir := dir
	if shm, err := os.MkdirTemp("/dev/shm", "ambench-"); err == nil {
		outDir = shm
		defer os.RemoveAll(shm)
	}

	// Vault Agent.
	agentDir := filepath.Join(outDir, "agent")
	os.MkdirAll(agentDir, 0o755)
	arf, asf, err := secretIDFile("agent")
	if err != nil {
		return err
	}
	agentProxy := freePort()
	agentCfg := fmt.Sprintf(`
vault { address = %q }
auto_auth {
  method "approle" {
    config = {
      role_id_file_path = %q
      secret_id_file_path = %q
      remove_secret_id_file_after_reading = false
    }
  }
}
template_config { static_secret_render_interval = %q }
template {
  destination = %q
  contents = "{{ with secret \"secret/data/bench\" }}{{ .Data.data.value }}{{ end }}"
  perms = "0400"
  command = "curl -s -XPOST http://127.0.0.1:%d/agent"
}
api_proxy { use_auto_auth_token = true }
listener "tcp" {
  address = "127.0.0.1:%d"
  tls_disable = true
}
`, vaddr, arf, asf, o.refresh.String(), filepath.Join(agentDir, "value"), nport, agentProxy)
	os.WriteFile(filepath.Join(dir, "agent.hcl"), []byte(agentCfg), 0o600)
	ap, err := start("vault-agent", filepath.Join(dir, "agent.log"), []string{o.vault, "agent", "-config", filepath.Join(dir, "agent.hcl")}, []string{"HOME=" + dir, "VAULT_DISABLE_MLOCK=true", "SKIP_SETCAP=1"})
	if err != nil {
		return err
	}
	procs = append(procs, ap)

	// The ambassador.
	ambDir := filepath.Join(outDir, "amb")
	os.MkdirAll(ambDir, 0o755)
	brf, bsf, err := secretIDFile("amb")
	if err != nil {
		return err
	}
	ambProxy, ambAdmin := freePort(), freePort()
	bp, err := start("ambassador", filepath.Join(dir, "amb.log"), []string{o.ambassador, "run",
		"--vault-addr", vaddr, "--approle-role-id-file", brf, "--approle-secret-id-file", bsf,
		"--secret", filepath.Join(ambDir, "value") + "=secret/bench#value", "--static-secret-refresh", o.refresh.String(),
		"--proxy-addr", fmt.Sprintf("127.0.0.1:%d", ambProxy), "--admin-addr", fmt.Sprintf("127.0.0.1:%d", ambAdmin),
		"--notify-url", fmt.Sprintf("http://127.0.0.1:%d/amb", nport), "--notify-debounce", "0", "--log-level", "warn"}, nil)
	if err != nil {
		return err
	}
	procs = append(procs, bp)
	files := map[string]string{"ambassador": filepath.Join(ambDir, "value"), "vault agent": filepath.Join(agentDir, "value")}
	for name, f := range files {
		if err := waitFile(f, "0", 60*time.Second); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := waitHTTP(fmt.Sprintf("http://127.0.0.1:%d/readyz", ambAdmin), 200, 30*time.Second); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)

	// 1. Rotations.
	fmt.Fprintf(os.Stderr, "ambench: %d rotations at refresh %v\n", o.rotations, o.refresh)
	lat := map[string][]time.Duration{}
	nlat := map[string][]time.Duration{}
	for i := 1; i <= o.rotations; i++ {
		time.Sleep(time.Duration(rand.Int64N(int64(o.refresh)))) // sample every phase of the poll
		val := strconv.Itoa(i)
		notified.reset()
		t0 := time.Now()
		if _, err := v.do("POST", "secret/data/bench", map[string]any{"data": map[string]any{"value": val, "padding": strings.Repeat("x", 512)}}); err != nil {
			return err
		}
		seen := map[string]bool{}
		deadline := t0.Add(10*o.refresh + 10*time.Second)
		for len(seen) < len(files) && time.Now().Before(deadline) {
			for name, f := range files {
				if seen[name] {
					continue
				}
				if b, err := os.ReadFile(f); err == nil && string(b) == val {
					seen[name] = true
					lat[name] = append(lat[name], time.Since(t0))
				}
			}
			time.Sleep(200 * time.Microsecond)
		}
		if len(seen) < len(files) {
			return fmt.Errorf("rotation %d: files not updated within %v (%v)", i, 10*o.refresh+10*time.Second, seen)
		}
		// Notifications (the agent forks curl, the ambassador POSTs).
		ndl := time.Now().Add(5 * time.Second)
		for time.Now().Before(ndl) {
			if a, b := notified.get("/amb"), notified.get("/agent"); !a.IsZero() && !b.IsZero() {
				break
			}
			time.Sleep(time.Millisecond)
		}
		for name, path := range map[string]string{"ambassador": "/amb", "vault agent": "/agent"} {
			if t := notified.get(path); !t.IsZero() {
				nlat[name] = append(nlat[name], t.Sub(t0))
			}
		}
		if i%20 == 0 {
			fmt.Fprintf(os.Stderr, "ambench: rotation %d/%d\n", i, o.rotations)
		}
	}

	// 2. Steady RSS and CPU (both keep polling the secret every refresh).
	fmt.Fprintf(os.Stderr, "ambench: steady state for %v\n", o.steady)
	pids := map[string]int{"ambassador": bp.cmd.Process.Pid, "vault agent": ap.cmd.Process.Pid}
	cpu0 := map[string]float64{}
	for n, pid := range pids {
		cpu0[n] = cpuSeconds(pid)
	}
	t0 := time.Now()
	time.Sleep(o.steady)
	wall := time.Since(t0).Seconds()
	steady := map[string][2]float64{}
	for n, pid := range pids {
		steady[n] = [2]float64{rssMiB(pid, "VmRSS"), 100 * (cpuSeconds(pid) - cpu0[n]) / wall}
	}

	// 3. API proxy latency at a fixed rate: direct, ambassador, agent; two rounds.
	targets := []struct{ name, url, hdr string }{
		{"direct to Vault", vaddr + "/v1/secret/data/bench", "X-Vault-Token: root"},
		{"ambassador proxy", fmt.Sprintf("http://127.0.0.1:%d/v1/secret/data/bench", ambProxy), ""},
		{"vault agent api_proxy", fmt.Sprintf("http://127.0.0.1:%d/v1/secret/data/bench", agentProxy), ""},
	}
	loads := map[string][]fortioResult{}
	loadCPU := map[string]float64{}
	for round := 0; round < 2; round++ {
		for _, tg := range targets {
			fmt.Fprintf(os.Stderr, "ambench: fortio %s round %d\n", tg.name, round+1)
			var pid int
			switch tg.name {
			case "ambassador proxy":
				pid = pids["ambassador"]
			case "vault agent api_proxy":
				pid = pids["vault agent"]
			}
			c0 := 0.0
			if pid > 0 {
				c0 = cpuSeconds(pid)
			}
			r, err := fortio(o, dir, tg.url, tg.hdr)
			if err != nil {
				return fmt.Errorf("fortio %s: %w", tg.name, err)
			}
			if pid > 0 {
				loadCPU[tg.name] += 100 * (cpuSeconds(pid) - c0) / o.loadDur.Seconds() / 2
			}
			loads[tg.name] = append(loads[tg.name], r)
		}
	}
	peak := map[string]float64{}
	for n, pid := range pids {
		peak[n] = rssMiB(pid, "VmHWM")
	}
	ver, _ := exec.Command(o.vault, "version").Output()
	la, _ = os.ReadFile("/proc/loadavg")
	env := strings.TrimSpace(string(ver)) + fmt.Sprintf("; load average at start %s, at end %s", loadStart, strings.Join(strings.Fields(string(la))[:3], " "))
	return report(o, lat, nlat, steady, peak, loads, loadCPU, env)
}

type notifyLog struct {
	mu sync.Mutex
	at map[string]time.Time
}

func (n *notifyLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	if n.at == nil {
		n.at = map[string]time.Time{}
	}
	if _, ok := n.at[r.URL.Path]; !ok {
		n.at[r.URL.Path] = time.Now()
	}
	n.mu.Unlock()
}
func (n *notifyLog) reset()                 { n.mu.Lock(); n.at = nil; n.mu.Unlock() }
func (n *notifyLog) get(p string) time.Time { n.mu.Lock(); defer n.mu.Unlock(); return n.at[p] }

func waitFile(p, want string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(p); err == nil && string(b) == want {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not hold %q within %v", p, want, d)
}

func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func rssMiB(pid int, field string) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, field+":") {
			kb, _ := strconv.ParseFloat(strings.Fields(l)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

type fortioResult struct {
	p50, p90, p99, qps float64
	ok, total          int
}

func fortio(o opts, dir, url, hdr string) (fortioResult, error) {
	out := filepath.Join(dir, "fortio.json")
	args := []string{"load", "-qps", strconv.Itoa(o.qps), "-c", "4", "-t", o.loadDur.String(), "-p", "50,90,99", "-json", out, "-loglevel", "Error"}
	if hdr != "" {
		args = append(args, "-H", hdr)
	}
	args = append(args, url)
	ctx, cancel := context.WithTimeout(context.Background(), o.loadDur+time.Minute)
	defer cancel()
	if b, err := exec.CommandContext(ctx, o.fortio, args...).CombinedOutput(); err != nil {
		return fortioResult{}, fmt.Errorf("%v: %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return fortioResult{}, err
	}
	var r struct {
		ActualQPS         float64
		RetCodes          map[string]int
		DurationHistogram struct {
			Count       int
			Percentiles []struct{ Percentile, Value float64 }
		}
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return fortioResult{}, err
	}
	res := fortioResult{qps: r.ActualQPS, ok: r.RetCodes["200"], total: r.DurationHistogram.Count}
	for _, p := range r.DurationHistogram.Percentiles {
		switch p.Percentile {
		case 50:
			res.p50 = p.Value * 1000
		case 90:
			res.p90 = p.Value * 1000
		case 99:
			res.p99 = p.Value * 1000
		}
	}
	if res.ok != res.total {
		return res, errors.New("non-200 answers under load")
	}
	return res, nil
}

func pct(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p/100*float64(len(s)-1) + 0.5)
	return float64(s[i]) / float64(time.Millisecond)
}

func best(rs []fortioResult) fortioResult { // the quieter of the rounds (lower p50)
	b := rs[0]
	for _, r := range rs[1:] {
		if r.p50 < b.p50 {
			b = r
		}
	}
	return b
}

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func report(o opts, lat, nlat map[string][]time.Duration, steady map[string][2]float64, peak map[string]float64, loads map[string][]fortioResult, loadCPU map[string]float64, ver string) error {
	var b strings.Builder
	A, G := "ambassador", "vault agent"
	fmt.Fprintf(&b, "# ambassador vs Vault Agent\n\n")
	fmt.Fprintf(&b, "Generated by `make bench-ambassador` (integration/bench/ambassador.sh → ambassador/tools/ambench) on %s, %s, %d CPUs (shared, loaded machine), %s.\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), ver)
	fmt.Fprintf(&b, "One run, both helpers side by side against the same dev-mode Vault, the same KV v2 secret (`secret/bench`), AppRole auth, files on tmpfs (/dev/shm), static refresh interval %v for both (Agent: `template_config.static_secret_render_interval`; ambassador: `--static-secret-refresh`). The Agent notifies with a template `command` (curl POST), the ambassador with `--notify-url` (debounce 0).\n\n", o.refresh)

	fmt.Fprintf(&b, "## kv put → file updated (%d rotations, random phase)\n\n", len(lat[A]))
	fmt.Fprintf(&b, "| | p50 ms | p90 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|\n")
	for _, n := range []string{A, G} {
		fmt.Fprintf(&b, "| %s | %.1f | %.1f | %.1f | %.1f |\n", n, pct(lat[n], 50), pct(lat[n], 90), pct(lat[n], 99), pct(lat[n], 100))
	}
	fmt.Fprintf(&b, "| **ratio ambassador / agent** | %s | %s | %s | %s |\n\n", ratio(pct(lat[A], 50), pct(lat[G], 50)), ratio(pct(lat[A], 90), pct(lat[G], 90)), ratio(pct(lat[A], 99), pct(lat[G], 99)), ratio(pct(lat[A], 100), pct(lat[G], 100)))
	fmt.Fprintf(&b, "## kv put → app notified\n\n| | n | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|\n")
	for _, n := range []string{A, G} {
		fmt.Fprintf(&b, "| %s | %d | %.1f | %.1f | %.1f |\n", n, len(nlat[n]), pct(nlat[n], 50), pct(nlat[n], 99), pct(nlat[n], 100))
	}
	fmt.Fprintf(&b, "| **ratio ambassador / agent** | | %s | %s | %s |\n\n", ratio(pct(nlat[A], 50), pct(nlat[G], 50)), ratio(pct(nlat[A], 99), pct(nlat[G], 99)), ratio(pct(nlat[A], 100), pct(nlat[G], 100)))
	fmt.Fprintf(&b, "Target: notification ≤ refresh interval + 50 ms = %.0f ms; ambassador p99 %.1f ms, max %.1f ms.\n\n", float64(o.refresh/time.Millisecond)+50, pct(nlat[A], 99), pct(nlat[A], 100))

	d, am, ag := best(loads["direct to Vault"]), best(loads["ambassador proxy"]), best(loads["vault agent api_proxy"])
	fmt.Fprintf(&b, "## API proxy at %d rps (fortio, 4 connections, %v per run, best of 2 rounds), GET secret/data/bench\n\n", o.qps, o.loadDur)
	fmt.Fprintf(&b, "| | p50 ms | p90 ms | p99 ms | added p50 ms | added p99 ms | proxy CPU %% |\n|---|---:|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(&b, "| direct to Vault | %.3f | %.3f | %.3f | — | — | — |\n", d.p50, d.p90, d.p99)
	fmt.Fprintf(&b, "| ambassador proxy | %.3f | %.3f | %.3f | %.3f | %.3f | %.1f |\n", am.p50, am.p90, am.p99, am.p50-d.p50, am.p99-d.p99, loadCPU["ambassador proxy"])
	fmt.Fprintf(&b, "| vault agent api_proxy | %.3f | %.3f | %.3f | %.3f | %.3f | %.1f |\n", ag.p50, ag.p90, ag.p99, ag.p50-d.p50, ag.p99-d.p99, loadCPU["vault agent api_proxy"])
	fmt.Fprintf(&b, "| **ratio ambassador / agent (added p50)** | | | | %s | %s | %s |\n\n", ratio(am.p50-d.p50, ag.p50-d.p50), ratio(am.p99-d.p99, ag.p99-d.p99), ratio(loadCPU["ambassador proxy"], loadCPU["vault agent api_proxy"]))
	fmt.Fprintf(&b, "Target: added latency ≤ 0.3 ms p50; measured %.3f ms (ambassador/direct p50 ratio %s; agent/direct %s).\n\n", am.p50-d.p50, ratio(am.p50, d.p50), ratio(ag.p50, d.p50))

	fmt.Fprintf(&b, "## Resources\n\n| | steady RSS MiB | peak RSS MiB (after load) | steady CPU %% (refresh %v) |\n|---|---:|---:|---:|\n", o.refresh)
	for _, n := range []string{A, G} {
		fmt.Fprintf(&b, "| %s | %.1f | %.1f | %.2f |\n", n, steady[n][0], peak[n], steady[n][1])
	}
	fmt.Fprintf(&b, "| **ratio ambassador / agent** | %s | %s | %s |\n\n", ratio(steady[A][0], steady[G][0]), ratio(peak[A], peak[G]), ratio(steady[A][1], steady[G][1]))
	fmt.Fprintf(&b, "Target: RSS ≤ 20 MiB and under a fifth of Vault Agent's; measured %.1f MiB, %s of the Agent's.\n", steady[A][0], ratio(steady[A][0], steady[G][0]))
	fmt.Print(b.String())
	if o.out != "" {
		return os.WriteFile(o.out, []byte(b.String()), 0o644)
	}
	return nil
}
