package initnet

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sidecarkit/sidecarkit/initnet/iptables"
	"github.com/sidecarkit/sidecarkit/initnet/lo6"
	"github.com/sidecarkit/sidecarkit/initnet/nft"
	"github.com/sidecarkit/sidecarkit/initnet/probe"
	"github.com/sidecarkit/sidecarkit/initnet/rules"
	"github.com/sidecarkit/sidecarkit/initnet/tproxyroute"
	"github.com/sidecarkit/sidecarkit/shared/config"
	"github.com/sidecarkit/sidecarkit/shared/logging"
	"github.com/sidecarkit/sidecarkit/shared/version"
)

// Exit codes (CONTRACT.md).
const (
	ExitOK      = 0
	ExitRuntime = 1
	ExitConfig  = 2
	// ExitIstioValidation is istio-iptables' exit code for a failed
	// validation (what Istio CNI's repair controller looks for), used
	// under `initnet istio-iptables`.
	ExitIstioValidation = 126
)

// errValidation marks a failed --validate probe.
var errValidation = errors.New("validation failed")

// Env is what Main needs from the process, so tests can run it in-process.
type Env struct {
	Args, Environ  []string
	Stdout, Stderr io.Writer
	// IPv6Enabled resolves --ipv6=auto; nil reads /proc/sys/net/ipv6 (or,
	// in istio-iptables mode, the pod's addresses).
	IPv6Enabled func() bool
	// Reexec enters a network namespace and runs initnet again there with
	// the same arguments (--network-namespace); nil in in-process runs.
	Reexec func(netns string, stderr io.Writer) int
}

// netnsEntered is set in the environment of the re-executed initnet, so
// it does not enter the namespace again.
const netnsEntered = "INITNET_INTERNAL_NETNS_ENTERED"

// ReexecIn enters the network namespace at path on this (locked) thread
// and replaces the process with initnet running there, with the same
// argv (argv0 kept, so a multi-call binary dispatching on its name stays
// initnet): execve keeps the calling thread's namespaces. It returns only
// on error.
func ReexecIn(argv0 string, args, environ []string) func(string, io.Writer) int {
	return func(path string, stderr io.Writer) int {
		runtime.LockOSThread()
		f, err := os.Open(path)
		if err != nil {
			fmt.Fprintf(stderr, "initnet: network-namespace %q: %v\n", path, err)
			return ExitRuntime
		}
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			fmt.Fprintf(stderr, "initnet: network-namespace %q: enter: %v\n", path, err)
			return ExitRuntime
		}
		err = syscall.Exec("/proc/self/exe", append([]string{argv0}, args...), append(environ, netnsEntered+"="+path))
		fmt.Fprintf(stderr, "initnet: network-namespace %q: re-execute: %v\n", path, err)
		return ExitRuntime
	}
}

// PodIPv6 is istio-iptables' IPv6 detection: the first address that is not
// loopback or link-local is IPv6 (with dualStack: any such address is).
func PodIPv6(dualStack bool) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(n.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() {
			continue
		}
		if !dualStack || ip.Is6() {
			return ip.Is6()
		}
	}
	return false
}

