package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// netns is a network namespace created by a test, joined to the host by a
// veth pair: host side .1, namespace side .2 of a /24.
type netns struct {
	t            *testing.T
	name         string
	hostIP, nsIP string
	fd           int
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	testenv.RequireRoot(t)
	ip := testenv.Tool(t, "ip", "iproute2")
	testenv.Tool(t, "iptables", "iptables")
	id := rand.IntN(200) + 20
	n := &netns{t: t, name: fmt.Sprintf("skproxy%d", id), hostIP: fmt.Sprintf("10.251.%d.1", id), nsIP: fmt.Sprintf("10.251.%d.2", id)}
	vh, vn := fmt.Sprintf("skph%d", id), fmt.Sprintf("skpn%d", id)
	exec.Command(ip, "netns", "del", n.name).Run()
	exec.Command(ip, "link", "del", vh).Run()
	run(t, ip, "netns", "add", n.name)
	t.Cleanup(func() { exec.Command(ip, "netns", "del", n.name).Run(); exec.Command(ip, "link", "del", vh).Run() })
	run(t, ip, "-n", n.name, "link", "set", "lo", "up")
	run(t, ip, "link", "add", vh, "type", "veth", "peer", "name", vn)
	run(t, ip, "link", "set", vn, "netns", n.name)
	run(t, ip, "addr", "add", n.hostIP+"/24", "dev", vh)
	run(t, ip, "link", "set", vh, "up")
	run(t, ip, "-n", n.name, "addr", "add", n.nsIP+"/24", "dev", vn)
	run(t, ip, "-n", n.name, "link", "set", vn, "up")
	fd, err := unix.Open("/run/netns/"+n.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	n.fd = fd
	t.Cleanup(func() { unix.Close(fd) })
	return n
}

// do runs f on an OS thread inside the namespace: sockets f creates live there.
func (n *netns) do(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with this goroutine
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			n.t.Errorf("setns: %v", err)
			return
		}
		f()
	}()
	<-done
}

func (n *netns) listen(addr string) net.Listener {
	var ln net.Listener
	var err error
	n.do(func() { ln, err = net.Listen("tcp", addr) })
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { ln.Close() })
	return ln
}

// client returns an HTTP client whose connections start inside the namespace.
func (n *netns) client() *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			n.do(func() { c, err = (&net.Dialer{}).DialContext(ctx, network, addr) })
			return
		}}}
}

type seen struct {
	Remote string      `json:"remote"`
	Host   string      `json:"host"`
	Header http.Header `json:"header"`
}

func serveSeen(ln net.Listener) {
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(seen{r.RemoteAddr, r.Host, r.Header})
	}))
}

// TestTransparentInboundAndOutbound runs the binary as UID 1337 in a fresh
// network namespace with initnet-style iptables REDIRECT rules and checks
// both directions: inbound reaches the app from 127.0.0.6 at its original
// port, outbound reaches the original destination, raw TCP passes through.
func TestTransparentInboundAndOutbound(t *testing.T) {
	n := newNetns(t)
	ipt := "iptables"
	for _, rule := range [][]string{
		{"-t", "nat", "-A", "PREROUTING", "-p", "tcp", "-m", "multiport", "--dports", "8080,7000", "-j", "REDIRECT", "--to-ports", "15006"},
		{"-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-m", "owner", "!", "--uid-owner", "1337", "!", "-d", "127.0.0.1/32", "-j", "REDIRECT", "--to-ports", "15001"},
	} {
		run(t, append([]string{"ip", "netns", "exec", n.name, ipt}, rule...)...)
	}
	// The app inside the pod namespace.
	serveSeen(n.listen("127.0.0.1:8080"))
	tcpApp := n.listen("127.0.0.1:7000")
	go func() {
		for {
			c, err := tcpApp.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); b, _ := io.ReadAll(c); fmt.Fprintf(c, "tcp app got %q", b) }()
		}
	}()
	// A server outside the pod, reached by the app's outbound calls.
	ext, err := net.Listen("tcp", n.hostIP+":9090")
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Close()
	serveSeen(ext)

	os.Chmod(strings.TrimSuffix(binPath, "/proxy"), 0o755)
	nsenter := testenv.Tool(t, "nsenter", "util-linux")
	setpriv := testenv.Tool(t, "setpriv", "util-linux")
	wrap := []string{nsenter, "--net=/run/netns/" + n.name, setpriv, "--reuid=1337", "--regid=1337", "--clear-groups"}
	p := startBinaryIn(t, n, wrap, "--mode", "transparent", "--access-log=true") // the default addresses initnet redirects to

	// Inbound from the host to the pod's IP:8080.
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Get("http://" + n.nsIP + ":8080/in")
	if err != nil {
		t.Fatalf("inbound: %v", err)
	}
	var s seen
	json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	if !strings.HasPrefix(s.Remote, "127.0.0.6:") || s.Header.Get("X-Forwarded-For") != n.hostIP || s.Header.Get("Via") == "" {
		t.Errorf("app saw %+v", s)
	}
	// Raw TCP inbound to port 7000.
	c, err := net.DialTimeout("tcp", n.nsIP+":7000", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "\x01\x02raw")
	c.(*net.TCPConn).CloseWrite()
	b, _ := io.ReadAll(c)
	c.Close()
	if string(b) != `tcp app got "\x01\x02raw"` {
		t.Errorf("raw tcp inbound: %q", b)
	}
	// Outbound from the app (inside the namespace, not UID 1337) to the external server.
	resp, err = n.client().Get("http://" + n.hostIP + ":9090/out")
	if err != nil {
		t.Fatalf("outbound: %v", err)
	}
	s = seen{}
	json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	if s.Header.Get("Via") != "1.1 sidecarkit" || s.Header.Get("X-Request-Id") == "" || s.Host != n.hostIP+":9090" {
		t.Errorf("external server saw %+v (the request did not go through the proxy?)", s)
	}
	logged := func() bool {
		return strings.Contains(p.out.String(), `"cluster":"passthrough"`) && strings.Contains(p.out.String(), `"cluster":"app"`)
	}
	for i := 0; i < 200 && !logged(); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if !logged() {
		t.Errorf("access log lacks passthrough/app lines:\n%s", tail(p.out.String()))
	}
}

