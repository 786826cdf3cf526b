package rules

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Options is what to capture. Build it with Raw.Options, which validates.
type Options struct {
	OutboundPort uint16 // the proxy's outbound listener (15001)
	InboundPort  uint16 // the proxy's inbound listener (15006)
	TunnelPort   uint16 // the HBONE tunnel port (15008): never captured
	DNSPort      uint16 // the DNS proxy (15053), used when DNS is set
	ProxyUIDs    []uint32
	ProxyGIDs    []uint32 // none: no GID rules

	InboundAll     bool           // capture every inbound port but the excluded ones
	InboundPorts   []uint16       // else: capture only these (none: no inbound capture)
	InboundExclude []uint16       // with InboundAll only (as istio-iptables' -d)
	ProxyPorts     []uint16       // with InboundAll only: the proxy's admin/metrics ports
	OutboundAll    bool           // capture all outbound destinations but excluded ones
	OutboundCIDRs  []netip.Prefix // else: capture only these

	OutboundIncludePorts []uint16
	OutboundExcludePorts []uint16 // TCP and UDP
	OutboundExcludeCIDRs []netip.Prefix
	ExcludeInterfaces    []string
	KubeVirtInterfaces   []string     // -k: inbound traffic on these NICs is treated as outbound
	LoopbackCIDR         netip.Prefix // the IPv4 "localhost" range (127.0.0.1/32)

	IPv4, IPv6 bool
	// DNS is DNS capture in effect: asked for, and either CaptureAllDNS or
	// at least one nameserver in DNSServers (istio-iptables turns it off
	// otherwise).
	DNS           bool
	CaptureAllDNS bool
	DNSServers    []netip.Addr
	DropInvalid   bool
	// TProxy is -m TPROXY: inbound capture by TPROXY in mangle (the app's
	// listener sees the client's own address), marks TProxyMark, and the
	// policy route "fwmark TProxyMark lookup TProxyTable" with a local
	// default route to lo in that table.
	TProxy      bool
	TProxyMark  uint32
	TProxyTable uint32
	// OwnerGroupsAll: capture every group's traffic but
	// OwnerGroupsExclude's; else only OwnerGroupsInclude's.
	OwnerGroupsAll     bool
	OwnerGroupsInclude []uint32
	OwnerGroupsExclude []uint32
}

// InboundExcludeAll returns the ports never captured when capturing all
// inbound ports: the proxy ports and the excluded ports, sorted, unique.
func (o Options) InboundExcludeAll() []uint16 {
	return sortedUnique(append(append([]uint16(nil), o.ProxyPorts...), o.InboundExclude...))
}

// Raw is the options as text, as they come from flags, env or YAML. Each
// field's key is what problems name.
type Raw struct {
	OutboundPort, InboundPort, DNSPort, TunnelPort int
	ProxyUID, ProxyGID                             string // comma lists
	InterceptionMode                               string
	InboundPorts, InboundExclude                   []string
	ProxyPorts                                     []string
	OutboundCIDRs, OutboundExclude                 []string
	OutboundPorts, OutboundExcludePort             []string
	ExcludeInterfaces, KubeVirtInterfaces          []string
	LoopbackCIDR                                   string // "" = 127.0.0.1/32
	IPv4, IPv6                                     bool
	DNS, CaptureAllDNS                             bool
	DNSServers                                     []string // resolv.conf's nameservers
	DropInvalid                                    bool
	TProxyMark, TProxyRouteTable                   string // -t, -r
	OwnerGroups, OwnerGroupsExclude                string // numeric GIDs, comma lists; "" OwnerGroups = "*"
	// AllowRootUID accepts UID/GID 0 as the proxy's (istio-iptables does).
	AllowRootUID bool
}

// Keys names each Raw field as the user spells it (istio-iptables' flag
// names), for problems.
type Keys struct {
	OutboundPort, InboundPort, DNSPort, TunnelPort, ProxyUID, ProxyGID, InterceptionMode,
	InboundPorts, InboundExclude, ProxyPorts, OutboundCIDRs, OutboundExclude,
	OutboundPorts, OutboundExcludePort, ExcludeInterfaces, KubeVirtInterfaces, LoopbackCIDR,
	DNSServers, Families string
}

