package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// The Istio-parity proof (issue 17): real packets, sent as the app (root)
// or as the proxy (UID 1337) from inside the pod namespace, and the name of
// the listener that answers them. Every listener answers with its name, so
// "where the packet landed" is read from the reply: "outbound" (15001),
// "inbound" (15006), "dns" (15053, TCP and UDP; the UDP one owned by UID
// 1337 as the DNS proxy is, so the conntrack zones are exercised), "app"
// (8080), "tunnel" (15008), "metrics" (15090), or "outside" (the outside
// namespace's servers). "refused" or "timeout" when nothing answered.

const (
	proxyUIDInt = 1337
	tunnelPort  = 15008
	metricsPort = 15090
	outTLSPort  = 9443
)

// withFSUID runs f on a locked thread whose filesystem UID is uid (and,
// for uids of the form gidProbe+N, whose filesystem GID is N): sockets it
// creates are owned by them (what owner matches see).
func withFSUID(uid int, f func() error) error {
	if uid >= gidProbe {
		old, _, _ := unix.RawSyscall(unix.SYS_SETFSGID, uintptr(uid-gidProbe), 0, 0)
		defer unix.RawSyscall(unix.SYS_SETFSGID, old, 0, 0)
		return f()
	}
	if uid == 0 {
		return f()
	}
	old, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, uintptr(uid), 0, 0)
	defer unix.RawSyscall(unix.SYS_SETFSUID, old, 0, 0)
	return f()
}

// gidProbe+N as a probe's uid means: root, in group N.
const gidProbe = 1 << 30

// nameServer answers every TCP connection with name and closes it.
func nameServer(t *testing.T, ns, addr, name string) {
	t.Helper()
	ln, err := listen(ns, "tcp", addr)
	if err != nil {
		t.Fatalf("listen %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(name))
			c.Close()
		}
	}()
}

// inboundServer is the inbound listener: transparent (IP_TRANSPARENT and
// IPV6_TRANSPARENT, as a TPROXY listener must be), answering "inbound",
// and for a TPROXY'd connection (whose local address is the original
// destination) also that address and the client's own address.
func inboundServer(t *testing.T, ns string, port int) {
	t.Helper()
	var ln net.Listener
	err := inNS(ns, func() error {
		lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
			var serr error
			c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1)
				if serr == nil {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1)
				}
			})
			return serr
		}}
		var err error
		ln, err = lc.Listen(context.Background(), "tcp", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatalf("transparent listen in %s: %v", ns, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			msg := "inbound"
			if l := c.LocalAddr().(*net.TCPAddr); l.Port != port {
				msg += fmt.Sprintf(" tproxy local=%s remote=%s", l, c.RemoteAddr().(*net.TCPAddr).IP)
			}
			c.Write([]byte(msg))
			c.Close()
		}
	}()
}

// udpNameServer answers every datagram with name, from a socket owned by uid.
func udpNameServer(t *testing.T, ns, addr, name string, uid int) {
	t.Helper()
	var pc net.PacketConn
	err := inNS(ns, func() error {
		return withFSUID(uid, func() error {
			var err error
			pc, err = net.ListenPacket("udp", addr)
			return err
		})
	})
	if err != nil {
		t.Fatalf("listen udp %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(name), from)
		}
	}()
}

