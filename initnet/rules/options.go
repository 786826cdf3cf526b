package rules

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// Options is what to capture. Build it with Raw.Options, which validates.
type Options struct {
	OutboundPort uint16 // the proxy's outbound listener (15001)
	InboundPort  uint16 // the proxy's inbound listener (15006)
	DNSPort      uint16 // the DNS proxy (15053), used when DNS is set
	ProxyUID     uint32
	ProxyGID     *uint32 // nil: no GID rule

	InboundAll     bool     // capture every inbound port but the excluded ones
	InboundPorts   []uint16 // else: capture only these (none: no inbound capture)
	InboundExclude []uint16
	ProxyPorts     []uint16       // the proxy's admin/metrics ports: never captured inbound
	OutboundAll    bool           // capture all outbound destinations but excluded ones
	OutboundCIDRs  []netip.Prefix // else: capture only these

	OutboundIncludePorts []uint16
	OutboundExcludePorts []uint16
	OutboundExcludeCIDRs []netip.Prefix
	ExcludeInterfaces    []string

	IPv4, IPv6 bool
	DNS        bool
}

// InboundExcludeAll returns the proxy ports and the excluded inbound ports,
// sorted, without duplicates.
func (o Options) InboundExcludeAll() []uint16 {
	return sortedUnique(append(append([]uint16(nil), o.ProxyPorts...), o.InboundExclude...))
}

// Raw is the options as text, as they come from flags, env or YAML. Each
// field's key is what problems name.
type Raw struct {
	OutboundPort, InboundPort, DNSPort int
	ProxyUID, ProxyGID                 string
	InterceptionMode                   string
	InboundPorts, InboundExclude       []string
	ProxyPorts                         []string
	OutboundCIDRs, OutboundExclude     []string
	OutboundPorts, OutboundExcludePort []string
	ExcludeInterfaces                  []string
	IPv4, IPv6                         bool
	DNS                                bool
}

// Keys names each Raw field as the user spells it (istio-iptables' flag
// names), for problems.
type Keys struct {
	OutboundPort, InboundPort, DNSPort, ProxyUID, ProxyGID, InterceptionMode,
	InboundPorts, InboundExclude, ProxyPorts, OutboundCIDRs, OutboundExclude,
	OutboundPorts, OutboundExcludePort, ExcludeInterfaces, Families string
}

// DefaultKeys returns the flag names initnet uses.
func DefaultKeys() Keys {
	return Keys{
		OutboundPort: "envoy-port", InboundPort: "inbound-capture-port", DNSPort: "dns-port",
		ProxyUID: "proxy-uid", ProxyGID: "proxy-gid", InterceptionMode: "istio-inbound-interception-mode",
		InboundPorts: "istio-inbound-ports", InboundExclude: "istio-local-exclude-ports",
		ProxyPorts: "proxy-ports", OutboundCIDRs: "istio-service-cidr", OutboundExclude: "istio-service-exclude-cidr",
		OutboundPorts: "istio-outbound-ports", OutboundExcludePort: "istio-local-outbound-ports-exclude",
		ExcludeInterfaces: "istio-exclude-interfaces", Families: "ipv4/ipv6",
	}
}

// Problem is one thing wrong with the options, naming the key and the value.
type Problem struct {
	Key, Value, Why string
}

func (p Problem) Error() string { return fmt.Sprintf("%s %q: %s", p.Key, p.Value, p.Why) }

// Options validates r and returns the options, or every problem found.
func (r Raw) Options(k Keys) (Options, []Problem) {
	var ps []Problem
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
		IPv4:         r.IPv4, IPv6: r.IPv6, DNS: r.DNS,
	}
	if r.DNS {
		o.DNSPort = port(k.DNSPort, r.DNSPort)
	}
	if uid, err := ParseID(r.ProxyUID); err != nil {
		bad(k.ProxyUID, r.ProxyUID, "%v", err)
	} else {
		o.ProxyUID = uid
	}
	if strings.TrimSpace(r.ProxyGID) != "" {
		if gid, err := ParseID(r.ProxyGID); err != nil {
			bad(k.ProxyGID, r.ProxyGID, "%v", err)
		} else {
			o.ProxyGID = &gid
		}
	}
	if m := strings.ToUpper(strings.TrimSpace(r.InterceptionMode)); m != "" && m != "REDIRECT" {
		bad(k.InterceptionMode, r.InterceptionMode, "only REDIRECT is supported (TPROXY is not)")
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

	// Conflicts: a port both captured and excluded is a mistake to report,
	// not to resolve silently.
	for _, p := range o.InboundPorts {
		if contains(o.ProxyPorts, p) {
			bad(k.InboundPorts, strconv.Itoa(int(p)), "is a proxy port (%s), which is never captured", k.ProxyPorts)
		} else if contains(o.InboundExclude, p) {
			bad(k.InboundPorts, strconv.Itoa(int(p)), "is also in %s", k.InboundExclude)
		}
	}
	for _, p := range o.OutboundIncludePorts {
		if contains(o.OutboundExcludePorts, p) {
			bad(k.OutboundPorts, strconv.Itoa(int(p)), "is also in %s", k.OutboundExcludePort)
		}
	}
	if o.OutboundPort != 0 && o.OutboundPort == o.InboundPort {
		bad(k.InboundPort, strconv.Itoa(int(o.InboundPort)), "must differ from %s", k.OutboundPort)
	}
	if !o.IPv4 && !o.IPv6 {
		bad(k.Families, "false/false", "enable at least one IP family")
	}
	if o.ProxyUID == 0 {
		bad(k.ProxyUID, r.ProxyUID, "must not be 0: root's own traffic would bypass the proxy")
	}
	return o, ps
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
