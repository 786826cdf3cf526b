package initnet

import (
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/sidecarkit/sidecarkit/initnet/rules"
	"github.com/sidecarkit/sidecarkit/shared/config"
)

// Config is initnet's whole configuration.
type Config struct {
	Raw                             rules.Raw
	Istio                           bool   // `initnet istio-iptables …`: istio-iptables' defaults and environment
	IPv6                            string // auto, true, false
	DualStack                       bool
	Backend                         string // auto, nftables, iptables
	Native                          bool   // --native-nftables
	ForceBin                        string // --force-iptables-binary: legacy or nft
	Restore4                        string // iptables-restore binary (its -save sibling is derived)
	Restore6                        string
	ResolvConf                      string
	NetNS                           string
	DryRun                          bool
	Cleanup                         bool
	Validate                        bool
	Reconcile                       bool
	ForceApply                      bool
	SkipApply                       bool
	TProxyMark                      string
	TProxyRT                        string
	ProbePort                       int
	ProbeWait                       time.Duration
	LogFormat                       string
	LogLevel                        string
	EnvoyUser                       string // istio mode: the user whose UID is the default --proxy-uid
	OwnerGroups, OwnerGroupsExclude string
}

// istioEnv is the environment variables istio-iptables reads for each
// flag (its flag name upper-cased, plus its extra names, the later ones
// winning there and listed first here), honoured under `initnet
// istio-iptables`.
var istioEnv = map[string][]string{
	"inbound-capture-port": {"INBOUND_CAPTURE_PORT"}, "inbound-tunnel-port": {"INBOUND_TUNNEL_PORT"},
	"proxy-uid": {"PROXY_UID"}, "proxy-gid": {"PROXY_GID"},
	"istio-inbound-interception-mode": {"ISTIO_INBOUND_INTERCEPTION_MODE"},
	"istio-inbound-ports":             {"ISTIO_INBOUND_PORTS"}, "istio-local-exclude-ports": {"ISTIO_LOCAL_EXCLUDE_PORTS"},
	"istio-exclude-interfaces": {"ISTIO_EXCLUDE_INTERFACES"}, "istio-service-cidr": {"ISTIO_SERVICE_CIDR"},
	"istio-service-exclude-cidr": {"ISTIO_SERVICE_EXCLUDE_CIDR"}, "istio-outbound-ports": {"ISTIO_OUTBOUND_PORTS"},
	"istio-local-outbound-ports-exclude": {"ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE"},
	"kube-virt-interfaces":               {"KUBE_VIRT_INTERFACES"},
	"istio-inbound-tproxy-mark":          {"ISTIO_INBOUND_TPROXY_MARK"}, "istio-inbound-tproxy-route-table": {"ISTIO_INBOUND_TPROXY_ROUTE_TABLE"},
	"dry-run": {"DRY_RUN"}, "iptables-probe-port": {"IPTABLES_PROBE_PORT"}, "probe-timeout": {"PROBE_TIMEOUT"},
	"skip-rule-apply": {"SKIP_RULE_APPLY"}, "validate": {"RUN_VALIDATION"},
	"redirect-dns": {"ISTIO_META_DNS_CAPTURE", "REDIRECT_DNS"}, "drop-invalid": {"INVALID_DROP", "DROP_INVALID"},
	"dual-stack": {"ISTIO_DUAL_STACK", "DUAL_STACK"}, "capture-all-dns": {"CAPTURE_ALL_DNS"},
	"network-namespace": {"NETWORK_NAMESPACE"}, "reconcile": {"RECONCILE"}, "cleanup": {"CLEANUP_ONLY"},
	"force-apply": {"FORCE_APPLY"}, "native-nftables": {"NATIVE_NFTABLES"}, "force-iptables-binary": {"FORCE_IPTABLES_BINARY"},
	"outbound-ipv4-loopback-cidr": {"ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR"}, "envoy-user": {"ENVOY_USER"},
	"outbound-owner-groups": {"ISTIO_OUTBOUND_OWNER_GROUPS"}, "outbound-owner-groups-exclude": {"ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE"},
}