// nullSegment sends, from ns and address src, a TCP segment with no flags
// (conntrack state INVALID) to dst, and reports "rst" when dst's kernel
// answers with a reset, "no answer" otherwise.
func nullSegment(ns, src, dst string) string {
	d, err := netip.ParseAddrPort(dst)
	if err != nil {
		return err.Error()
	}
	s := netip.MustParseAddr(src)
	res := "no answer"
	err = inNS(ns, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_TCP)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: s.As4()}); err != nil {
			return err
		}
		const sport = 40404
		seg := make([]byte, 20)
		binary.BigEndian.PutUint16(seg[0:], sport)
		binary.BigEndian.PutUint16(seg[2:], d.Port())
		binary.BigEndian.PutUint32(seg[4:], 0x01020304)
		seg[12] = 5 << 4 // data offset; flags byte 13 stays 0
		binary.BigEndian.PutUint16(seg[14:], 1024)
		// Checksum over the pseudo-header and the segment.
		var sum uint32
		sa, da := s.As4(), d.Addr().As4()
		pseudo := append(append(append([]byte{}, sa[:]...), da[:]...), 0, unix.IPPROTO_TCP, 0, 20)
		for _, b := range [][]byte{pseudo, seg} {
			for i := 0; i+1 < len(b); i += 2 {
				sum += uint32(binary.BigEndian.Uint16(b[i:]))
			}
		}
		for sum > 0xffff {
			sum = sum>>16 + sum&0xffff
		}
		binary.BigEndian.PutUint16(seg[16:], ^uint16(sum))
		if err := unix.Sendto(fd, seg, 0, &unix.SockaddrInet4{Addr: da}); err != nil {
			return err
		}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1})
		deadline := time.Now().Add(time.Second)
		buf := make([]byte, 1500)
		for time.Now().Before(deadline) {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				return nil
			}
			ihl := int(buf[0]&0x0f) * 4
			if n < ihl+20 || netip.AddrFrom4([4]byte(buf[12:16])) != d.Addr() {
				continue
			}
			t := buf[ihl:]
			if binary.BigEndian.Uint16(t[0:]) == d.Port() && binary.BigEndian.Uint16(t[2:]) == sport && t[13]&0x04 != 0 {
				res = "rst"
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return "raw socket: " + err.Error()
	}
	return res
}

// landing sends one TCP connection or UDP datagram from ns as uid and
// returns the name of the listener that answered.
func landing(ns string, uid int, network, addr string) string {
	if network == "tcp-null" {
		src := outV4
		return nullSegment(ns, src, addr)
	}
	var c net.Conn
	err := inNS(ns, func() error {
		return withFSUID(uid, func() error {
			var err error
			c, err = net.DialTimeout(network, addr, 2*time.Second)
			return err
		})
	})
	if err != nil {
		if errors.Is(err, unix.ECONNREFUSED) {
			return "refused"
		}
		return "dial error: " + err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if strings.HasPrefix(network, "udp") {
		c.Write([]byte("query"))
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			return "timeout"
		}
		return string(buf[:n])
	}
	b, err := io.ReadAll(c)
	if err != nil && len(b) == 0 {
		return "timeout"
	}
	return string(b)
}

// probeCase is one packet and where it must land.
type probeCase struct {
	what         string
	ns           string // "" = pod
	uid          int
	network, dst string
	want         string
}

// parityScenario is one initnet command line and the packets it decides.
type parityScenario struct {
	name   string
	args   []string // after the initnet binary; backend flags are added
	resolv string   // resolv.conf content, written to a file given as --resolv-conf
	probes []probeCase
	// hostNS: run initnet in the test's own namespace with
	// --network-namespace pointing at the pod.
	hostNS bool
	// drift: a command (per backend) run in the pod after the apply that
	// breaks initnet's rules; initnet is then applied again with --reconcile.
	drift map[string][]string
	ipv6  bool // install IPv6 rules too
	// zones: the DNS packets must have been in Istio's conntrack zones: the
	// app's queries to the DNS proxy in zone 2, the proxy's upstream
	// queries and their answers in zone 1 (counted by zoneWatch).
	zones bool
}

// zoneWatch counts, in the pod, UDP DNS packets by conntrack zone (rule
// order: app→DNS proxy in zone 2, proxy→upstream in zone 1, upstream
// answers in zone 1).
const zoneWatch = `table inet zonewatch {
	chain out { type filter hook output priority 0; policy accept;
		udp dport 15053 ct zone 2 counter
		udp dport 53 ct zone 1 counter
	}
	chain in { type filter hook input priority 0; policy accept;
		udp sport 53 ct zone 1 counter
	}
}`

var packetCounts = regexp.MustCompile(`counter packets (\d+)`)