// startBinaryIn starts the proxy inside n (through wrap) and waits until
// its admin endpoint, inside the namespace, is ready.
func startBinaryIn(t *testing.T, n *netns, wrap []string, args ...string) *proc {
	t.Helper()
	p := &proc{admin: "127.0.0.1:15000", out: &lockedBuf{}, exited: make(chan struct{})}
	argv := append(append([]string{}, wrap...), binPath, "--admin-addr", p.admin, "--prometheus-addr", "")
	argv = append(argv, args...)
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); p.exitCode = p.cmd.ProcessState.ExitCode(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("proxy output:\n%s", tail(p.out.String()))
		}
	})
	c := n.client()
	c.Timeout = time.Second
	for i := 0; i < 300; i++ {
		if r, err := c.Get("http://" + p.admin + "/readyz"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("proxy exited %d:\n%s", p.exitCode, p.out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("proxy not ready:\n%s", p.out.String())
	return nil
}

// TestTransparentIPv6 is the IPv6 half: ip6tables REDIRECT to [::]:15006
// and [::1]:15001; inbound reaches the app at [::1]:<port> from ::6 (added
// to lo as Istio's init does), outbound reaches the original destination.
func TestTransparentIPv6(t *testing.T) {
	n := newNetns(t)
	testenv.Tool(t, "ip6tables", "iptables")
	id := strings.TrimPrefix(n.name, "skproxy")
	host6, ns6 := "fd00:251:"+id+"::1", "fd00:251:"+id+"::2"
	vh, vn := "skph"+id, "skpn"+id
	run(t, "ip", "addr", "add", host6+"/64", "dev", vh, "nodad")
	run(t, "ip", "-n", n.name, "addr", "add", ns6+"/64", "dev", vn, "nodad")
	run(t, "ip", "-n", n.name, "addr", "add", "::6/128", "dev", "lo", "nodad")
	for _, rule := range [][]string{
		{"-t", "nat", "-A", "PREROUTING", "-p", "tcp", "--dport", "8080", "-j", "REDIRECT", "--to-ports", "15006"},
		{"-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-m", "owner", "!", "--uid-owner", "1337", "!", "-d", "::1/128", "-j", "REDIRECT", "--to-ports", "15001"},
	} {
		run(t, append([]string{"ip", "netns", "exec", n.name, "ip6tables"}, rule...)...)
	}
	serveSeen(n.listen("[::1]:8080"))
	ext, err := net.Listen("tcp", "["+host6+"]:9090")
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Close()
	serveSeen(ext)
	os.Chmod(strings.TrimSuffix(binPath, "/proxy"), 0o755)
	wrap := []string{testenv.Tool(t, "nsenter", "util-linux"), "--net=/run/netns/" + n.name,
		testenv.Tool(t, "setpriv", "util-linux"), "--reuid=1337", "--regid=1337", "--clear-groups"}
	startBinaryIn(t, n, wrap, "--mode", "transparent")

	resp, err := (&http.Client{Timeout: 20 * time.Second}).Get("http://[" + ns6 + "]:8080/in6")
	if err != nil {
		t.Fatalf("inbound v6: %v", err)
	}
	var s seen
	json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	if !strings.HasPrefix(s.Remote, "[::6]:") || s.Header.Get("X-Forwarded-For") != host6 {
		t.Errorf("app saw %+v", s)
	}
	resp, err = n.client().Get("http://[" + host6 + "]:9090/out6")
	if err != nil {
		t.Fatalf("outbound v6: %v", err)
	}
	s = seen{}
	json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	if s.Header.Get("Via") != "1.1 sidecarkit" {
		t.Errorf("external server saw %+v (not through the proxy?)", s)
	}
}