// DefaultKeys returns the flag names initnet uses.
func DefaultKeys() Keys {
	return Keys{
		OutboundPort: "envoy-port", InboundPort: "inbound-capture-port", DNSPort: "dns-port", TunnelPort: "inbound-tunnel-port",
		ProxyUID: "proxy-uid", ProxyGID: "proxy-gid", InterceptionMode: "istio-inbound-interception-mode",
		InboundPorts: "istio-inbound-ports", InboundExclude: "istio-local-exclude-ports",
		ProxyPorts: "proxy-ports", OutboundCIDRs: "istio-service-cidr", OutboundExclude: "istio-service-exclude-cidr",
		OutboundPorts: "istio-outbound-ports", OutboundExcludePort: "istio-local-outbound-ports-exclude",
		ExcludeInterfaces: "istio-exclude-interfaces", KubeVirtInterfaces: "kube-virt-interfaces",
		LoopbackCIDR: "ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR", DNSServers: "resolv-conf", Families: "ipv4/ipv6",
	}
}

// Problem is one thing wrong with the options, naming the key and the value.
type Problem struct {
	Key, Value, Why string
}

func (p Problem) Error() string { return fmt.Sprintf("%s %q: %s", p.Key, p.Value, p.Why) }

// Options validates r and returns the options, or every problem found. The
// notes say how overlaps that istio-iptables accepts were resolved (its
// precedence) and when DNS capture is off for want of nameservers.
func (r Raw) Options(k Keys) (Options, []Problem) {
	o, ps, _ := r.OptionsNotes(k)
	return o, ps
}