func zoneCounts(p *pod) []string {
	out, code := p.exec("nft", "list", "table", "inet", "zonewatch")
	if code != 0 {
		p.t.Fatalf("nft list table inet zonewatch: %s", out)
	}
	var n []string
	for _, m := range packetCounts.FindAllStringSubmatch(out, -1) {
		n = append(n, m[1])
	}
	return n
}

// hostExec runs a command in the test's own namespace.
func hostExec(t *testing.T) func(args ...string) (string, int) {
	return func(args ...string) (string, int) {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return string(out), 0
	}
}

func paritySnapshot(p *pod) string {
	var b strings.Builder
	b.WriteString(p.ruleset())
	// The policy rules, and routes of initnet's protocol (0x5c = 92) in any
	// table (the kernel's own link routes come and go with DAD, so they are
	// left out).
	for _, c := range [][]string{{"ip", "-4", "rule"}, {"ip", "-6", "rule"}, {"ip", "-4", "route", "show", "table", "all", "proto", "92"},
		{"ip", "-6", "route", "show", "table", "all", "proto", "92"}} {
		out, code := p.exec(c...)
		if code != 0 {
			p.t.Fatalf("%v: %s", c, out)
		}
		b.WriteString(out)
	}
	for _, tool := range []string{"iptables-legacy-save", "ip6tables-legacy-save"} {
		// No -t: reading must not load a table.
		out, code := p.exec(tool)
		if code != 0 {
			p.t.Fatalf("%s: %s", tool, out)
		}
		b.WriteString(emptyTables.ReplaceAllString(legacyStable(out), ""))
	}
	return b.String()
}

func legacyStable(save string) string {
	var out []string
	for _, l := range strings.Split(save, "\n") {
		if !strings.HasPrefix(l, "#") {
			out = append(out, legacyCounters.ReplaceAllString(l, ""))
		}
	}
	return strings.Join(out, "\n")
}

// emptyTables matches a legacy table section with nothing but built-in
// chains: iptables-legacy cannot unload a table from one namespace once
// it is loaded (raw and mangle, for DNS zones and --drop-invalid).
var emptyTables = regexp.MustCompile(`(?m)^\*\w+\n(?::[A-Z]+ [A-Z]+\n)*COMMIT\n`)

// TestIstioParity sends, with each backend, the packets of every item of
// issue 17 and checks where each lands; after each scenario --cleanup must
// leave the namespace as it found it.
func TestIstioParity(t *testing.T) {
	testenv.RequireRoot(t)
	for _, tool := range [][2]string{{"ip", "iproute2"}, {"nft", "nftables"}, {"iptables-restore", "iptables"}, {"iptables-legacy-restore", "iptables"}} {
		testenv.Tool(t, tool[0], tool[1])
	}
	bins := build(t)
	for _, v := range []variant{
		{name: "nftables", backend: "nftables"},
		{name: "iptables-nft", backend: "iptables", flags: []string{"--iptables-restore", "iptables-nft-restore", "--ip6tables-restore", "ip6tables-nft-restore"}},
		{name: "iptables-legacy", backend: "iptables", flags: []string{"--iptables-restore", "iptables-legacy-restore", "--ip6tables-restore", "ip6tables-legacy-restore"}},
	} {
		t.Run(v.name, func(t *testing.T) { parity(t, bins, v) })
	}
}

func parity(t *testing.T, bins binaries, v variant) {
	p := newPod(t)
	podListeners(t, p)
	if out, code := p.exec("nft", zoneWatch); code != 0 {
		t.Fatalf("zone watch: %s", out)
	}
	// istio-iptables' IPv6 detection: the pod's first address is IPv4, so
	// no IPv6 rules unless --dual-stack (any IPv6 address) says so.
	for _, c := range []struct {
		args []string
		ip6  bool
	}{{nil, false}, {[]string{"--dual-stack"}, true}} {
		out, code := p.exec(append([]string{bins.initnet, "istio-iptables", "-n", "-b", "*", "--backend", "nftables"}, c.args...)...)
		if code != 0 || strings.Contains(out, "table ip6") != c.ip6 {
			t.Errorf("istio-iptables %v: IPv6 rules %v, want %v (exit %d)\n%s", c.args, !c.ip6, c.ip6, code, out)
		}
	}
	scenarios := parityScenarios(p)
	runScenarios(t, p, bins, v, scenarios)
}

