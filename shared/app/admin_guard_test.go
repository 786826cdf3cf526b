package app

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/shared/admin"
)

// ci reports whether a test that cannot run must fail (CI=true) instead of
// skipping. (shared cannot import integration/testenv.)
func ci() bool { v := os.Getenv("CI"); return v != "" && v != "false" && v != "0" }

func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if ci() {
		t.Fatalf("cannot run in CI: "+format, args...)
	}
	t.Skipf(format, args...)
}

// TestAdminGuardDecides is the pure rule: which requests are control
// requests, and who may make them.
func TestAdminGuardDecides(t *testing.T) {
	allow, err := admin.ParseControlFrom(admin.DefaultControlFrom)
	if err != nil {
		t.Fatal(err)
	}
	h := admin.Guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }), allow)
	cases := []struct {
		method, path, remote string
		want                 int
	}{
		{"GET", "/readyz", "10.1.2.3:5555", 200},
		{"GET", "/livez", "10.1.2.3:5555", 200},
		{"GET", "/metrics", "[2001:db8::1]:5555", 200},
		{"HEAD", "/startupz", "10.1.2.3:5555", 200},
		{"POST", "/drain", "10.1.2.3:5555", 403},
		{"POST", "/quitquitquit", "[2001:db8::1]:5555", 403},
		{"POST", "/healthcheck/fail", "10.1.2.3:5555", 403},
		{"POST", "/drain_listeners", "10.1.2.3:5555", 403},
		{"GET", "/debug/pprof/heap", "10.1.2.3:5555", 403},
		{"GET", "/config_dump", "10.1.2.3:5555", 403},
		{"GET", "/drain", "10.1.2.3:5555", 200}, // not a route: the mux says 405
		{"POST", "/drain", "127.0.0.1:5555", 200},
		{"POST", "/drain", "[::1]:5555", 200},
		{"POST", "/drain", "[::ffff:127.0.0.1]:5555", 200},
		// The proxy dials the app from 127.0.0.6 / ::6 for captured inbound
		// traffic: that is a remote client.
		{"POST", "/quitquitquit", "127.0.0.6:5555", 403},
		{"POST", "/quitquitquit", "[::6]:5555", 403},
		{"POST", "/drain", "garbage", 403},
	}
	for _, c := range cases {
		req := httptest.NewRequest(c.method, c.path, nil)
		req.RemoteAddr = c.remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s %s from %s: %d, want %d (%s)", c.method, c.path, c.remote, rec.Code, c.want, rec.Body)
		}
	}
	if _, err := admin.ParseControlFrom([]string{"10.0.0.0/8", "192.168.1.5", "::/0"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.ParseControlFrom([]string{"localhost"}); err == nil {
		t.Fatal("a name must be refused")
	}
}

func TestAdminControlFromValidated(t *testing.T) {
	var out, errb strings.Builder
	code := Run(context.Background(), echoHelper(t, make(chan string, 1)), []string{"validate", "--admin-control-from=10.0.0.0/8,pods"}, nil, &out, &errb, nil)
	if code != ExitConfig || !strings.Contains(errb.String(), "admin-control-from") || !strings.Contains(errb.String(), `"pods"`) {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

// TestAdminControlFromOutsideNetns runs a helper whose admin server listens
// on every interface (as ":15100" does in a pod) and reaches it from a
// network namespace the test creates, over a veth pair: a client that is
// not on loopback gets 403 from every control endpoint and 200 from the
// probes and metrics; loopback may drain; --admin-control-from widens it.
func TestAdminControlFromOutsideNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		unavailable(t, "needs root to create a network namespace (run the tests as root)")
	}
	for _, tool := range []string{"ip", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			unavailable(t, "needs %s (apt-get install iproute2 curl)", tool)
		}
	}
	ns := fmt.Sprintf("skadm%d", os.Getpid()%100000)
	hostIf, nsIf := ns+"h", ns+"n"
	octet := 16 + os.Getpid()%200
	hostIP, nsIP := fmt.Sprintf("10.254.%d.1", octet), fmt.Sprintf("10.254.%d.2", octet)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", hostIf).Run()
		exec.Command("ip", "netns", "del", ns).Run()
	})
	run("ip", "link", "add", hostIf, "type", "veth", "peer", "name", nsIf)
	run("ip", "link", "set", nsIf, "netns", ns)
	run("ip", "addr", "add", hostIP+"/30", "dev", hostIf)
	run("ip", "link", "set", hostIf, "up")
	run("ip", "netns", "exec", ns, "ip", "addr", "add", nsIP+"/30", "dev", nsIf)
	run("ip", "netns", "exec", ns, "ip", "link", "set", nsIf, "up")
	run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

	// curl from inside the namespace: method, URL → status code.
	remote := func(method, url string) int {
		t.Helper()
		out, err := exec.Command("ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
			"--max-time", "10", "-X", method, url).Output()
		if err != nil {
			t.Fatalf("curl %s %s from %s: %v (%s)", method, url, ns, err, out)
		}
		var code int
		fmt.Sscan(string(out), &code)
		return code
	}

	start := func(extra ...string) (port string, stop func() int) {
		port = fmt.Sprint(freePort(t))
		sigs := make(chan os.Signal, 1)
		var logs syncBuffer
		code := make(chan int, 1)
		args := append([]string{"--admin-addr=:" + port, "--drain-delay=0"}, extra...)
		go func() {
			code <- Run(context.Background(), echoHelper(t, make(chan string, 1)), args, nil, &logs, &logs, sigs)
		}()
		adminAddrOf(t, &logs)
		waitFor(t, func() bool { return status("http://127.0.0.1:"+port+"/readyz") == 200 })
		return port, func() int {
			sigs <- os.Interrupt
			select {
			case c := <-code:
				return c
			case <-time.After(30 * time.Second):
				t.Fatal("helper did not stop")
				return -1
			}
		}
	}

	port, stop := start()
	base := "http://" + hostIP + ":" + port
	for _, p := range []string{"/livez", "/readyz", "/startupz", "/metrics", "/version"} {
		if got := remote("GET", base+p); got != 200 {
			t.Errorf("GET %s from %s: %d, want 200", p, nsIP, got)
		}
	}
	for _, p := range []string{"/drain", "/quitquitquit", "/healthcheck/fail", "/healthcheck/ok", "/drain_listeners"} {
		if got := remote("POST", base+p); got != 403 && got != 404 {
			t.Errorf("POST %s from %s: %d, want 403/404", p, nsIP, got)
		}
	}
	if got := remote("GET", base+"/debug/pprof/"); got != 403 && got != 404 {
		t.Errorf("GET /debug/pprof/ from %s: %d", nsIP, got)
	}
	if got := status("http://127.0.0.1:" + port + "/readyz"); got != 200 {
		t.Fatalf("a remote POST /drain or /quitquitquit took effect: readyz %d", got)
	}
	// The proxy's inbound source address is not loopback for this rule.
	out, _ := exec.Command("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--interface", "127.0.0.6", "-X", "POST", "http://127.0.0.1:"+port+"/quitquitquit").Output()
	if string(out) != "403" {
		t.Errorf("POST /quitquitquit from 127.0.0.6: %s, want 403", out)
	}
	// From loopback, `HELPER drain` (a preStop hook) works.
	var dout, derr strings.Builder
	if c := Run(context.Background(), echoHelper(t, nil), []string{"drain", "--admin-addr=:" + port}, nil, &dout, &derr, nil); c != ExitOK {
		t.Fatalf("drain subcommand: exit %d: %s", c, derr.String())
	}
	if got := status("http://127.0.0.1:" + port + "/readyz"); got != 503 {
		t.Fatalf("readyz after drain from loopback: %d", got)
	}
	if c := stop(); c != ExitOK {
		t.Fatalf("exit %d", c)
	}

	// Widened by the flag: the namespace's address may quit the helper.
	port, stop = start("--admin-control-from=127.0.0.1/32," + nsIP + "/32")
	if got := remote("POST", "http://"+hostIP+":"+port+"/drain"); got != 200 {
		t.Fatalf("POST /drain from an allowed %s: %d", nsIP, got)
	}
	if got := status("http://127.0.0.1:" + port + "/readyz"); got != 503 {
		t.Fatalf("readyz after an allowed remote drain: %d", got)
	}
	stop()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