// Main runs initnet once and returns the exit code: the subcommands run
// (default), validate (check the configuration only) and version, like
// every sidecarkit helper. initnet is a one-shot init step, so it runs
// without the shared admin server (see README: no probe or scrape can
// reach a process that lives for milliseconds, a fixed admin port could
// clash, and --dry-run must keep stdout for the rules alone).
func Main(ctx context.Context, e Env) int {
	args := e.Args
	sub := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	for _, a := range args {
		if a == "--version" || a == "-version" {
			sub = "version"
		}
	}
	istio := false
	if sub == "istio-iptables" {
		// The argv of Istio's istio-init container, after the binary name:
		// istio-iptables' defaults and environment variables.
		sub, istio = "run", true
		if len(args) > 0 && args[0] == "validate" {
			sub, args = "validate", args[1:]
		}
	}
	switch sub {
	case "version":
		fmt.Fprintln(e.Stdout, version.Get("initnet").String())
		return ExitOK
	case "run", "validate":
	case "wait":
		fmt.Fprintln(e.Stderr, "initnet: wait: initnet is a one-shot init step with nothing to wait for; its exit code says whether the rules are in")
		return ExitConfig
	default:
		fmt.Fprintf(e.Stderr, "initnet: unknown subcommand %q (want run, validate, version or istio-iptables)\n", sub)
		return ExitConfig
	}

	if istio {
		args = istioLogFlags(args)
	}
	c := Config{Istio: istio}
	l := config.NewLoader("initnet")
	c.Bind(l)
	known := flagNames(l)
	rest, err := l.Parse(ExpandAliases(args, known), e.Environ)
	if errors.Is(err, flag.ErrHelp) {
		l.Usage(e.Stdout)
		return ExitOK
	}
	var ps config.Problems
	if err != nil {
		ps = append(ps, err)
	}
	if len(rest) > 0 {
		ps.Addf("unexpected arguments: %q", rest)
	}
	if err == nil && c.NetNS != "" && !c.DryRun && os.Getenv(netnsEntered) != c.NetNS {
		if e.Reexec == nil {
			ps.Add("network-namespace", c.NetNS, "only the initnet binary can enter a namespace (not an in-process run)")
		} else {
			// Enter the namespace on this thread and re-execute initnet there:
			// every socket, netlink request and iptables tool then runs in it.
			return e.Reexec(c.NetNS, e.Stderr)
		}
	}
	ipv6 := e.IPv6Enabled
	if ipv6 == nil {
		ipv6 = IPv6Enabled
		if istio {
			ipv6 = func() bool { return PodIPv6(c.DualStack) }
		}
	}
	var o rules.Options
	var notes []string
	if err == nil {
		var cps config.Problems
		o, cps, notes = c.Check(ipv6)
		ps = append(ps, cps...)
	}
	if perr := ps.Err(); perr != nil {
		fmt.Fprintln(e.Stderr, "initnet: invalid configuration:")
		for _, line := range strings.Split(perr.Error(), "\n") {
			fmt.Fprintf(e.Stderr, "  - %s\n", line)
		}
		return ExitConfig
	}
	if sub == "validate" {
		fmt.Fprintln(e.Stdout, "initnet: configuration is valid")
		return ExitOK
	}
	logOut := e.Stdout
	if c.DryRun {
		logOut = e.Stderr // stdout carries the rules alone
	}
	log, _ := logging.New(logOut, c.LogFormat, c.LogLevel, "initnet")
	for _, n := range notes {
		log.Warn(n)
	}
	if err := Run(ctx, log, &c, o, e.Stdout); err != nil {
		log.Error("failed", "err", err)
		if istio && errors.Is(err, errValidation) {
			return ExitIstioValidation
		}
		return ExitRuntime
	}
	return ExitOK
}

// istioLogFlags maps the logging flags Istio's injector puts in istio-init's
// argv onto initnet's: --log_output_level=default:info (the default scope's
// level, or a bare level) becomes --log-level=info, --log_as_json
// --log-format=json.
func istioLogFlags(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || (name != "log_output_level" && name != "log_as_json") {
			out = append(out, a)
			continue
		}
		if name == "log_as_json" {
			if !hasVal || val == "true" {
				out = append(out, "--log-format=json")
			}
			continue
		}
		if !hasVal && i+1 < len(args) {
			i++
			val = args[i]
		}
		level := ""
		for _, sc := range strings.Split(val, ",") {
			scope, lv, ok := strings.Cut(sc, ":")
			if !ok {
				level = scope
			} else if scope == "default" {
				level = lv
			}
		}
		if level == "warning" {
			level = "warn"
		}
		if level != "" {
			out = append(out, "--log-level="+level)
		}
	}
	return out
}

// flagNames returns a lookup of l's long flag names. The loader has no
// lookup of its own, so they are read from its usage text.
func flagNames(l *config.Loader) func(string) bool {
	var b strings.Builder
	l.Usage(&b)
	names := map[string]bool{}
	for _, line := range strings.Split(b.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "  --"); ok {
			if n, _, ok := strings.Cut(rest, " "); ok {
				names[n] = true
			}
		}
	}
	return func(n string) bool { return names[n] }
}