// Bind registers every option on l. Names follow istio-iptables; the short
// aliases (-p, -z, -e, -u, -g, -m, -b, -d, -i, -x, -q, -o, -c, -k, -t, -r,
// -n) are expanded by ExpandAliases before parsing. c.Istio selects
// istio-iptables' defaults (capture nothing unless asked) and environment.
func (c *Config) Bind(l *config.Loader) {
	r := &c.Raw
	k := rules.DefaultKeys()
	// Bare initnet captures everything and keeps the proxy's admin/metrics
	// ports out; istio-iptables captures only what it is told to.
	inbound, cidrs, proxyPorts, uid, gid := []string{"*"}, []string{"*"}, []string{"15000", "15090"}, "1337", "1337"
	if c.Istio {
		inbound, cidrs, proxyPorts, uid, gid = nil, nil, nil, "", ""
	}
	l.Int(&r.OutboundPort, k.OutboundPort, 15001, "the proxy's outbound port: the app's outbound TCP is redirected here (-p)")
	l.Int(&r.InboundPort, k.InboundPort, 15006, "the proxy's inbound port: captured inbound TCP is redirected here (-z)")
	l.Int(&r.TunnelPort, k.TunnelPort, 15008, "the proxy's tunnel (HBONE) port: never captured (-e)")
	l.String(&r.ProxyUID, k.ProxyUID, uid, "UIDs of the proxy, comma-separated: their traffic is never captured (-u); istio-iptables mode: default the UID of $ENVOY_USER, else 1337")
	l.String(&r.ProxyGID, k.ProxyGID, gid, "GIDs of the proxy, comma-separated: their traffic is never captured; empty: no GID rule (-g); istio-iptables mode: default --proxy-uid")
	l.String(&r.InterceptionMode, k.InterceptionMode, "REDIRECT", "inbound interception mode: REDIRECT (the app sees 127.0.0.6) or TPROXY (the app's proxy sees the client's own address) (-m)")
	l.String(&r.TProxyMark, "istio-inbound-tproxy-mark", "1337", "with -m TPROXY: the mark of diverted packets, and the policy route's fwmark (-t)")
	l.String(&r.TProxyRouteTable, "istio-inbound-tproxy-route-table", "133", "with -m TPROXY: the route table holding the local default route to lo (-r)")
	l.Strings(&r.InboundPorts, k.InboundPorts, inbound, `inbound ports to capture, "*" for all, empty for none (-b)`)
	l.Strings(&r.InboundExclude, k.InboundExclude, nil, `inbound ports never captured, with -b "*" only (as istio-iptables), e.g. the app's probe port (-d)`)
	l.Strings(&r.ProxyPorts, k.ProxyPorts, proxyPorts, `the proxy's admin and metrics ports: never captured inbound with -b "*" (istio-iptables mode: none)`)
	l.Strings(&r.OutboundCIDRs, k.OutboundCIDRs, cidrs, `outbound destination CIDRs to capture, "*" for all, empty for none (-i)`)
	l.Strings(&r.OutboundExclude, k.OutboundExclude, nil, "outbound destination CIDRs never captured (-x)")
	l.Strings(&r.OutboundPorts, k.OutboundPorts, nil, "outbound ports always captured, whatever the destination (-q)")
	l.Strings(&r.OutboundExcludePort, k.OutboundExcludePort, nil, "outbound ports never captured, TCP and UDP (-o)")
	l.Strings(&r.ExcludeInterfaces, k.ExcludeInterfaces, nil, "interfaces whose traffic is never captured (-c)")
	l.Strings(&r.KubeVirtInterfaces, k.KubeVirtInterfaces, nil, "virtual interfaces whose inbound traffic (from a VM) is captured as outbound (-k)")
	l.String(&r.LoopbackCIDR, "outbound-ipv4-loopback-cidr", "127.0.0.1/32", "the IPv4 loopback range the app reaches directly (ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR)")
	l.Bool(&r.IPv4, "ipv4", true, "install IPv4 rules")
	l.String(&c.IPv6, "ipv6", "auto", "install IPv6 rules: true, false or auto (bare: when IPv6 is enabled in the namespace; istio-iptables mode: when the pod's first address is IPv6, or any is with --dual-stack)")
	l.Bool(&c.DualStack, "dual-stack", false, "istio-iptables' --dual-stack: with --ipv6=auto, IPv6 rules when the pod has any IPv6 address")
	l.Bool(&r.DNS, "redirect-dns", false, "capture the app's DNS (UDP and TCP port 53) to --dns-port: to resolv.conf's nameservers, or all with --capture-all-dns")
	l.Bool(&r.CaptureAllDNS, "capture-all-dns", false, "with --redirect-dns, capture DNS to any server, not only resolv.conf's nameservers")
	l.String(&c.ResolvConf, "resolv-conf", "/etc/resolv.conf", "where --redirect-dns reads the nameservers to capture")
	l.Int(&r.DNSPort, k.DNSPort, 15053, "the DNS proxy's port, with --redirect-dns")
	l.Bool(&r.DropInvalid, "drop-invalid", false, "drop packets conntrack sees as INVALID (mangle PREROUTING) instead of letting them reach the app")
	l.String(&c.Backend, "backend", "auto", "nftables (netlink, no binaries needed), iptables (iptables-restore) or auto")
	l.Bool(&c.Native, "native-nftables", false, "istio-iptables' --native-nftables: --backend nftables")
	l.String(&c.ForceBin, "force-iptables-binary", "", "istio-iptables' --force-iptables-binary: legacy or nft (--backend iptables with iptables-legacy-restore or iptables-nft-restore)")
	l.String(&c.Restore4, "iptables-restore", "iptables-restore", "iptables-restore binary for the iptables backend (e.g. iptables-legacy-restore); its -save sibling is used to read")
	l.String(&c.Restore6, "ip6tables-restore", "ip6tables-restore", "ip6tables-restore binary for the iptables backend")
	l.String(&c.NetNS, "network-namespace", "", "apply in this network namespace (a path such as /var/run/netns/pod or /proc/PID/ns/net) instead of initnet's own")
	l.Bool(&c.DryRun, "dry-run", false, "print the rules that would be installed and change nothing (no privileges needed) (-n)")
	l.Bool(&c.Cleanup, "cleanup", false, "remove everything initnet installed, and nothing else (--cleanup-only)")
	l.Bool(&c.Validate, "validate", false, "after installing, prove the redirect works: a probe connection must land on a validation listener on the inbound port (--run-validation)")
	l.Bool(&c.Reconcile, "reconcile", false, "accepted for istio-iptables: initnet always replaces its own drifted rules")
	l.Bool(&c.ForceApply, "force-apply", false, "accepted for istio-iptables: initnet always applies")
	l.Bool(&c.SkipApply, "skip-rule-apply", false, "install nothing (with --validate: only validate)")
	l.Int(&c.ProbePort, "iptables-probe-port", 15002, "port the validation probe connects to (on 127.0.0.6)")
	l.Duration(&c.ProbeWait, "probe-timeout", 5*time.Second, "how long the validation probe waits")
	l.String(&c.LogFormat, "log-format", "json", "log format: json or text")
	l.String(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	l.String(&c.EnvoyUser, "envoy-user", "istio-proxy", "istio-iptables mode: the user whose UID is the default --proxy-uid (ENVOY_USER)")
	l.String(&c.OwnerGroups, "outbound-owner-groups", "*", "groups (names or GIDs) whose outbound traffic is captured; * for all (ISTIO_OUTBOUND_OWNER_GROUPS)")
	l.String(&c.OwnerGroupsExclude, "outbound-owner-groups-exclude", "", "with --outbound-owner-groups=*, groups whose outbound traffic is not captured (ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE)")
	if c.Istio {
		for name, envs := range istioEnv {
			l.Env(name, envs...)
		}
	}
}

// Check validates c and returns the rule options, every problem, and notes
// for the log. ipv6 resolves --ipv6=auto (the caller probes the namespace);
// nameservers reads --resolv-conf.
func (c *Config) Check(ipv6 func() bool) (rules.Options, config.Problems, []string) {
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
	if c.Istio {
		raw.AllowRootUID = true // istio-iptables accepts -u 0
		if strings.TrimSpace(raw.ProxyUID) == "" {
			raw.ProxyUID = "1337"
			if u, err := user.Lookup(c.EnvoyUser); err == nil {
				raw.ProxyUID = u.Uid
			}
		}
		if strings.TrimSpace(raw.ProxyGID) == "" {
			raw.ProxyGID = raw.ProxyUID
		}
	}
	if raw.DNS && !raw.CaptureAllDNS {
		servers, err := Nameservers(c.ResolvConf)
		if err != nil {
			ps.Add("resolv-conf", c.ResolvConf, "%v (needed by --redirect-dns without --capture-all-dns)", err)
		}
		raw.DNSServers = servers
	}
	// Group names become GIDs here (from /etc/group; istio-iptables leaves
	// that to iptables), so the rules stay numeric.
	for _, g := range []struct {
		key string
		val *string
		src string
	}{{"ISTIO_OUTBOUND_OWNER_GROUPS", &raw.OwnerGroups, c.OwnerGroups}, {"ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE", &raw.OwnerGroupsExclude, c.OwnerGroupsExclude}} {
		var ids []string
		for _, s := range strings.Split(g.src, ",") {
			if s = strings.TrimSpace(s); s == "" || s == "*" {
				ids = append(ids, s)
				continue
			}
			if _, err := strconv.ParseUint(s, 10, 32); err == nil {
				ids = append(ids, s)
				continue
			}
			grp, err := user.LookupGroup(s)
			if err != nil {
				ps.Add(g.key, g.src, "group %q: %v", s, err)
				continue
			}
			ids = append(ids, grp.Gid)
		}
		*g.val = strings.Join(ids, ",")
	}
	o, rps, notes := raw.OptionsNotes(rules.DefaultKeys())
	for _, p := range rps {
		ps = append(ps, p)
	}
	if c.Native && c.ForceBin != "" {
		ps.Add("native-nftables", true, "and force-iptables-binary %q contradict each other: pick one", c.ForceBin)
	}
	switch c.ForceBin {
	case "":
	case "legacy", "nft":
		c.Backend = "iptables"
		c.Restore4, c.Restore6 = "iptables-"+c.ForceBin+"-restore", "ip6tables-"+c.ForceBin+"-restore"
	default:
		ps.Add("force-iptables-binary", c.ForceBin, "want legacy or nft")
	}
	if c.Native {
		c.Backend = "nftables"
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
	return o, ps, notes
}

// Nameservers returns the nameserver addresses of a resolv.conf file.
func Nameservers(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == "nameserver" {
			out = append(out, f[1])
		}
	}
	return out, nil
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
		"e": "inbound-tunnel-port", "k": "kube-virt-interfaces", "t": "istio-inbound-tproxy-mark",
		"r": "istio-inbound-tproxy-route-table", "n": "dry-run", "cleanup-only": "cleanup",
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
