package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// Addresses inside the test namespaces (private to them).
const (
	podV4, outV4   = "10.241.0.2", "10.241.0.1"
	podV6, outV6   = "fd00:241::2", "fd00:241::1"
	podX4, outX4   = "10.243.0.2", "10.243.0.1" // on eth1, an excluded interface
	podX6, outX6   = "fd00:243::2", "fd00:243::1"
	excludedV4     = "10.242.0.1" // a second outside address, in an excluded CIDR
	excludedV6     = "fd00:242::1"
	appPort        = 8080
	appProbePort   = 8081 // excluded inbound (the app's health port)
	outPort        = 9090
	outExcludePort = 9091 // excluded outbound port
	proxyUID       = 1337
)

type binaries struct{ initnet, proxy string }

// build compiles initnet and the real proxy (../../proxy/cmd/proxy) into a
// directory the proxy's UID can read.
func build(t *testing.T) binaries {
	t.Helper()
	dir, err := os.MkdirTemp("", "initnet-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b := binaries{initnet: filepath.Join(dir, "initnet"), proxy: filepath.Join(dir, "proxy")}
	for _, s := range []struct{ moduleDir, pkg, out string }{
		{"..", "./cmd/initnet", b.initnet},
		{filepath.Join("..", "..", "proxy"), "./cmd/proxy", b.proxy},
	} {
		cmd := exec.Command("go", "build", "-o", s.out, s.pkg)
		cmd.Dir = s.moduleDir
		cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s in %s: %v\n%s", s.pkg, s.moduleDir, err, out)
		}
	}
	return b
}

func sh(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// pod is a pair of namespaces: the pod and the outside world, joined by a veth.
type pod struct {
	t        *testing.T
	pod, out string
}

func newPod(t *testing.T) *pod {
	t.Helper()
	var r [4]byte
	rand.Read(r[:])
	id := hex.EncodeToString(r[:])
	p := &pod{t: t, pod: "skinit-" + id + "-pod", out: "skinit-" + id + "-out"}
	vp, vo := "skp"+id, "sko"+id
	xp, xo := "skq"+id, "skr"+id // a second link, whose interface initnet excludes
	sh(t, "ip", "netns", "add", p.pod)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", p.pod).Run() })
	sh(t, "ip", "netns", "add", p.out)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", p.out).Run() })
	sh(t, "ip", "link", "add", vp, "type", "veth", "peer", "name", vo)
	sh(t, "ip", "link", "set", vp, "netns", p.pod)
	sh(t, "ip", "link", "set", vo, "netns", p.out)
	sh(t, "ip", "link", "add", xp, "type", "veth", "peer", "name", xo)
	sh(t, "ip", "link", "set", xp, "netns", p.pod)
	sh(t, "ip", "link", "set", xo, "netns", p.out)
	for _, c := range [][]string{
		{p.pod, "ip", "link", "set", "lo", "up"},
		{p.pod, "ip", "link", "set", vp, "name", "eth0"},
		{p.pod, "ip", "addr", "add", podV4 + "/24", "dev", "eth0"},
		{p.pod, "ip", "-6", "addr", "add", podV6 + "/64", "dev", "eth0", "nodad"},
		{p.pod, "ip", "link", "set", "eth0", "up"},
		{p.pod, "ip", "route", "add", "default", "via", outV4},
		{p.pod, "ip", "-6", "route", "add", "default", "via", outV6},
		{p.pod, "ip", "link", "set", xp, "name", "eth1"},
		{p.pod, "ip", "addr", "add", podX4 + "/24", "dev", "eth1"},
		{p.pod, "ip", "-6", "addr", "add", podX6 + "/64", "dev", "eth1", "nodad"},
		{p.pod, "ip", "link", "set", "eth1", "up"},
		{p.out, "ip", "link", "set", xo, "name", "eth1"},
		{p.out, "ip", "addr", "add", outX4 + "/24", "dev", "eth1"},
		{p.out, "ip", "-6", "addr", "add", outX6 + "/64", "dev", "eth1", "nodad"},
		{p.out, "ip", "link", "set", "eth1", "up"},
		{p.out, "ip", "link", "set", "lo", "up"},
		{p.out, "ip", "link", "set", vo, "name", "eth0"},
		{p.out, "ip", "addr", "add", outV4 + "/24", "dev", "eth0"},
		{p.out, "ip", "addr", "add", excludedV4 + "/32", "dev", "eth0"},
		{p.out, "ip", "-6", "addr", "add", outV6 + "/64", "dev", "eth0", "nodad"},
		{p.out, "ip", "-6", "addr", "add", excludedV6 + "/128", "dev", "eth0", "nodad"},
		{p.out, "ip", "link", "set", "eth0", "up"},
		{p.out, "ip", "route", "add", "default", "dev", "eth0"},
		{p.out, "ip", "-6", "route", "add", "fd00:241::/64", "dev", "eth0"},
	} {
		sh(t, append([]string{"ip", "netns", "exec"}, c...)...)
	}
	return p
}

// exec runs a command in the pod namespace and returns its output and exit code.
func (p *pod) exec(args ...string) (string, int) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.pod}, args...)...)
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	} else if err != nil {
		p.t.Fatalf("%v: %v", args, err)
	}
	return string(out), 0
}