// IPv6Enabled reports whether IPv6 is enabled in this network namespace.
func IPv6Enabled() bool {
	b, err := os.ReadFile("/proc/sys/net/ipv6/conf/all/disable_ipv6")
	return err == nil && strings.TrimSpace(string(b)) == "0"
}

// backend is what Run needs from nft.Backend and iptables.Backend.
type backend interface {
	Name() string
	Available() error
	Apply([]rules.RuleSet) error
	Installed() (bool, error)
	Cleanup() (bool, error)
}

type iptBackend struct {
	iptables.Backend
	fams []rules.Family
}

func (b iptBackend) Installed() (bool, error) { return b.Backend.Installed(b.fams...) }
func (b iptBackend) Cleanup() (bool, error)   { return b.Backend.Cleanup(b.fams...) }
func (b iptBackend) Available() error         { return b.Backend.Available(b.fams...) }

func families(o rules.Options) []rules.Family {
	var f []rules.Family
	if o.IPv4 {
		f = append(f, rules.IPv4)
	}
	if o.IPv6 {
		f = append(f, rules.IPv6)
	}
	return f
}

// Run does the one thing c asks: print, clean up, or install (and prove).
func Run(ctx context.Context, log *slog.Logger, c *Config, o rules.Options, stdout io.Writer) error {
	sets := rules.Generate(o)
	nb := nft.Backend{}
	ib := iptBackend{Backend: iptables.Backend{Restore4: c.Restore4, Save4: save(c.Restore4), Restore6: c.Restore6, Save6: save(c.Restore6)}, fams: families(o)}
	switch {
	case c.DryRun:
		return dryRun(c.Backend, ib, o, sets, stdout)
	case c.Cleanup:
		if err := cleanup(log, c.Backend, nb, ib); err != nil {
			return err
		}
		if removed, err := tproxyroute.Remove(); err != nil {
			log.Warn("could not remove the TPROXY policy route", "err", err)
		} else if removed {
			log.Info("removed the TPROXY policy rule and route")
		}
		if removed, err := lo6.Remove(); err != nil {
			log.Warn("could not remove ::6 from lo", "err", err)
		} else if removed {
			log.Info("removed ::6/128 from lo")
		}
		return nil
	}
	if c.SkipApply {
		log.Info("skip-rule-apply: nothing installed")
		if c.Validate {
			return validate(ctx, log, c, o)
		}
		return nil
	}
	if err := apply(log, c.Backend, nb, ib, o, sets); err != nil {
		return err
	}
	if o.TProxy && (o.InboundAll || len(o.InboundPorts) > 0) {
		if err := tproxyroute.Ensure(o.TProxyMark, o.TProxyTable, o.IPv6); err != nil {
			return fmt.Errorf("TPROXY policy route: %w", err)
		}
		log.Info("TPROXY policy route in place", "fwmark", o.TProxyMark, "table", o.TProxyTable)
	}
	if o.IPv6 {
		// The proxy dials the app over IPv6 from ::6 when it is on lo; without
		// it the kernel picks ::1, which works too, so a failure only warns.
		if added, err := lo6.Ensure(); err != nil {
			log.Warn("could not add ::6 to lo; the proxy will dial the app from ::1", "err", err)
		} else if added {
			log.Info("added ::6/128 to lo (the proxy's IPv6 source towards the app)")
		}
	}
	if c.Validate {
		return validate(ctx, log, c, o)
	}
	return nil
}

// dryRun prints what apply would install, in the backend's own syntax.
func dryRun(name string, ib backend, o rules.Options, sets []rules.RuleSet, stdout io.Writer) error {
	if name == "auto" {
		name = "nftables"
		if ok, err := ib.Installed(); err == nil && ok {
			name = "iptables" // apply would keep using the iptables rules already there
		}
	}
	if name == "iptables" {
		for _, rs := range sets {
			fmt.Fprint(stdout, rules.RenderIptables(rs))
		}
		return nil
	}
	fmt.Fprintf(stdout, "# sidecarkit initnet: nftables ruleset (families %s)\n", familyNames(o))
	if o.IPv6 {
		fmt.Fprintln(stdout, "# (and ::6/128 on lo, the proxy's IPv6 source towards the app)")
	}
	if o.TProxy {
		fmt.Fprintf(stdout, "# (and ip rule fwmark %#x lookup %d; ip route add local default dev lo table %d)\n", o.TProxyMark, o.TProxyTable, o.TProxyTable)
	}
	fmt.Fprint(stdout, rules.RenderNft(sets, true))
	return nil
}