// OptionsNotes is Options with the notes (for the log).
func (r Raw) OptionsNotes(k Keys) (Options, []Problem, []string) {
	var ps []Problem
	var notes []string
	bad := func(key, val, why string, a ...any) { ps = append(ps, Problem{key, val, fmt.Sprintf(why, a...)}) }
	port := func(key string, v int) uint16 {
		if v < 1 || v > 65535 {
			bad(key, strconv.Itoa(v), "not a port (want 1-65535)")
			return 0
		}
		return uint16(v)
	}
	o := Options{
		OutboundPort: port(k.OutboundPort, r.OutboundPort),
		InboundPort:  port(k.InboundPort, r.InboundPort),
		TunnelPort:   port(k.TunnelPort, r.TunnelPort),
		IPv4:         r.IPv4, IPv6: r.IPv6, CaptureAllDNS: r.CaptureAllDNS, DropInvalid: r.DropInvalid,
	}
	if r.DNS {
		o.DNSPort = port(k.DNSPort, r.DNSPort)
	}
	ids := func(key, val string, required bool) []uint32 {
		var out []uint32
		var badIDs []string
		for _, s := range strings.Split(val, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			id, err := ParseID(s)
			switch {
			case err != nil:
				badIDs = append(badIDs, strconv.Quote(s)+" (not a numeric id 0-4294967294)")
			case id == 0 && !r.AllowRootUID:
				badIDs = append(badIDs, strconv.Quote(s)+" (0 is root: root's own traffic would bypass the proxy)")
			default:
				if !slices.Contains(out, id) {
					out = append(out, id)
				}
			}
		}
		if len(badIDs) > 0 {
			bad(key, val, "bad id %s", strings.Join(badIDs, ", "))
		} else if required && len(out) == 0 {
			bad(key, val, "want at least one numeric id")
		}
		return out
	}
	o.ProxyUIDs = ids(k.ProxyUID, r.ProxyUID, true)
	o.ProxyGIDs = ids(k.ProxyGID, r.ProxyGID, false)
	switch m := strings.ToUpper(strings.TrimSpace(r.InterceptionMode)); m {
	case "", "REDIRECT":
	case "TPROXY":
		o.TProxy = true
		mark, err := strconv.ParseUint(strings.TrimSpace(r.TProxyMark), 0, 32)
		switch {
		case err != nil || mark == 0:
			bad("istio-inbound-tproxy-mark", r.TProxyMark, "want a non-zero 32-bit mark")
		case mark == OutboundMark:
			bad("istio-inbound-tproxy-mark", r.TProxyMark, "must differ from %d, the mark of the proxy's own pod-IP calls", OutboundMark)
		default:
			o.TProxyMark = uint32(mark)
		}
		table, err := strconv.ParseUint(strings.TrimSpace(r.TProxyRouteTable), 10, 32)
		switch {
		case err != nil || table == 0:
			bad("istio-inbound-tproxy-route-table", r.TProxyRouteTable, "want a route table number 1-4294967295")
		case table >= 253 && table <= 255:
			bad("istio-inbound-tproxy-route-table", r.TProxyRouteTable, "is a system table (253 default, 254 main, 255 local); pick another")
		default:
			o.TProxyTable = uint32(table)
		}
	default:
		bad(k.InterceptionMode, r.InterceptionMode, "want REDIRECT or TPROXY")
	}
	var err error
	o.InboundAll, o.InboundPorts, err = ParsePorts(r.InboundPorts, true)
	if err != nil {
		bad(k.InboundPorts, strings.Join(r.InboundPorts, ","), "%v", err)
	}
	if _, o.InboundExclude, err = ParsePorts(r.InboundExclude, false); err != nil {
		bad(k.InboundExclude, strings.Join(r.InboundExclude, ","), "%v", err)
	}
	if _, o.ProxyPorts, err = ParsePorts(r.ProxyPorts, false); err != nil {
		bad(k.ProxyPorts, strings.Join(r.ProxyPorts, ","), "%v", err)
	}
	if _, o.OutboundIncludePorts, err = ParsePorts(r.OutboundPorts, false); err != nil {
		bad(k.OutboundPorts, strings.Join(r.OutboundPorts, ","), "%v", err)
	}
	if _, o.OutboundExcludePorts, err = ParsePorts(r.OutboundExcludePort, false); err != nil {
		bad(k.OutboundExcludePort, strings.Join(r.OutboundExcludePort, ","), "%v", err)
	}
	o.OutboundAll, o.OutboundCIDRs, err = ParseCIDRs(r.OutboundCIDRs, true)
	if err != nil {
		bad(k.OutboundCIDRs, strings.Join(r.OutboundCIDRs, ","), "%v", err)
	}
	if _, o.OutboundExcludeCIDRs, err = ParseCIDRs(r.OutboundExclude, false); err != nil {
		bad(k.OutboundExclude, strings.Join(r.OutboundExclude, ","), "%v", err)
	}
	o.ExcludeInterfaces, err = ParseInterfaces(r.ExcludeInterfaces)
	if err != nil {
		bad(k.ExcludeInterfaces, strings.Join(r.ExcludeInterfaces, ","), "%v", err)
	}
	o.KubeVirtInterfaces, err = ParseInterfaces(r.KubeVirtInterfaces)
	if err != nil {
		bad(k.KubeVirtInterfaces, strings.Join(r.KubeVirtInterfaces, ","), "%v", err)
	}
	o.LoopbackCIDR = netip.MustParsePrefix("127.0.0.1/32")
	if s := strings.TrimSpace(r.LoopbackCIDR); s != "" {
		p, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			bad(k.LoopbackCIDR, s, "not a CIDR")
		case !p.Addr().Is4() || !p.Addr().IsLoopback():
			bad(k.LoopbackCIDR, s, "want an IPv4 loopback CIDR (127.0.0.0/8 or inside it)")
		case p.Bits() < 8:
			bad(k.LoopbackCIDR, s, "want a mask of 8-32 bits")
		default:
			o.LoopbackCIDR = p.Masked()
		}
	}
	for _, s := range r.DNSServers {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			bad(k.DNSServers, s, "nameserver is not an IP address")
			continue
		}
		a = a.WithZone("").Unmap()
		if !slices.Contains(o.DNSServers, a) {
			o.DNSServers = append(o.DNSServers, a)
		}
	}
	gids := func(key, val string) []uint32 {
		var out []uint32
		for _, s := range strings.Split(val, ",") {
			if s = strings.TrimSpace(s); s == "" {
				continue
			}
			id, err := ParseID(s)
			if err != nil {
				bad(key, val, "bad group %q (want a group name or numeric GID)", s)
				continue
			}
			out = append(out, id)
		}
		return out
	}
	if g := strings.TrimSpace(r.OwnerGroups); g == "" || g == "*" {
		o.OwnerGroupsAll = true
		o.OwnerGroupsExclude = gids("ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE", r.OwnerGroupsExclude)
	} else {
		o.OwnerGroupsInclude = gids("ISTIO_OUTBOUND_OWNER_GROUPS", r.OwnerGroups)
		if len(o.OwnerGroupsInclude) > 64 {
			bad("ISTIO_OUTBOUND_OWNER_GROUPS", r.OwnerGroups, "at most 64 groups (one rule matches each), got %d", len(o.OwnerGroupsInclude))
		}
	}
	o.DNS = r.DNS
	if r.DNS && !r.CaptureAllDNS && len(o.DNSServers) == 0 {
		o.DNS = false
		notes = append(notes, "redirect-dns is set but capture-all-dns is not and there are no nameservers: DNS capture is off (as istio-iptables)")
	}

	// Overlaps: istio-iptables accepts them, with this precedence.
	if !o.InboundAll && len(o.InboundPorts) > 0 {
		for _, p := range o.InboundPorts {
			switch {
			case p == o.TunnelPort:
				notes = append(notes, fmt.Sprintf("%s %d is the tunnel port (%s): never captured", k.InboundPorts, p, k.TunnelPort))
			case contains(o.InboundExclude, p):
				notes = append(notes, fmt.Sprintf("%s %d is also in %s: captured (%s applies only with %s=*)", k.InboundPorts, p, k.InboundExclude, k.InboundExclude, k.InboundPorts))
			case contains(o.ProxyPorts, p):
				notes = append(notes, fmt.Sprintf("%s %d is a proxy port (%s): captured, as listed (%s applies only with %s=*)", k.InboundPorts, p, k.ProxyPorts, k.ProxyPorts, k.InboundPorts))
			}
		}
	}
	for _, p := range o.OutboundIncludePorts {
		if contains(o.OutboundExcludePorts, p) {
			notes = append(notes, fmt.Sprintf("%s %d is also in %s: not captured (the exclusion comes first)", k.OutboundPorts, p, k.OutboundExcludePort))
		}
	}
	if o.OutboundPort != 0 && o.OutboundPort == o.InboundPort {
		bad(k.InboundPort, strconv.Itoa(int(o.InboundPort)), "must differ from %s", k.OutboundPort)
	}
	if !o.IPv4 && !o.IPv6 {
		bad(k.Families, "false/false", "enable at least one IP family")
	}
	return o, ps, notes
}