// podListeners starts the named listeners in the pod and outside.
func podListeners(t *testing.T, p *pod) {
	for _, l := range []struct {
		port int
		name string
	}{{15001, "outbound"}, {15053, "dns"}, {appPort, "app"}, {tunnelPort, "tunnel"}, {metricsPort, "metrics"}} {
		nameServer(t, p.pod, fmt.Sprintf(":%d", l.port), l.name)
	}
	// Bound to 127.0.0.1 as istio-agent's DNS proxy is, so its answers leave
	// from the address the redirect sent the query to.
	inboundServer(t, p.pod, 15006)
	udpNameServer(t, p.pod, "127.0.0.1:15053", "dns", proxyUIDInt)
	udpNameServer(t, p.pod, "[::1]:15053", "dns", proxyUIDInt)
	for _, port := range []int{outPort, 53, outTLSPort} {
		nameServer(t, p.out, fmt.Sprintf(":%d", port), "outside")
	}
	// One socket per address, so each answer comes from the address asked.
	udpNameServer(t, p.out, outV4+":53", "outside", 0)
	udpNameServer(t, p.out, excludedV4+":53", "outside", 0)
	udpNameServer(t, p.out, "["+outV6+"]:53", "outside", 0)
	udpNameServer(t, p.out, "["+excludedV6+"]:53", "outside", 0)
	// The pod's loopback resolvers answer "local-resolver" when not captured.
	for _, a := range []string{"127.0.0.53:53", "127.0.0.1:53"} {
		udpNameServer(t, p.pod, a, "local-resolver", 0)
		nameServer(t, p.pod, a, "local-resolver")
	}
}