// ruleset is the pod's whole nf_tables ruleset (which includes what
// iptables-nft installs), without packet counters.
func (p *pod) ruleset() string {
	out, code := p.exec("nft", "list", "ruleset")
	if code != 0 {
		p.t.Fatalf("nft list ruleset: %s", out)
	}
	return counters.ReplaceAllString(out, "counter")
}

var counters = regexp.MustCompile(`counter packets \d+ bytes \d+`)

// seen is what a test server observed of one request.
type seen struct {
	Remote string `json:"remote"`
	Via    string `json:"via"`
	Path   string `json:"path"`
}

// serve starts an HTTP server in netns ns on every address (dual stack)
// that answers with what it saw.
func serve(t *testing.T, ns string, port int) {
	t.Helper()
	ln, err := listen(ns, "tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		t.Fatalf("listen in %s on %d: %v", ns, port, err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(seen{Remote: r.RemoteAddr, Via: r.Header.Get("Via"), Path: r.URL.Path})
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

func client(ns string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dialer(ns), DisableKeepAlives: true}}
}

func get(t *testing.T, c *http.Client, url string) seen {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var s seen
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || json.Unmarshal(body, &s) != nil {
		t.Fatalf("GET %s: %s %s", url, resp.Status, body)
	}
	return s
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// accessLines returns the proxy's access-log records for path.
func accessLines(log, path string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(log, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) != nil || m["msg"] != "access" {
			continue
		}
		if m["path"] == path {
			out = append(out, m)
		}
	}
	return out
}