// ParseID parses a numeric UID or GID.
func ParseID(s string) (uint32, error) {
	s = strings.TrimSpace(s)
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 4294967295 {
		return 0, fmt.Errorf("not a numeric id (want 0-4294967294)")
	}
	return uint32(n), nil
}

// ParsePorts parses port list entries (each may hold a comma list; ranges
// "a-b" are allowed). When allowAll, "*" alone means every port. The
// returned ports are sorted and unique. The error names the bad entry.
func ParsePorts(items []string, allowAll bool) (all bool, ports []uint16, err error) {
	var bad []string
	var seen []string
	for _, it := range items {
		for _, s := range strings.Split(it, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			seen = append(seen, s)
			if s == "*" {
				if !allowAll {
					bad = append(bad, `"*" (not allowed here)`)
				}
				all = true
				continue
			}
			lo, hi, isRange := strings.Cut(s, "-")
			a, errA := parsePort(lo)
			b := a
			var errB error
			if isRange {
				b, errB = parsePort(hi)
			}
			switch {
			case errA != nil || errB != nil:
				bad = append(bad, strconv.Quote(s)+" (want a port 1-65535 or a range a-b)")
			case b < a:
				bad = append(bad, strconv.Quote(s)+" (range end before start)")
			case int(b)-int(a) > 1024:
				bad = append(bad, strconv.Quote(s)+" (range wider than 1024 ports)")
			default:
				for p := int(a); p <= int(b); p++ {
					ports = append(ports, uint16(p))
				}
			}
		}
	}
	if all && len(seen) > 1 && allowAll {
		bad = append(bad, `"*" must be alone`)
	}
	if len(bad) > 0 {
		return false, nil, fmt.Errorf("bad port %s", strings.Join(bad, ", "))
	}
	if all {
		return true, nil, nil
	}
	return false, sortedUnique(ports), nil
}