// parityScenarios is issue 17, item by item, as packets and where
// istio-iptables sends them.
func parityScenarios(p *pod) []parityScenario {

	pod := func(port int) string { return fmt.Sprintf("%s:%d", podV4, port) }
	out := func(port int) string { return fmt.Sprintf("%s:%d", outV4, port) }
	excl := func(port int) string { return fmt.Sprintf("%s:%d", excludedV4, port) }
	app, proxy := 0, proxyUIDInt
	in := func(what string, port int, want string) probeCase {
		return probeCase{what: what, ns: p.out, network: "tcp4", dst: pod(port), want: want}
	}
	tcp := func(what string, uid int, dst, want string) probeCase {
		return probeCase{what: what, uid: uid, network: "tcp4", dst: dst, want: want}
	}
	udp := func(what string, uid int, dst, want string) probeCase {
		return probeCase{what: what, uid: uid, network: "udp4", dst: dst, want: want}
	}
	resolv := "search svc.cluster.local\nnameserver 127.0.0.53\nnameserver 127.0.0.1\nnameserver " + outV4 + "\noptions ndots:5\n"
	return []parityScenario{
		{name: "8-bare-initnet-captures-everything", args: nil, probes: []probeCase{
			in("outside → app port", appPort, "inbound"),
			tcp("app → outside", app, out(outPort), "outbound"),
			tcp("proxy → outside", proxy, out(outPort), "outside"),
			tcp("app → localhost", app, "127.0.0.1:8080", "app"),
			tcp("app → own pod IP", app, pod(appPort), "app"),
			// 7: bare initnet keeps the proxy's metrics port out of capture.
			in("outside → 15090 (--proxy-ports default)", metricsPort, "metrics"),
		}},
		{name: "8-istio-init-argv", args: []string{"istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337"}, probes: []probeCase{
			in("outside → app port (nothing captured)", appPort, "app"),
			tcp("app → outside (nothing captured)", app, out(outPort), "outside"),
			tcp("proxy → own pod IP (still inbound, as Istio)", proxy, pod(appPort), "inbound"),
		}},
		{name: "7-istio-injected-captures-15090-unless-d", args: []string{"istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15020"}, probes: []probeCase{
			in("outside → 15090 (Istio captures it)", metricsPort, "inbound"),
			in("outside → app", appPort, "inbound"),
		}},
		{name: "7-overlaps-istio-precedence", args: []string{"-b", fmt.Sprintf("%d,%d", appPort, metricsPort), "-d", fmt.Sprint(appPort), "-q", fmt.Sprint(outTLSPort), "-o", fmt.Sprint(outTLSPort), "-i", ""}, probes: []probeCase{
			in("-b 8080 -d 8080: captured", appPort, "inbound"),
			in("-b 15090: captured", metricsPort, "inbound"),
			tcp("-q 9443 -o 9443: not captured", app, out(outTLSPort), "outside"),
		}},
		{name: "6-tunnel-port-never-captured", args: []string{"-b", fmt.Sprintf("*")}, probes: []probeCase{
			in("outside → 15008", tunnelPort, "tunnel"),
			tcp("proxy → own pod IP:15008", proxy, pod(tunnelPort), "tunnel"),
			tcp("proxy → own pod IP:8080", proxy, pod(appPort), "inbound"),
		}},
		{name: "6-tunnel-port-listed-in-b", args: []string{"-b", fmt.Sprintf("%d,%d", tunnelPort, appPort)}, probes: []probeCase{
			in("outside → 15008 (-b lists it)", tunnelPort, "tunnel"),
		}},
		{name: "5-no-inbound-proxy-calls-pod-ip", args: []string{"-b", ""}, probes: []probeCase{
			in("outside → app (no inbound capture)", appPort, "app"),
			tcp("proxy → own pod IP", proxy, pod(appPort), "inbound"),
		}},
		{name: "4-loopback-include-cidr", args: []string{"-i", "127.1.2.3/32," + outV4 + "/32"}, probes: []probeCase{
			tcp("app → 127.1.2.3", app, "127.1.2.3:8080", "outbound"),
			tcp("app → included outside", app, out(outPort), "outbound"),
			tcp("app → 127.0.0.1", app, "127.0.0.1:8080", "app"),
		}},
		{name: "1-2-dns-resolv-conf", args: []string{"--redirect-dns"}, resolv: resolv, zones: true, probes: []probeCase{
			udp("app UDP → 127.0.0.53:53", app, "127.0.0.53:53", "dns"),
			tcp("app TCP → 127.0.0.53:53", app, "127.0.0.53:53", "dns"),
			udp("app UDP → 127.0.0.1:53", app, "127.0.0.1:53", "dns"),
			tcp("app TCP → 127.0.0.1:53", app, "127.0.0.1:53", "dns"),
			udp("app UDP → nameserver", app, out(53), "dns"),
			tcp("app TCP → nameserver", app, out(53), "dns"),
			udp("app UDP → not a nameserver", app, excl(53), "outside"),
			tcp("app TCP → not a nameserver (outbound, as Istio)", app, excl(53), "outbound"),
			udp("proxy UDP → nameserver (upstream, zone 1)", proxy, out(53), "outside"),
			tcp("proxy TCP → nameserver", proxy, out(53), "outside"),
			tcp("proxy → own pod IP:8080", proxy, pod(appPort), "inbound"),
		}},
		{name: "2-dns-capture-all", args: []string{"--redirect-dns", "--capture-all-dns"}, resolv: "nameserver 127.0.0.53\n", probes: []probeCase{
			udp("app UDP → any server", app, excl(53), "dns"),
			tcp("app TCP → any server", app, excl(53), "dns"),
			udp("app UDP → 127.0.0.1:53", app, "127.0.0.1:53", "dns"),
		}},
		{name: "2-dns-no-nameservers", args: []string{"--redirect-dns"}, resolv: "search x\n", probes: []probeCase{
			udp("app UDP → server", app, out(53), "outside"),
			udp("app UDP → 127.0.0.53", app, "127.0.0.53:53", "local-resolver"),
		}},
		{name: "3-o-53-excludes-tcp-and-udp", args: []string{"--redirect-dns", "--capture-all-dns", "-o", "53"}, resolv: resolv, probes: []probeCase{
			udp("app UDP → nameserver", app, out(53), "outside"),
			tcp("app TCP → nameserver", app, out(53), "outside"),
		}},
		{name: "k-kube-virt-interfaces", args: []string{"-k", "eth1"}, probes: []probeCase{
			{what: "VM (eth1) → outside server address", ns: p.out, network: "tcp4", dst: podX4 + ":8080", want: "outbound"},
			in("eth0 → app still inbound", appPort, "inbound"),
		}},
		{name: "ipv6-items-5-6-and-core", ipv6: true, args: []string{"-b", fmt.Sprint(appPort)}, probes: []probeCase{
			{what: "outside → [pod]:8080", ns: p.out, network: "tcp6", dst: fmt.Sprintf("[%s]:%d", podV6, appPort), want: "inbound"},
			{what: "outside → [pod]:15008", ns: p.out, network: "tcp6", dst: fmt.Sprintf("[%s]:%d", podV6, tunnelPort), want: "tunnel"},
			{what: "proxy → [own pod IP]:8080", uid: proxy, network: "tcp6", dst: fmt.Sprintf("[%s]:%d", podV6, appPort), want: "inbound"},
			{what: "proxy → [own pod IP]:15008", uid: proxy, network: "tcp6", dst: fmt.Sprintf("[%s]:%d", podV6, tunnelPort), want: "tunnel"},
			{what: "app → [outside]", network: "tcp6", dst: fmt.Sprintf("[%s]:%d", outV6, outPort), want: "outbound"},
			{what: "app → [::1]", network: "tcp6", dst: fmt.Sprintf("[::1]:%d", appPort), want: "app"},
		}},
		{name: "m-tproxy-keeps-client-address", args: []string{"-m", "TPROXY", "-d", fmt.Sprint(tunnelPort)}, probes: []probeCase{
			in("outside → app port: TPROXY'd, original destination and client address kept", appPort,
				fmt.Sprintf("inbound tproxy local=%s:%d remote=%s", podV4, appPort, outV4)),
			in("outside → excluded port", tunnelPort, "tunnel"),
			tcp("proxy → own pod IP (nat, as Istio)", proxy, pod(appPort), "inbound"),
			tcp("app → outside", app, out(outPort), "outbound"),
		}},
		{name: "ipv6-dns", ipv6: true, args: []string{"--redirect-dns"}, resolv: "nameserver " + outV6 + "\n", probes: []probeCase{
			{what: "app UDP → [nameserver]:53", network: "udp6", dst: "[" + outV6 + "]:53", want: "dns"},
			{what: "app TCP → [nameserver]:53", network: "tcp6", dst: "[" + outV6 + "]:53", want: "dns"},
			{what: "app UDP → [not a nameserver]:53", network: "udp6", dst: "[" + excludedV6 + "]:53", want: "outside"},
			{what: "proxy UDP → [nameserver]:53", uid: proxy, network: "udp6", dst: "[" + outV6 + "]:53", want: "outside"},
			{what: "app UDP → IPv4 server (no IPv4 nameserver)", network: "udp4", dst: out(53), want: "outside"},
		}},
		// An INVALID segment (no TCP flags) to a closed port: the pod's
		// kernel answers with a reset, unless --drop-invalid drops it first.
		{name: "drop-invalid-off", probes: []probeCase{
			{what: "flagless segment to a closed port", ns: p.out, network: "tcp-null", dst: pod(8099), want: "rst"},
		}},
		{name: "drop-invalid", args: []string{"--drop-invalid"}, probes: []probeCase{
			{what: "flagless segment to a closed port", ns: p.out, network: "tcp-null", dst: pod(8099), want: "no answer"},
			in("a connection still lands", appPort, "inbound"),
		}},
		{name: "network-namespace", hostNS: true, probes: []probeCase{
			tcp("app → outside", app, out(outPort), "outbound"),
			in("outside → app", appPort, "inbound"),
		}},
		{name: "reconcile-replaces-drift", drift: map[string][]string{
			"nftables":        {"nft", "insert rule ip sidecarkit outbound return"},
			"iptables-nft":    {"iptables-nft", "-t", "nat", "-I", "SIDECARKIT_OUTBOUND", "-j", "RETURN"},
			"iptables-legacy": {"iptables-legacy", "-t", "nat", "-I", "SIDECARKIT_OUTBOUND", "-j", "RETURN"},
		}, probes: []probeCase{
			tcp("app → outside", app, out(outPort), "outbound"),
		}},
		{name: "owner-groups-include", args: []string{"--outbound-owner-groups", "1600"}, probes: []probeCase{
			tcp("group 1600 → outside: captured", gidProbe+1600, out(outPort), "outbound"),
			tcp("group 0 → outside: not captured", app, out(outPort), "outside"),
		}},
		{name: "owner-groups-exclude", args: []string{"--outbound-owner-groups-exclude", "1600"}, probes: []probeCase{
			tcp("group 1600 → outside: not captured", gidProbe+1600, out(outPort), "outside"),
			tcp("group 0 → outside: captured", app, out(outPort), "outbound"),
		}},
		{name: "u-g-comma-lists", args: []string{"-u", "1337,1500", "-g", "1337,1501"}, probes: []probeCase{
			tcp("uid 1500 → outside", 1500, out(outPort), "outside"),
			tcp("uid 1337 → outside", proxy, out(outPort), "outside"),
			tcp("app → outside", app, out(outPort), "outbound"),
		}},
	}

}

