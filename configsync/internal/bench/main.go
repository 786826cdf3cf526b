// Command bench measures configsync side by side with consul-template on
// one Consul agent and one key: the time from a KV PUT (HTTP API) to the new
// content on disk for each tool (both files watched with inotify in this one
// process), and each tool's CPU and RSS while idle and while the key changes.
// It writes a Markdown report. Run by integration/bench/configsync.sh.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

type tool struct {
	name string
	cmd  *exec.Cmd
	out  string // the file it writes
	stop syscall.Signal
}

func main() {
	var (
		consulBin = flag.String("consul", "", "consul binary")
		ctBin     = flag.String("consul-template", "", "consul-template binary")
		csBin     = flag.String("configsync", "", "configsync binary")
		changes   = flag.Int("changes", 1000, "KV changes to time")
		idle      = flag.Duration("idle", 15*time.Second, "idle measurement window")
		report    = flag.String("out", "", "Markdown report to write")
		base      = flag.String("dir", "", "directory the two tools write into (its filesystem is what is measured; default: the system temp dir)")
		label     = flag.String("label", "", "name of this run's filesystem in the report")
		rt        = flag.Bool("rt", false, "give the harness (only) real-time priority once the tools run, so its own scheduling does not blur the timings")
	)
	flag.Parse()
	if err := run(*consulBin, *ctBin, *csBin, *changes, *idle, *report, *rt, *base, *label); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
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

func run(consulBin, ctBin, csBin string, changes int, idle time.Duration, report string, rt bool, base, label string) error {
	work, err := os.MkdirTemp(base, "configsync-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	var procs []*tool
	defer func() {
		for _, p := range procs {
			stopProc(p)
		}
	}()

	// One Consul agent for both tools.
	ports := make([]string, 6)
	for i := range ports {
		ports[i] = strconv.Itoa(freePort())
	}
	addr := "127.0.0.1:" + ports[0]
	consul := &tool{name: "consul", stop: syscall.SIGTERM, cmd: exec.Command(consulBin, "agent", "-dev", "-client", "127.0.0.1", "-bind", "127.0.0.1",
		"-http-port", ports[0], "-dns-port", ports[1], "-server-port", ports[2], "-serf-lan-port", ports[3], "-serf-wan-port", ports[4],
		"-grpc-port", ports[5], "-hcl", "ports { grpc_tls = -1 }", "-log-level", "error")}
	if err := startProc(consul, work); err != nil {
		return err
	}
	procs = append(procs, consul)
	if err := waitFor(30*time.Second, func() bool {
		r, err := http.Get("http://" + addr + "/v1/status/leader")
		if err != nil {
			return false
		}
		b := new(bytes.Buffer)
		b.ReadFrom(r.Body)
		r.Body.Close()
		return len(bytes.Trim(b.Bytes(), "\" \n")) > 0
	}); err != nil {
		return fmt.Errorf("consul not ready: %w", err)
	}
	const key = "bench/value"
	if err := put(addr, key, "v0"); err != nil {
		return err
	}

	csDir, ctDir := filepath.Join(work, "configsync"), filepath.Join(work, "consul-template")
	os.MkdirAll(csDir, 0o755)
	os.MkdirAll(ctDir, 0o755)
	cs := &tool{name: "configsync", out: filepath.Join(csDir, "value"), stop: syscall.SIGTERM,
		cmd: exec.Command(csBin, "--consul-addr", addr, "--file", key+"="+filepath.Join(csDir, "value"),
			"--admin-addr", "127.0.0.1:"+strconv.Itoa(freePort()), "--log-level", "warn")}
	tmpl := filepath.Join(work, "value.tmpl")
	os.WriteFile(tmpl, []byte(`{{ key "`+key+`" }}`), 0o644)
	ctHome := filepath.Join(work, "ct-home")
	os.MkdirAll(ctHome, 0o755)
	ct := &tool{name: "consul-template", out: filepath.Join(ctDir, "value"), stop: syscall.SIGINT, // it ignores SIGTERM
		cmd: exec.Command(ctBin, "-consul-addr", addr, "-template", tmpl+":"+filepath.Join(ctDir, "value"), "-log-level", "err")}
	ct.cmd.Env = []string{"HOME=" + ctHome, "PATH=/usr/bin:/bin"} // no VAULT_*: Vault stays off
	cs.cmd.Env = []string{"HOME=" + work, "PATH=/usr/bin:/bin"}
	for _, t := range []*tool{cs, ct} {
		if err := startProc(t, work); err != nil {
			return err
		}
		procs = append(procs, t)
	}
	for _, t := range []*tool{cs, ct} {
		t := t
		if err := waitFor(30*time.Second, func() bool { b, err := os.ReadFile(t.out); return err == nil && string(b) == "v0" }); err != nil {
			return fmt.Errorf("%s never wrote the first value (log %s)", t.name, filepath.Join(work, t.name+".log"))
		}
	}

	rtNote := "normal priority"
	if rt {
		// Children keep normal priority: they were started before this.
		if out, err := exec.Command("chrt", "-a", "-f", "-p", "10", strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
			return fmt.Errorf("chrt: %v: %s", err, out)
		}
		rtNote = "SCHED_FIFO priority 10 (the tools and Consul at normal priority)"
	}

	// Idle: nothing changes.
	time.Sleep(2 * time.Second)
	idleStats := measure([]*tool{cs, ct}, func() { time.Sleep(idle) })

	// Active: changes, one at a time, each timed until both files hold it.
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	w.Add(csDir)
	w.Add(ctDir)
	lat := map[string][]time.Duration{}
	var activeErr error
	active := measure([]*tool{cs, ct}, func() {
		for i := 1; i <= changes; i++ {
			want := fmt.Sprintf("v%d-%d", i, time.Now().UnixNano())
			seen := map[string]bool{}
			t0 := time.Now()
			if err := put(addr, key, want); err != nil {
				activeErr = err
				return
			}
			lat["put"] = append(lat["put"], time.Since(t0))
			// The content may already be there before the first event.
			check := func(t *tool) {
				if seen[t.name] {
					return
				}
				if b, err := os.ReadFile(t.out); err == nil && string(b) == want {
					seen[t.name] = true
					lat[t.name] = append(lat[t.name], time.Since(t0))
				}
			}
			check(cs)
			check(ct)
			deadline := time.NewTimer(10 * time.Second)
			for !(seen[cs.name] && seen[ct.name]) {
				select {
				case ev := <-w.Events:
					if filepath.Base(ev.Name) == "value" && ev.Op&(fsnotify.Create|fsnotify.Rename|fsnotify.Write) != 0 {
						if strings.HasPrefix(ev.Name, csDir+"/") {
							check(cs)
						} else {
							check(ct)
						}
					}
				case err := <-w.Errors:
					activeErr = err
					return
				case <-deadline.C:
					activeErr = fmt.Errorf("change %d not on disk after 10s (configsync %v, consul-template %v)", i, seen[cs.name], seen[ct.name])
					return
				}
			}
			deadline.Stop()
		}
	})
	if activeErr != nil {
		return activeErr
	}
	// Idle again: what each keeps resident once the changes stop.
	after := measure([]*tool{cs, ct}, func() { time.Sleep(idle) })
	return writeReport(report, label, work, rtNote, changes, idle, lat, idleStats, active, after, cs, ct)
}

func put(addr, key, val string) error {
	req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/v1/kv/"+key, strings.NewReader(val))
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("PUT %s: %w", key, err)
	}
	r.Body.Close()
	if r.StatusCode != 200 {
		return fmt.Errorf("PUT %s: HTTP %d", key, r.StatusCode)
	}
	return nil
}

func startProc(t *tool, work string) error {
	logf, err := os.Create(filepath.Join(work, t.name+".log"))
	if err != nil {
		return err
	}
	t.cmd.Stdout, t.cmd.Stderr = logf, logf
	t.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := t.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", t.name, err)
	}
	return nil
}