func parsePort(s string) (uint16, error) {
	if s == "" || len(s) > 5 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("not a port")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("not a port")
	}
	return uint16(n), nil
}

// ParseCIDRs parses CIDR list entries (a bare address is a /32 or /128).
// When allowAll, "*" alone means every destination. The error names every
// bad entry.
func ParseCIDRs(items []string, allowAll bool) (all bool, cidrs []netip.Prefix, err error) {
	var bad []string
	n := 0
	for _, it := range items {
		for _, s := range strings.Split(it, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			n++
			if s == "*" {
				if !allowAll {
					bad = append(bad, `"*" (not allowed here)`)
				}
				all = true
				continue
			}
			p, perr := ParseCIDR(s)
			if perr != nil {
				bad = append(bad, strconv.Quote(s)+" ("+perr.Error()+")")
				continue
			}
			cidrs = append(cidrs, p)
		}
	}
	if all && n > 1 && allowAll {
		bad = append(bad, `"*" must be alone`)
	}
	if len(bad) > 0 {
		return false, nil, fmt.Errorf("bad CIDR %s", strings.Join(bad, ", "))
	}
	if all {
		return true, nil, nil
	}
	sort.Slice(cidrs, func(i, j int) bool { return cidrs[i].String() < cidrs[j].String() })
	var uniq []netip.Prefix
	for i, c := range cidrs {
		if i == 0 || c != cidrs[i-1] {
			uniq = append(uniq, c)
		}
	}
	return false, uniq, nil
}

// ParseCIDR parses one CIDR or address. Host bits must be zero (10.0.0.1/8
// is refused: it is usually a typo for something else).
func ParseCIDR(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("not an IP address or CIDR")
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("not a CIDR")
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("IPv4-mapped IPv6 CIDR; write it as IPv4")
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("host bits set; did you mean %s?", p.Masked())
	}
	return p, nil
}

// ParseInterfaces checks interface names (1-15 characters, no '/', spaces,
// quotes or wildcards).
func ParseInterfaces(items []string) ([]string, error) {
	var out, bad []string
	for _, it := range items {
		for _, s := range strings.Split(it, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if len(s) > 15 || strings.ContainsAny(s, "/ \t\"'*+\\:") || s == "." || s == ".." {
				bad = append(bad, strconv.Quote(s))
				continue
			}
			ok := true
			for _, r := range s {
				if r < 0x21 || r > 0x7e {
					ok = false
				}
			}
			if !ok {
				bad = append(bad, strconv.Quote(s))
				continue
			}
			if !containsStr(out, s) {
				out = append(out, s)
			}
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("bad interface name %s (want 1-15 printable characters, no / : * + quotes or spaces)", strings.Join(bad, ", "))
	}
	return out, nil
}

func sortedUnique(ps []uint16) []uint16 {
	if len(ps) == 0 {
		return nil
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	out := ps[:1]
	for _, p := range ps[1:] {
		if p != out[len(out)-1] {
			out = append(out, p)
		}
	}
	return out
}

func contains(ps []uint16, p uint16) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

func containsStr(ss []string, s string) bool {
	for _, q := range ss {
		if q == s {
			return true
		}
	}
	return false
}
