package initnet

import (
	"strconv"
	"strings"
	"time"

	"github.com/sidecarkit/sidecarkit/initnet/rules"
	"github.com/sidecarkit/sidecarkit/shared/config"
)

// Config is initnet's whole configuration.
type Config struct {
	Raw       rules.Raw
	IPv6      string // auto, true, false
	Backend   string // auto, nftables, iptables
	Restore4  string // iptables-restore binary (its -save sibling is derived)
	Restore6  string
	DryRun    bool
	Cleanup   bool
	Validate  bool
	ProbePort int
	ProbeWait time.Duration
	LogFormat string
	LogLevel  string
}

// Bind registers every option on l. Names follow istio-iptables; the short
// aliases (-p, -z, -u, -g, -m, -b, -d, -i, -x, -q, -o, -c) are expanded by
// ExpandAliases before parsing.
func (c *Config) Bind(l *config.Loader) {
	r := &c.Raw
	k := rules.DefaultKeys()
	l.Int(&r.OutboundPort, k.OutboundPort, 15001, "the proxy's outbound port: the app's outbound TCP is redirected here (-p)")
	l.Int(&r.InboundPort, k.InboundPort, 15006, "the proxy's inbound port: captured inbound TCP is redirected here (-z)")
	l.String(&r.ProxyUID, k.ProxyUID, "1337", "UID of the proxy: its traffic is never captured (-u)")
	l.String(&r.ProxyGID, k.ProxyGID, "1337", "GID of the proxy: its traffic is never captured; empty: no GID rule (-g)")
	l.String(&r.InterceptionMode, k.InterceptionMode, "REDIRECT", "inbound interception mode; only REDIRECT is supported (-m)")
	l.Strings(&r.InboundPorts, k.InboundPorts, []string{"*"}, `inbound ports to capture, "*" for all, empty for none (-b)`)
	l.Strings(&r.InboundExclude, k.InboundExclude, nil, "inbound ports never captured when capturing all, e.g. the app's probe port (-d)")
	l.Strings(&r.ProxyPorts, k.ProxyPorts, []string{"15000", "15090"}, "the proxy's admin and metrics ports: never captured inbound")
	l.Strings(&r.OutboundCIDRs, k.OutboundCIDRs, []string{"*"}, `outbound destination CIDRs to capture, "*" for all (-i)`)
	l.Strings(&r.OutboundExclude, k.OutboundExclude, nil, "outbound destination CIDRs never captured (-x)")
	l.Strings(&r.OutboundPorts, k.OutboundPorts, nil, "outbound ports always captured, whatever the destination (-q)")
	l.Strings(&r.OutboundExcludePort, k.OutboundExcludePort, nil, "outbound ports never captured (-o)")
	l.Strings(&r.ExcludeInterfaces, k.ExcludeInterfaces, nil, "interfaces whose traffic is never captured (-c)")
	l.Bool(&r.IPv4, "ipv4", true, "install IPv4 rules")
	l.String(&c.IPv6, "ipv6", "auto", "install IPv6 rules: true, false or auto (when IPv6 is enabled in the namespace)")
	l.Bool(&r.DNS, "redirect-dns", false, "capture the app's DNS (UDP and TCP port 53) to --dns-port")
	l.Int(&r.DNSPort, k.DNSPort, 15053, "the DNS proxy's port, with --redirect-dns")
	l.String(&c.Backend, "backend", "auto", "nftables (netlink, no binaries needed), iptables (iptables-restore) or auto")
	l.String(&c.Restore4, "iptables-restore", "iptables-restore", "iptables-restore binary for the iptables backend (e.g. iptables-legacy-restore); its -save sibling is used to read")
	l.String(&c.Restore6, "ip6tables-restore", "ip6tables-restore", "ip6tables-restore binary for the iptables backend")
	l.Bool(&c.DryRun, "dry-run", false, "print the rules that would be installed and change nothing (no privileges needed)")
	l.Bool(&c.Cleanup, "cleanup", false, "remove everything initnet installed, and nothing else")
	l.Bool(&c.Validate, "validate", false, "after installing, prove the redirect works: a probe connection must land on a validation listener on the inbound port (--run-validation)")
	l.Int(&c.ProbePort, "iptables-probe-port", 15002, "port the validation probe connects to (on 127.0.0.6)")
	l.Duration(&c.ProbeWait, "probe-timeout", 5*time.Second, "how long the validation probe waits")
	l.String(&c.LogFormat, "log-format", "json", "log format: json or text")
	l.String(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
}

// Check validates c and returns the rule options and every problem. ipv6
// resolves --ipv6=auto (the caller probes the namespace).
func (c *Config) Check(ipv6 func() bool) (rules.Options, config.Problems) {
	var ps config.Problems
	raw := c.Raw
	switch strings.ToLower(strings.TrimSpace(c.IPv6)) {
	case "auto":
		raw.IPv6 = ipv6 != nil && ipv6()
	default:
		b, err := strconv.ParseBool(strings.TrimSpace(c.IPv6))
		if err != nil {
			ps.Add("ipv6", c.IPv6, "want true, false or auto")
		}
		raw.IPv6 = b
	}
	o, rps := raw.Options(rules.DefaultKeys())
	for _, p := range rps {
		ps = append(ps, p)
	}
	switch c.Backend {
	case "auto", "nftables", "iptables":
	default:
		ps.Add("backend", c.Backend, "want nftables, iptables or auto")
	}
	for _, b := range []struct{ k, v string }{{"iptables-restore", c.Restore4}, {"ip6tables-restore", c.Restore6}} {
		if !strings.Contains(b.v, "restore") {
			ps.Add(b.k, b.v, "want an *-restore binary (its *-save sibling is derived from the name)")
		}
	}
	modes := 0
	for _, m := range []bool{c.DryRun, c.Cleanup, c.Validate} {
		if m {
			modes++
		}
	}
	if modes > 1 {
		ps.Addf("dry-run, cleanup and validate are separate modes: pick one (got dry-run=%t cleanup=%t validate=%t)", c.DryRun, c.Cleanup, c.Validate)
	}
	if c.ProbePort < 1 || c.ProbePort > 65535 {
		ps.Add("iptables-probe-port", c.ProbePort, "not a port (want 1-65535)")
	}
	if c.Validate {
		if !o.IPv4 {
			ps.Add("validate", true, "the probe uses IPv4 (127.0.0.6); enable --ipv4")
		}
		if !o.InboundAll && len(o.InboundPorts) == 0 {
			ps.Add("validate", true, "the probe proves the inbound redirect; %s captures nothing", rules.DefaultKeys().InboundPorts)
		}
		for _, p := range o.OutboundExcludePorts {
			if int(p) == c.ProbePort {
				ps.Add("iptables-probe-port", c.ProbePort, "is in %s, so the probe would never be captured", rules.DefaultKeys().OutboundExcludePort)
			}
		}
	}
	if c.ProbeWait <= 0 {
		ps.Add("probe-timeout", c.ProbeWait, "must be positive")
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		ps.Add("log-format", c.LogFormat, "want json or text")
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "warning", "error":
	default:
		ps.Add("log-level", c.LogLevel, "want debug, info, warn or error")
	}
	return o, ps
}

// save derives the *-save binary from a *-restore one.
func save(restore string) string { return strings.Replace(restore, "restore", "save", 1) }

// alias maps istio-iptables' short flags (and a few long synonyms) to
// initnet's flag names.
func alias(name string) (string, bool) {
	long, ok := map[string]string{
		"p": "envoy-port", "z": "inbound-capture-port", "u": "proxy-uid", "g": "proxy-gid",
		"m": "istio-inbound-interception-mode", "b": "istio-inbound-ports", "d": "istio-local-exclude-ports",
		"i": "istio-service-cidr", "x": "istio-service-exclude-cidr", "q": "istio-outbound-ports",
		"o": "istio-local-outbound-ports-exclude", "c": "istio-exclude-interfaces",
		"run-validation": "validate", "outbound-port": "envoy-port", "inbound-port": "inbound-capture-port",
	}[name]
	return long, ok
}

// ExpandAliases rewrites istio-iptables' short flags (-p 15001, -p=15001,
// -p15001) and long synonyms (--run-validation) into initnet's long flags,
// leaving everything else as it is. known reports whether a name is a long
// flag (so -dry-run is not read as -d ry-run). Parsing stops at "--".
func ExpandAliases(args []string, known func(string) bool) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			out = append(out, a)
			continue
		}
		body := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		name, val, hasVal := strings.Cut(body, "=")
		if long, ok := alias(name); ok && !known(name) {
			if hasVal {
				out = append(out, "--"+long+"="+val)
			} else {
				out = append(out, "--"+long)
			}
			continue
		}
		// -p15001: a one-letter alias glued to a value that starts with a
		// digit or "*", single dash only (so a typo like -dryrun stays an
		// unknown flag instead of becoming -d ryrun).
		if !strings.HasPrefix(a, "--") && len(name) > 1 && !hasVal && !known(name) && strings.ContainsAny(name[1:2], "0123456789*") {
			if long, ok := alias(name[:1]); ok {
				out = append(out, "--"+long+"="+name[1:])
				continue
			}
		}
		out = append(out, a)
	}
	return out
}

func familyNames(o rules.Options) string {
	var fams []string
	for _, f := range families(o) {
		fams = append(fams, f.String())
	}
	return strings.Join(fams, ",")
}