func stopProc(t *tool) {
	if t.cmd.Process == nil {
		return
	}
	t.cmd.Process.Signal(t.stop)
	done := make(chan struct{})
	go func() { t.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.cmd.Process.Kill()
		<-done
	}
}

func waitFor(d time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			return errors.New("timed out")
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// usage is one tool's CPU time and memory over a window.
type usage struct {
	cpu     time.Duration
	wall    time.Duration
	rssKB   int // at the end of the window
	hwmKB   int // peak RSS since start
	anonKB  int
	samples int
}

func (u usage) cpuPct() float64 { return 100 * u.cpu.Seconds() / u.wall.Seconds() }

func measure(ts []*tool, during func()) map[string]usage {
	before := map[string]time.Duration{}
	for _, t := range ts {
		before[t.name] = cpuTime(t.cmd.Process.Pid)
	}
	start := time.Now()
	during()
	wall := time.Since(start)
	out := map[string]usage{}
	for _, t := range ts {
		rss, hwm, anon := rssKB(t.cmd.Process.Pid)
		out[t.name] = usage{cpu: cpuTime(t.cmd.Process.Pid) - before[t.name], wall: wall, rssKB: rss, hwmKB: hwm, anonKB: anon}
	}
	return out
}

// cpuTime is utime+stime of pid from /proc (clock ticks of 10ms).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	return time.Duration(ut+st) * 10 * time.Millisecond
}