func runScenarios(t *testing.T, p *pod, bins binaries, v variant, scenarios []parityScenario) {
	before := paritySnapshot(p)
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			args := append([]string{bins.initnet}, sc.args...)
			args = append(args, "--backend", v.backend, "--log-format", "text", "--ipv6", fmt.Sprint(sc.ipv6))
			args = append(args, v.flags...)
			if sc.resolv != "" {
				f := filepath.Join(t.TempDir(), "resolv.conf")
				os.WriteFile(f, []byte(sc.resolv), 0o644)
				args = append(args, "--resolv-conf", f)
			}
			run := p.exec
			if sc.hostNS {
				args = append(args, "--network-namespace", "/var/run/netns/"+p.pod)
				run = hostExec(t)
			}
			out, code := run(args...)
			if code != 0 {
				t.Fatalf("%v: exit %d\n%s", args, code, out)
			}
			if d := sc.drift[v.name]; d != nil {
				if o, code := p.exec(d...); code != 0 {
					t.Fatalf("drift %v: %s", d, o)
				}
				if got := landing(p.pod, 0, "tcp4", fmt.Sprintf("%s:%d", outV4, outPort)); got != "outside" {
					t.Fatalf("the drift did not take: app → outside landed on %q", got)
				}
				if o, code := p.exec(append(args, "--reconcile")...); code != 0 {
					t.Fatalf("reconcile: exit %d\n%s", code, o)
				}
			}
			zonesBefore := zoneCounts(p)
			for _, pc := range sc.probes {
				ns := pc.ns
				if ns == "" {
					ns = p.pod
				}
				if got := landing(ns, pc.uid, pc.network, pc.dst); got != pc.want {
					t.Errorf("%s (%s %s as uid %d): landed on %q, want %q", pc.what, pc.network, pc.dst, pc.uid, got, pc.want)
				}
			}
			if zonesAfter := zoneCounts(p); sc.zones {
				for i, what := range []string{"app → DNS proxy in zone 2", "proxy → upstream in zone 1", "upstream answers in zone 1"} {
					if i >= len(zonesAfter) || zonesAfter[i] == zonesBefore[i] {
						t.Errorf("no DNS packet %s (counts before %v, after %v)", what, zonesBefore, zonesAfter)
					}
				}
			}
			cleanup := append([]string{bins.initnet, "--cleanup", "--backend", v.backend, "--ipv6", "true"}, v.flags...)
			if sc.hostNS {
				cleanup = append(cleanup, "--network-namespace", "/var/run/netns/"+p.pod)
			}
			if out, code := run(cleanup...); code != 0 {
				t.Fatalf("cleanup: exit %d\n%s", code, out)
			}
			if after := paritySnapshot(p); after != before {
				t.Errorf("after --cleanup:\n%s\nwant (as before initnet)\n%s", after, before)
			}
		})
	}
}