// startProxy runs the real proxy in the pod as UID/GID 1337, transparent.
func startProxy(t *testing.T, p *pod, bin string) (*exec.Cmd, *syncBuf) {
	t.Helper()
	logs := &syncBuf{}
	cmd := exec.Command("ip", "netns", "exec", p.pod, "setpriv", fmt.Sprintf("--reuid=%d", proxyUID), fmt.Sprintf("--regid=%d", proxyUID), "--clear-groups",
		bin, "--mode", "transparent", "--inbound-addr", ":15006", "--outbound-addr", ":15001",
		"--admin-addr", "127.0.0.1:15000", "--prometheus-addr", "127.0.0.1:15090", "--drain-delay", "0", "--drain-timeout", "2s")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	admin := client(p.pod)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := admin.Get("http://127.0.0.1:15000/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd, logs
			}
		}
		select {
		case <-done:
			t.Fatalf("proxy exited: %s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy not ready: %v\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func stopProxy(t *testing.T, cmd *exec.Cmd) {
	cmd.Process.Signal(os.Interrupt)
}

// TestCaptureWithRealProxy is the proof, once per backend, in fresh
// namespaces each time (sequential: they share the host's kernel modules
// and the build).
func TestCaptureWithRealProxy(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tool := range [][2]string{{"ip", "iproute2"}, {"nft", "nftables"}, {"setpriv", "util-linux"}, {"curl", "curl"}, {"iptables-restore", "iptables"}, {"ip6tables-restore", "iptables"}} {
		testenv.Tool(t, tool[0], tool[1])
	}
	bins := build(t)
	testenv.Tool(t, "iptables-legacy-restore", "iptables")
	for _, v := range []variant{
		{name: "nftables", backend: "nftables"},
		{name: "iptables", backend: "iptables"},
		{name: "iptables-legacy", backend: "iptables", flags: []string{"--iptables-restore", "iptables-legacy-restore", "--ip6tables-restore", "ip6tables-legacy-restore"}},
	} {
		t.Run(v.name, func(t *testing.T) { capture(t, bins, v) })
	}
}

// variant is a backend and the flags that select its tools.
type variant struct {
	name, backend string
	flags         []string
}

// snapshot is the pod's whole ruleset: nf_tables (which includes
// iptables-nft) plus the legacy iptables nat tables, without counters.
func (p *pod) snapshot() string {
	var b strings.Builder
	b.WriteString(p.ruleset())
	out, code := p.exec("ip", "-6", "addr", "show", "dev", "lo")
	if code != 0 {
		p.t.Fatalf("ip addr: %s", out)
	}
	b.WriteString(out)
	for _, tool := range []string{"iptables-legacy-save", "ip6tables-legacy-save"} {
		out, code := p.exec(tool, "-t", "nat")
		if code != 0 {
			p.t.Fatalf("%s: %s", tool, out)
		}
		for _, l := range strings.Split(out, "\n") {
			if !strings.HasPrefix(l, "#") {
				b.WriteString(legacyCounters.ReplaceAllString(l, "") + "\n")
			}
		}
	}
	return b.String()
}

var legacyCounters = regexp.MustCompile(` \[\d+:\d+\]$`)

func capture(t *testing.T, bins binaries, v variant) {
	backend := v.name
	p := newPod(t)
	// Someone else's rules in the pod, which initnet must leave alone (and
	// the nat tables iptables-nft would otherwise create).
	sh(t, "ip", "netns", "exec", p.pod, "nft", "add table inet keepme; add chain inet keepme c { type filter hook input priority 0; }; add rule inet keepme c tcp dport 22 accept")
	// (A namespace with no rules at all is TestIstioParity's and
	// iptables' TestCleanupLeavesFreshNamespaceEmpty's case.)
	for _, tool := range []string{"iptables", "ip6tables"} {
		sh(t, "ip", "netns", "exec", p.pod, tool, "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "7", "-j", "RETURN")
		sh(t, "ip", "netns", "exec", p.pod, tool, "-t", "nat", "-A", "PREROUTING", "-p", "udp", "--dport", "7", "-j", "RETURN")
	}
	before := p.snapshot()

	args := []string{bins.initnet, "--backend", v.backend, "--log-format", "text",
		"-d", fmt.Sprint(appProbePort), "-x", "10.242.0.0/24,fd00:242::/64", "-o", fmt.Sprint(outExcludePort), "-c", "eth1"}
	args = append(args, v.flags...)

	// A config under which the redirect cannot work: --validate must say so.
	out, code := p.exec(append(args, "-c", "eth1,lo", "--validate", "--probe-timeout", "2s")...)
	if code != 1 || !strings.Contains(out, "validation failed") || !strings.Contains(out, "not redirected") {
		t.Fatalf("validation of broken rules: exit %d\n%s", code, out)
	}
	// The same under `initnet istio-iptables`: istio-iptables' exit code 126
	// (what Istio CNI's repair controller looks for).
	istio := append([]string{bins.initnet, "istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-b", "*", "-c", "lo",
		"--run-validation", "--probe-timeout", "2s", "--backend", v.backend}, v.flags...)
	if out, code := p.exec(istio...); code != 126 || !strings.Contains(out, "validation failed") {
		t.Fatalf("istio-iptables validation of broken rules: exit %d, want 126\n%s", code, out)
	}

	// Apply with validation, then again: the same rules, not doubled.
	out, code = p.exec(append(args, "--validate")...)
	if code != 0 || !strings.Contains(out, "validation passed") || !strings.Contains(out, "backend="+v.backend) {
		t.Fatalf("apply --validate: exit %d\n%s", code, out)
	}
	applied := p.snapshot()
	if out, code = p.exec(args...); code != 0 {
		t.Fatalf("second apply: exit %d\n%s", code, out)
	}
	if again := p.snapshot(); again != applied {
		t.Fatalf("second apply changed the ruleset:\n%s\nwas\n%s", again, applied)
	}
	if v.backend == "iptables" && strings.Contains(applied, "table ip sidecarkit") || v.backend == "nftables" && strings.Contains(applied, "SIDECARKIT_") ||
		!strings.Contains(applied, "SIDECARKIT_") && v.backend == "iptables" {
		t.Fatalf("rules in the wrong backend:\n%s", applied)
	}
	if v.flags != nil && strings.Contains(p.ruleset(), "SIDECARKIT_") {
		t.Fatalf("legacy variant installed through nf_tables:\n%s", p.ruleset())
	}

	// The app (this process, in the pod) and the outside servers.
	serve(t, p.pod, appPort)
	serve(t, p.pod, appProbePort)
	serve(t, p.out, outPort)
	serve(t, p.out, outExcludePort)
	outside, app := client(p.out), client(p.pod)

	// Before the proxy is up (the CrashLoopBackOff incident): the excluded
	// probe port already reaches the app; a captured port does not.
	if s := get(t, outside, fmt.Sprintf("http://%s:%d/early-probe", podV4, appProbePort)); s.Path != "/early-probe" {
		t.Errorf("probe port before the proxy started: %+v", s)
	}
	if resp, err := outside.Get(fmt.Sprintf("http://%s:%d/early", podV4, appPort)); err == nil {
		resp.Body.Close()
		t.Errorf("captured port answered before the proxy started: %s", resp.Status)
	}

	proxy, logs := startProxy(t, p, bins.proxy)

	// The proxy dials the app from 127.0.0.6, or over IPv6 from ::6, which
	// initnet put on lo.
	for _, fam := range []struct{ name, pod, out, excluded, podX, outX, viaProxy string }{
		{"v4", podV4, outV4, excludedV4, podX4, outX4, "127.0.0.6:"},
		{"v6", "[" + podV6 + "]", "[" + outV6 + "]", "[" + excludedV6 + "]", "[" + podX6 + "]", "[" + outX6 + "]", "[::6]:"},
	} {
		tag := "/" + backend + "-" + fam.name
		// Inbound: outside client → pod:8080 passes the inbound listener
		// and reaches the app from 127.0.0.6.
		s := get(t, outside, fmt.Sprintf("http://%s:%d%s-in", fam.pod, appPort, tag))
		t.Logf("%s inbound: the app saw %+v", fam.name, s)
		if !strings.HasPrefix(s.Remote, fam.viaProxy) || !strings.Contains(s.Via, "sidecarkit") {
			t.Errorf("%s inbound: the app saw %+v, want it from %s via the proxy", fam.name, s, fam.viaProxy)
		}
		// The excluded (probe) port reaches the app directly.
		s = get(t, outside, fmt.Sprintf("http://%s:%d%s-probe", fam.pod, appProbePort, tag))
		if strings.HasPrefix(s.Remote, fam.viaProxy) || s.Via != "" {
			t.Errorf("%s excluded inbound port: the app saw %+v, want it straight from the client", fam.name, s)
		}
		// Outbound: app → outside server passes the outbound listener.
		s = get(t, app, fmt.Sprintf("http://%s:%d%s-out", fam.out, outPort, tag))
		t.Logf("%s outbound: the outside server saw %+v", fam.name, s)
		if !strings.Contains(s.Via, "sidecarkit") {
			t.Errorf("%s outbound: the server saw %+v, want it via the proxy", fam.name, s)
		}
		// Excluded CIDR and excluded outbound port bypass the proxy.
		if s = get(t, app, fmt.Sprintf("http://%s:%d%s-cidr", fam.excluded, outPort, tag)); s.Via != "" {
			t.Errorf("%s excluded CIDR went through the proxy: %+v", fam.name, s)
		}
		if s = get(t, app, fmt.Sprintf("http://%s:%d%s-port", fam.out, outExcludePort, tag)); s.Via != "" {
			t.Errorf("%s excluded outbound port went through the proxy: %+v", fam.name, s)
		}
		// Traffic over the excluded interface bypasses the proxy both ways.
		if s = get(t, outside, fmt.Sprintf("http://%s:%d%s-ifin", fam.podX, appPort, tag)); s.Via != "" || strings.HasPrefix(s.Remote, fam.viaProxy) {
			t.Errorf("%s inbound over the excluded interface went through the proxy: %+v", fam.name, s)
		}
		if s = get(t, app, fmt.Sprintf("http://%s:%d%s-ifout", fam.outX, outPort, tag)); s.Via != "" {
			t.Errorf("%s outbound over the excluded interface went through the proxy: %+v", fam.name, s)
		}
		// The proxy's UID calling the pod's own IP goes to the inbound
		// listener (and on to the app from 127.0.0.6), not out of the pod.
		out, code := p.exec("setpriv", fmt.Sprintf("--reuid=%d", proxyUID), fmt.Sprintf("--regid=%d", proxyUID), "--clear-groups",
			"curl", "-sS", "--max-time", "10", fmt.Sprintf("http://%s:%d%s-proxyself", fam.pod, appPort, tag))
		if code != 0 || json.Unmarshal([]byte(out), &s) != nil || !strings.HasPrefix(s.Remote, fam.viaProxy) {
			t.Errorf("%s proxy UID → own pod IP: exit %d %s, want it via the inbound listener", fam.name, code, out)
		}
		// The app calling its own pod IP is not captured.
		if s = get(t, app, fmt.Sprintf("http://%s:%d%s-self", fam.pod, appPort, tag)); s.Via != "" || strings.HasPrefix(s.Remote, fam.viaProxy) {
			t.Errorf("%s app → own pod IP went through the proxy: %+v", fam.name, s)
		}
	}

	// The proxy's access log: exactly one record per proxied request (a
	// loop would show the proxy's own upstream connection coming back), none
	// for the bypassing ones.
	deadline := time.Now().Add(10 * time.Second)
	for _, fam := range []string{"v4", "v6"} {
		tag := "/" + backend + "-" + fam
		for suffix, want := range map[string]int{"-in": 1, "-out": 1, "-proxyself": 1, "-ifin": 0, "-ifout": 0, "-probe": 0, "-cidr": 0, "-port": 0, "-self": 0} {
			n := len(accessLines(logs.String(), tag+suffix))
			for n < want && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
				n = len(accessLines(logs.String(), tag+suffix))
			}
			if n != want {
				t.Errorf("access log has %d records for %s, want %d", n, tag+suffix, want)
			}
		}
	}
	if recs := accessLines(logs.String(), "/"+backend+"-v4-in"); len(recs) == 1 && !strings.Contains(fmt.Sprint(recs[0]), outV4) {
		t.Errorf("inbound access record does not name the outside client: %v", recs[0])
	}
	// And its metrics count both listeners.
	resp, err := app.Get("http://127.0.0.1:15090/stats/prometheus")
	if err != nil {
		t.Fatalf("proxy metrics: %v", err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`sidecarkit_proxy_requests_total{`, `listener="inbound"`, `listener="outbound"`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("proxy metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Logf("proxy log:\n%s", logs.String())
	}
	stopProxy(t, proxy)

	// Cleanup: exactly the ruleset from before initnet ran.
	if out, code = p.exec(append([]string{bins.initnet, "--cleanup", "--backend", v.backend}, v.flags...)...); code != 0 {
		t.Fatalf("cleanup: exit %d\n%s", code, out)
	}
	if after := p.snapshot(); after != before {
		t.Errorf("after --cleanup the ruleset is\n%s\nwant (as before initnet)\n%s", after, before)
	}
}