func rssKB(pid int) (rss, hwm, anon int) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 {
			switch f[0] {
			case "VmRSS:":
				rss, _ = strconv.Atoi(f[1])
			case "VmHWM:":
				hwm, _ = strconv.Atoi(f[1])
			case "RssAnon:":
				anon, _ = strconv.Atoi(f[1])
			}
		}
	}
	return rss, hwm, anon
}

func pct(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s))*p+0.5) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

func writeReport(path, label, work, rtNote string, changes int, idle time.Duration, lat map[string][]time.Duration, idleU, activeU, afterU map[string]usage, cs, ct *tool) error {
	c, t := lat[cs.name], lat[ct.name]
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "## Files on %s (%s)\n\n", label, fsType(work))
	fmt.Fprintf(&b, "Run %s on %s (%d CPUs, shared with other work). One Consul dev agent, one key, both tools watching it at once with quiescence off; %d changes, each a PUT through the HTTP API, timed from just before the PUT until the new content is in each tool's file (inotify on both directories in one harness, `configsync/internal/bench`, running at %s). Generated by `make bench-configsync`.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), host, numCPU(), changes, rtNote)
	fmt.Fprintf(&b, "### Latency, PUT → file\n\n| | configsync | consul-template v0.41.1 | ratio (configsync / consul-template) |\n|---|---|---|---|\n")
	for _, p := range []struct {
		n string
		q float64
	}{{"p50", .50}, {"p90", .90}, {"p99", .99}, {"max", 1}} {
		a, z := pct(c, p.q), pct(t, p.q)
		fmt.Fprintf(&b, "| %s | %s | %s | %.2f |\n", p.n, ms(a), ms(z), a.Seconds()/z.Seconds())
	}
	fmt.Fprintf(&b, "\nFor reference, the PUT's own round trip (Consul commits the write and answers; both tools' blocking queries wake at the same commit): p50 %s, p99 %s.\n", ms(pct(lat["put"], .5)), ms(pct(lat["put"], .99)))
	fmt.Fprintf(&b, "\nTarget p99(configsync) ≤ p50(consul-template): %s ≤ %s → **%s**.\n\n", ms(pct(c, .99)), ms(pct(t, .5)), pass(pct(c, .99) <= pct(t, .5)))
	fmt.Fprintf(&b, "### CPU and memory\n\n| | configsync | consul-template | ratio |\n|---|---|---|---|\n")
	ic, it := idleU[cs.name], idleU[ct.name]
	ac, at := activeU[cs.name], activeU[ct.name]
	fmt.Fprintf(&b, "| idle CPU (%% of one core over %s) | %.3f %% | %.3f %% | %s |\n", idle, ic.cpuPct(), it.cpuPct(), ratio(ic.cpu.Seconds(), it.cpu.Seconds()))
	fmt.Fprintf(&b, "| active CPU (%% of one core over %s) | %.1f %% | %.1f %% | %s |\n", ac.wall.Round(time.Millisecond), ac.cpuPct(), at.cpuPct(), ratio(ac.cpu.Seconds(), at.cpu.Seconds()))
	fmt.Fprintf(&b, "| active CPU per change | %.3f ms | %.3f ms | %s |\n", ac.cpu.Seconds()*1000/float64(changes), at.cpu.Seconds()*1000/float64(changes), ratio(ac.cpu.Seconds(), at.cpu.Seconds()))
	fmt.Fprintf(&b, "| RSS idle | %.1f MiB | %.1f MiB | %s |\n", mib(ic.rssKB), mib(it.rssKB), ratio(float64(ic.rssKB), float64(it.rssKB)))
	fmt.Fprintf(&b, "| RSS after the changes | %.1f MiB | %.1f MiB | %s |\n", mib(ac.rssKB), mib(at.rssKB), ratio(float64(ac.rssKB), float64(at.rssKB)))
	zc, zt := afterU[cs.name], afterU[ct.name]
	fmt.Fprintf(&b, "| RSS idle again, %s after the changes | %.1f MiB | %.1f MiB | %s |\n", idle, mib(zc.rssKB), mib(zt.rssKB), ratio(float64(zc.rssKB), float64(zt.rssKB)))
	fmt.Fprintf(&b, "| peak RSS (VmHWM) | %.1f MiB | %.1f MiB | %s |\n", mib(ac.hwmKB), mib(at.hwmKB), ratio(float64(ac.hwmKB), float64(at.hwmKB)))
	fmt.Fprintf(&b, "| of which anonymous now (heap, stacks) | %.1f MiB | %.1f MiB | %s |\n", mib(zc.anonKB), mib(zt.anonKB), ratio(float64(zc.anonKB), float64(zt.anonKB)))
	fmt.Fprintf(&b, "\nTarget RSS ≤ half of consul-template's: idle %s (%.1f vs %.1f MiB), after the changes %s (%.1f vs %.1f MiB), peak %s (%.1f vs %.1f MiB).\n\n",
		pass(ic.rssKB*2 <= it.rssKB), mib(ic.rssKB), mib(it.rssKB), pass(ac.rssKB*2 <= at.rssKB), mib(ac.rssKB), mib(at.rssKB), pass(ac.hwmKB*2 <= at.hwmKB), mib(ac.hwmKB), mib(at.hwmKB))
	fmt.Fprintf(&b, "CPU is utime+stime from /proc/<pid>/stat (10 ms ticks), so idle figures are coarse. configsync ran as `configsync --consul-addr … --file bench/value=…` (blocking queries, --wait-min 0); consul-template as `consul-template -consul-addr … -template value.tmpl:…` with defaults (no wait) and a HOME without a Vault token.\n")
	if path == "" {
		fmt.Print(b.String())
		return nil
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// fsType names the filesystem dir is on, from /proc/self/mounts.
func fsType(dir string) string {
	b, _ := os.ReadFile("/proc/self/mounts")
	best, typ := "", "unknown filesystem"
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && (dir == f[1] || strings.HasPrefix(dir, strings.TrimSuffix(f[1], "/")+"/")) && len(f[1]) > len(best) {
			best, typ = f[1], f[2]
		}
	}
	return typ
}

func mib(kb int) float64 { return float64(kb) / 1024 }

func ratio(a, z float64) string {
	if z == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/z)
}

func pass(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}