// cleanup removes initnet's rules from the named backend, or (auto) from
// every usable one.
func cleanup(log *slog.Logger, name string, nb, ib backend) error {
	var bs []backend
	switch name {
	case "nftables":
		bs = []backend{nb}
	case "iptables":
		bs = []backend{ib}
	default:
		nerr, ierr := nb.Available(), ib.Available()
		if nerr == nil {
			bs = append(bs, nb)
		}
		if ierr == nil {
			bs = append(bs, ib)
		}
		if len(bs) == 0 {
			return fmt.Errorf("cleanup: no usable backend: %v; %v", nerr, ierr)
		}
	}
	for _, b := range bs {
		removed, err := b.Cleanup()
		if err != nil {
			return fmt.Errorf("cleanup with %s: %w", b.Name(), err)
		}
		log.Info("cleanup", "backend", b.Name(), "removed", removed)
	}
	return nil
}

// apply installs sets with the chosen backend and removes initnet's rules
// from the other one, so a switch of backend never leaves two sets behind.
func apply(log *slog.Logger, name string, nb, ib backend, o rules.Options, sets []rules.RuleSet) error {
	b, why, err := pick(name, nb, ib)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := b.Apply(sets); err != nil {
		return fmt.Errorf("install rules with %s: %w", b.Name(), err)
	}
	took := time.Since(start)
	var other backend = ib
	otherOK := ib.Available() == nil
	if b.Name() == ib.Name() {
		other, otherOK = nb, nb.Available() == nil
	}
	if otherOK {
		if removed, err := other.Cleanup(); err != nil {
			log.Warn("could not remove initnet's rules from the other backend", "backend", other.Name(), "err", err)
		} else if removed {
			log.Info("removed initnet's earlier rules from the other backend", "backend", other.Name())
		}
	}
	n := 0
	for _, rs := range sets {
		for _, ch := range rs.Chains {
			n += len(ch.Rules)
		}
	}
	log.Info("rules installed", "backend", b.Name(), "why", why, "rules", n, "families", familyNames(o),
		"inbound_port", o.InboundPort, "outbound_port", o.OutboundPort, "proxy_uids", o.ProxyUIDs, "dns", o.DNS,
		"took", took.Round(time.Microsecond).String())
	return nil
}

// validate proves the installed rules redirect (see package probe).
func validate(ctx context.Context, log *slog.Logger, c *Config, o rules.Options) error {
	target := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.6"), uint16(c.ProbePort))
	uid := o.ProxyUIDs[0]
	gid := uid
	if len(o.ProxyGIDs) > 0 {
		gid = o.ProxyGIDs[0]
	}
	res, err := probe.Run(ctx, probe.Config{ListenPort: o.InboundPort, Target: target, UID: uid, GID: gid, Timeout: c.ProbeWait})
	if err != nil {
		return fmt.Errorf("%w: %w", errValidation, err)
	}
	log.Info("validation passed: the probe landed on the inbound listener", "original_dst", res.OriginalDst.String(), "listener_port", o.InboundPort)
	return nil
}

// pick chooses the backend: the one asked for, or (auto) iptables when its
// tools already hold initnet's rules, else nftables when netlink works,
// else iptables when its tools work.
func pick(name string, nb, ib backend) (backend, string, error) {
	switch name {
	case "nftables":
		return nb, "--backend nftables", nil
	case "iptables":
		return ib, "--backend iptables", nil
	}
	ierr := ib.Available()
	if ierr == nil {
		if ok, _ := ib.Installed(); ok {
			return ib, "auto: initnet's rules already in iptables", nil
		}
	}
	nerr := nb.Available()
	if nerr == nil {
		return nb, "auto: nf_tables netlink available", nil
	}
	if ierr == nil {
		return ib, "auto: nf_tables unavailable (" + nerr.Error() + ")", nil
	}
	return nil, "", fmt.Errorf("no usable backend: %v; %v", nerr, ierr)
}
