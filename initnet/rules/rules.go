// Package rules is initnet's pure core: capture options in, the redirect
// rule set out as plain data, rendered as iptables-restore text or as an
// nftables ruleset. Nothing here touches the kernel; the backends do.
//
// The rule set follows istio-iptables (REDIRECT mode): inbound TCP to the
// captured ports goes to the proxy's inbound port, the app's outbound TCP goes
// to the proxy's outbound port, and the loop-breakers let the proxy's own
// traffic through.
package rules

import (
	"fmt"
	"net/netip"
)

// Family is an IP family: each family gets its own table.
type Family int

// The families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string {
	if f == IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

// Table is the netfilter table a chain belongs to (iptables' tables; in
// nftables, the chain's type and priority).
type Table int

// The tables initnet uses.
const (
	TableNat    Table = iota // redirects (priority -100)
	TableRaw                 // DNS conntrack zones (priority -300)
	TableMangle              // --drop-invalid (priority -150)
)

// Tables lists every table initnet may use, in the order they are rendered.
var Tables = []Table{TableNat, TableRaw, TableMangle}

func (t Table) String() string {
	switch t {
	case TableRaw:
		return "raw"
	case TableMangle:
		return "mangle"
	}
	return "nat"
}

// Hook says where a base chain is attached; HookNone is a regular chain
// reached only by jumps.
type Hook int

// The hooks initnet uses.
const (
	HookNone Hook = iota
	HookPrerouting
	HookOutput
)

// Proto is the L4 protocol a rule matches (ProtoAny: no match).
type Proto int

// The protocols.
const (
	ProtoAny Proto = iota
	ProtoTCP
	ProtoUDP
)

func (p Proto) String() string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	}
	return ""
}

// OwnerKind selects the socket owner match.
type OwnerKind int

// Owner match kinds.
const (
	OwnerNone OwnerKind = iota
	OwnerUID
	OwnerGID
)

// Owner matches the UID or GID of the socket that sent a packet.
type Owner struct {
	Kind OwnerKind
	ID   uint32
	Not  bool
}

// VerdictKind is what a matching rule does.
type VerdictKind int

// The verdicts.
const (
	Return VerdictKind = iota
	Jump
	Redirect
	Drop
	SetZone     // conntrack zone (raw table); the packet goes on
	SetMark     // set the packet mark to Mark; the packet goes on
	Accept      // accept (ends this table's processing)
	TProxy      // TPROXY to Port, marking the packet Mark, accept
	SaveMark    // connection mark := packet mark (CONNMARK --save-mark)
	RestoreMark // packet mark := connection mark (CONNMARK --restore-mark)
)

// Verdict is a rule's action: return, jump to Chain, redirect to Port, drop,
// or put the connection in conntrack zone Zone.
type Verdict struct {
	Kind  VerdictKind
	Chain string
	Port  uint16
	Zone  uint16
	Mark  uint32
}

// Rule is one rule; every non-zero match must hold. Matches are applied (and
// rendered) in field order.
type Rule struct {
	InIface   string
	OutIface  string
	Src       netip.Prefix // zero: any
	Dst       netip.Prefix // zero: any
	NotDst    bool
	Proto     Proto
	DPort     uint16   // needs Proto
	NotDPorts []uint16 // destination port is none of these; needs Proto
	SPort     uint16   // needs Proto
	Owner     Owner
	NotGIDs   []uint32 // the socket's GID is none of these (owner-group capture)
	CtInvalid bool     // conntrack state INVALID
	Mark      uint32   // packet mark is (or with NotMark is not) Mark; 0: no match
	NotMark   bool
	ConnMark  uint32 // connection mark is ConnMark; 0: no match
	CtEstRel  bool   // conntrack state RELATED or ESTABLISHED
	Verdict   Verdict
	Comment   string // why the rule exists; rendered as a comment line
}

// Chain is a named chain; Hook != HookNone makes it a base chain of Table.
type Chain struct {
	Name  string
	Table Table
	Hook  Hook
	Rules []Rule
}

// RuleSet is everything initnet installs for one family.
type RuleSet struct {
	Family Family
	Chains []Chain
}

// Chain names (nftables spelling; iptables uses ChainPrefix + upper case).
// Names are unique across tables.
const (
	ChainPrerouting       = "prerouting"
	ChainInbound          = "inbound"
	ChainInRedirect       = "in_redirect"
	ChainOutput           = "output"
	ChainOutbound         = "outbound"
	ChainRedirect         = "out_redirect"
	ChainDNS              = "dns_redirect"
	ChainRawPrerouting    = "raw_prerouting"
	ChainRawOutput        = "raw_output"
	ChainManglePrerouting = "mangle_prerouting"
	ChainMangleOutput     = "mangle_output"
	ChainTProxyInbound    = "tproxy_inbound"
	ChainDivert           = "divert"
	ChainTProxy           = "tproxy"
)

// OutboundMark marks the proxy's packets to the pod's own IP in TPROXY
// mode (istio-iptables' 1338).
const OutboundMark = 1338

// Generate turns validated options into one rule set per enabled family.
func Generate(o Options) []RuleSet {
	var out []RuleSet
	if o.IPv4 {
		out = append(out, generate(o, IPv4))
	}
	if o.IPv6 {
		out = append(out, generate(o, IPv6))
	}
	return out
}

func host(f Family, v4, v6 string) netip.Prefix {
	if f == IPv6 {
		a := netip.MustParseAddr(v6)
		return netip.PrefixFrom(a, 128)
	}
	a := netip.MustParseAddr(v4)
	return netip.PrefixFrom(a, 32)
}

func single(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// generate follows istio-iptables' capture (tools/istio-iptables
// pkg/capture/run.go, REDIRECT mode) rule for rule, in its order, so every
// packet takes the path it takes with Istio. Where initnet differs it is
// through Options alone (its defaults, ProxyPorts), never here.
func generate(o Options, f Family) RuleSet {
	inbound := o.InboundAll || len(o.InboundPorts) > 0
	passthrough := host(f, "127.0.0.6", "::6")
	localhost := host(f, "127.0.0.1", "::1")
	if f == IPv4 && o.LoopbackCIDR.IsValid() {
		localhost = o.LoopbackCIDR
	}
	var dnsServers []netip.Addr
	for _, a := range o.DNSServers {
		if (f == IPv4) == a.Is4() {
			dnsServers = append(dnsServers, a)
		}
	}
	dnsHere := o.DNS && (o.CaptureAllDNS || len(dnsServers) > 0)

	var pre, in, out, outb, dns []Rule
	// -k: traffic arriving on a VM's virtual NIC is outbound traffic of the
	// VM: it goes to the outbound listener, never to the inbound one.
	for _, k := range o.KubeVirtInterfaces {
		if o.OutboundAll {
			pre = append(pre, Rule{InIface: k, Verdict: Verdict{Kind: Jump, Chain: ChainRedirect}, Comment: "kube-virt interface " + k + ": its traffic is outbound"})
		} else {
			for _, c := range o.OutboundCIDRs {
				if familyOf(c) == f {
					pre = append(pre, Rule{InIface: k, Dst: c, Verdict: Verdict{Kind: Jump, Chain: ChainRedirect}, Comment: "kube-virt interface " + k + ": its traffic is outbound"})
				}
			}
		}
	}
	for _, k := range o.KubeVirtInterfaces {
		pre = append(pre, Rule{InIface: k, Verdict: Verdict{Kind: Return}, Comment: "kube-virt interface " + k + ": never captured inbound"})
	}
	for _, ifc := range o.ExcludeInterfaces {
		pre = append(pre, Rule{InIface: ifc, Verdict: Verdict{Kind: Return}, Comment: "excluded interface " + ifc})
		out = append(out, Rule{OutIface: ifc, Verdict: Verdict{Kind: Return}, Comment: "excluded interface " + ifc})
	}

	// Inbound (REDIRECT mode; TPROXY's is in mangle, below).
	if inbound && !o.TProxy {
		pre = append(pre, Rule{Proto: ProtoTCP, Verdict: Verdict{Kind: Jump, Chain: ChainInbound}})
		in = append(in, Rule{Proto: ProtoTCP, DPort: o.TunnelPort, Verdict: Verdict{Kind: Return},
			Comment: fmt.Sprintf("tunnel port %d (HBONE) is never captured", o.TunnelPort)})
		if o.InboundAll {
			for _, p := range o.InboundExcludeAll() {
				in = append(in, Rule{Proto: ProtoTCP, DPort: p, Verdict: Verdict{Kind: Return}, Comment: excludeWhy(o, p)})
			}
			in = append(in, Rule{Proto: ProtoTCP, Verdict: Verdict{Kind: Jump, Chain: ChainInRedirect}, Comment: "capture every other inbound TCP port"})
		} else {
			for _, p := range o.InboundPorts {
				in = append(in, Rule{Proto: ProtoTCP, DPort: p, Verdict: Verdict{Kind: Jump, Chain: ChainInRedirect}})
			}
		}
	}

	// Outbound: every protocol enters (UDP for DNS); only TCP is redirected.
	out = append(out, Rule{Verdict: Verdict{Kind: Jump, Chain: ChainOutbound}})
	for _, p := range o.OutboundExcludePorts {
		outb = append(outb,
			Rule{Proto: ProtoTCP, DPort: p, Verdict: Verdict{Kind: Return}, Comment: fmt.Sprintf("excluded outbound port %d (TCP and UDP)", p)},
			Rule{Proto: ProtoUDP, DPort: p, Verdict: Verdict{Kind: Return}})
	}
	outb = append(outb, Rule{Src: passthrough, OutIface: "lo", Verdict: Verdict{Kind: Return},
		Comment: "the proxy's connections to the app (source " + passthrough.Addr().String() + ") are not captured again"})
	loopInclude := false
	for _, c := range o.OutboundCIDRs {
		if c.Addr().IsLoopback() {
			loopInclude = true
		}
	}
	var owners []Owner
	for _, u := range o.ProxyUIDs {
		owners = append(owners, Owner{Kind: OwnerUID, ID: u})
	}
	for _, g := range o.ProxyGIDs {
		owners = append(owners, Owner{Kind: OwnerGID, ID: g})
	}
	for _, ow := range owners {
		who := fmt.Sprintf("proxy %s %d", map[OwnerKind]string{OwnerUID: "uid", OwnerGID: "gid"}[ow.Kind], ow.ID)
		notPorts := []uint16{o.TunnelPort}
		if o.DNS && ow.Kind == OwnerUID { // as istio-iptables: the GID rule keeps port 53
			notPorts = sortedUnique([]uint16{53, o.TunnelPort})
		}
		outb = append(outb, Rule{OutIface: "lo", Dst: localhost, NotDst: true, Proto: ProtoTCP, NotDPorts: notPorts, Owner: ow,
			Verdict: Verdict{Kind: Jump, Chain: ChainInRedirect},
			Comment: who + " calling the pod's own IP goes to the inbound listener"})
		if !loopInclude {
			r := Rule{OutIface: "lo", Owner: Owner{Kind: ow.Kind, ID: ow.ID, Not: true}, Verdict: Verdict{Kind: Return},
				Comment: "the app calling localhost or its own pod IP is not captured"}
			if o.DNS {
				r.Proto, r.NotDPorts = ProtoTCP, []uint16{53}
				r.Comment += " (but TCP DNS to a local resolver is)"
			}
			outb = append(outb, r)
		}
		outb = append(outb, Rule{Owner: ow, Verdict: Verdict{Kind: Return}, Comment: who + ": the proxy's own upstream connections are not captured (no loop)"})
	}
	// ISTIO_OUTBOUND_OWNER_GROUPS[_EXCLUDE]: only these groups' traffic is
	// captured, or everyone's but these groups'.
	if o.OwnerGroupsAll {
		for _, g := range o.OwnerGroupsExclude {
			outb = append(outb, Rule{Owner: Owner{Kind: OwnerGID, ID: g}, Verdict: Verdict{Kind: Return}, Comment: fmt.Sprintf("group %d's traffic is not captured", g)})
		}
	} else {
		outb = append(outb, Rule{NotGIDs: o.OwnerGroupsInclude, Verdict: Verdict{Kind: Return}, Comment: "only the listed groups' traffic is captured"})
	}
	if dnsHere {
		outb = append(outb, Rule{Verdict: Verdict{Kind: Jump, Chain: ChainDNS}, Comment: "DNS capture"})
		for _, proto := range []Proto{ProtoTCP, ProtoUDP} {
			if o.CaptureAllDNS {
				dns = append(dns, Rule{Proto: proto, DPort: 53, Verdict: Verdict{Kind: Redirect, Port: o.DNSPort}})
			}
			for _, s := range dnsServers {
				dns = append(dns, Rule{Dst: single(s), Proto: proto, DPort: 53, Verdict: Verdict{Kind: Redirect, Port: o.DNSPort}})
			}
		}
	}
	outb = append(outb, Rule{Dst: localhost, Verdict: Verdict{Kind: Return}})
	for _, c := range o.OutboundExcludeCIDRs {
		if familyOf(c) == f {
			outb = append(outb, Rule{Dst: c, Verdict: Verdict{Kind: Return}, Comment: "excluded CIDR " + c.String()})
		}
	}
	for _, p := range o.OutboundIncludePorts {
		outb = append(outb, Rule{Proto: ProtoTCP, DPort: p, Verdict: Verdict{Kind: Jump, Chain: ChainRedirect}, Comment: fmt.Sprintf("included outbound port %d", p)})
	}
	if o.OutboundAll {
		outb = append(outb, Rule{Verdict: Verdict{Kind: Jump, Chain: ChainRedirect}, Comment: "capture all other outbound TCP"})
	} else {
		for _, c := range o.OutboundCIDRs {
			if familyOf(c) == f {
				outb = append(outb, Rule{Dst: c, Verdict: Verdict{Kind: Jump, Chain: ChainRedirect}})
			}
		}
	}

	rs := RuleSet{Family: f}
	rs.Chains = append(rs.Chains, Chain{Name: ChainPrerouting, Hook: HookPrerouting, Rules: pre})
	if inbound && !o.TProxy {
		rs.Chains = append(rs.Chains, Chain{Name: ChainInbound, Rules: in})
	}
	rs.Chains = append(rs.Chains,
		Chain{Name: ChainInRedirect, Rules: []Rule{{Proto: ProtoTCP, Verdict: Verdict{Kind: Redirect, Port: o.InboundPort}}}},
		Chain{Name: ChainOutput, Hook: HookOutput, Rules: out},
		Chain{Name: ChainOutbound, Rules: outb},
		Chain{Name: ChainRedirect, Rules: []Rule{{Proto: ProtoTCP, Verdict: Verdict{Kind: Redirect, Port: o.OutboundPort}}}})
	if dnsHere {
		rs.Chains = append(rs.Chains, Chain{Name: ChainDNS, Rules: dns})
	}

	// DNS conntrack zones (raw): the app <-> DNS proxy leg in zone 2, the DNS
	// proxy <-> upstream leg in zone 1, so replies of the two legs (same
	// 5-tuple after the redirect) never meet in one conntrack entry.
	if o.DNS {
		var rawOut, rawPre []Rule
		for _, ow := range owners {
			rawOut = append(rawOut,
				Rule{Proto: ProtoUDP, DPort: 53, Owner: ow, Verdict: Verdict{Kind: SetZone, Zone: 1}, Comment: "the DNS proxy's queries upstream: zone 1"},
				Rule{Proto: ProtoUDP, SPort: o.DNSPort, Owner: ow, Verdict: Verdict{Kind: SetZone, Zone: 2}, Comment: "the DNS proxy's answers to the app: zone 2"})
		}
		if o.CaptureAllDNS {
			rawOut = append(rawOut, Rule{Proto: ProtoUDP, DPort: 53, Verdict: Verdict{Kind: SetZone, Zone: 2}, Comment: "the app's queries: zone 2"})
			rawPre = append(rawPre, Rule{Proto: ProtoUDP, SPort: 53, Verdict: Verdict{Kind: SetZone, Zone: 1}, Comment: "upstream answers: zone 1"})
		} else {
			for _, s := range dnsServers {
				rawOut = append(rawOut, Rule{Dst: single(s), Proto: ProtoUDP, DPort: 53, Verdict: Verdict{Kind: SetZone, Zone: 2}, Comment: "the app's queries: zone 2"})
				rawPre = append(rawPre, Rule{Src: single(s), Proto: ProtoUDP, SPort: 53, Verdict: Verdict{Kind: SetZone, Zone: 1}, Comment: "upstream answers: zone 1"})
			}
		}
		if len(rawPre) > 0 {
			rs.Chains = append(rs.Chains, Chain{Name: ChainRawPrerouting, Table: TableRaw, Hook: HookPrerouting, Rules: rawPre})
		}
		rs.Chains = append(rs.Chains, Chain{Name: ChainRawOutput, Table: TableRaw, Hook: HookOutput, Rules: rawOut})
	}
	rs.Chains = append(rs.Chains, mangle(o, f, inbound, owners, passthrough, localhost)...)
	return rs
}

// mangle is the mangle table: --drop-invalid, and TPROXY mode's inbound
// capture (istio-iptables' ISTIO_DIVERT/ISTIO_TPROXY/ISTIO_INBOUND chains,
// marks and connmarks), in istio-iptables' order.
func mangle(o Options, f Family, inbound bool, owners []Owner, passthrough, localhost netip.Prefix) []Chain {
	var pre, out []Rule
	var chains []Chain
	if o.TProxy {
		for _, ifc := range o.ExcludeInterfaces {
			pre = append(pre, Rule{InIface: ifc, Verdict: Verdict{Kind: Return}, Comment: "excluded interface " + ifc})
			out = append(out, Rule{OutIface: ifc, Verdict: Verdict{Kind: Return}, Comment: "excluded interface " + ifc})
		}
	}
	if o.DropInvalid {
		pre = append(pre, Rule{CtInvalid: true, Verdict: Verdict{Kind: Drop}, Comment: "--drop-invalid: out-of-window packets are dropped, not answered with a reset"})
	}
	if o.TProxy {
		m := o.TProxyMark
		if inbound {
			pre = append(pre, Rule{Proto: ProtoTCP, Verdict: Verdict{Kind: Jump, Chain: ChainTProxyInbound}})
			in := []Rule{
				{Proto: ProtoTCP, Mark: m, Verdict: Verdict{Kind: Return}, Comment: "already diverted: no second TPROXY"},
				{InIface: "lo", Src: passthrough, Proto: ProtoTCP, Verdict: Verdict{Kind: Return}, Comment: "the proxy's connections to the app (source " + passthrough.Addr().String() + ")"},
				{InIface: "lo", Proto: ProtoTCP, Mark: OutboundMark, NotMark: true, Verdict: Verdict{Kind: Return}, Comment: "the app calling itself over lo"},
			}
			if o.InboundAll {
				for _, p := range o.InboundExcludeAll() {
					in = append(in, Rule{Proto: ProtoTCP, DPort: p, Verdict: Verdict{Kind: Return}, Comment: excludeWhy(o, p)})
				}
				in = append(in,
					Rule{Proto: ProtoTCP, CtEstRel: true, Verdict: Verdict{Kind: Jump, Chain: ChainDivert}, Comment: "packets of a diverted connection go to the local socket"},
					Rule{Proto: ProtoTCP, Verdict: Verdict{Kind: Jump, Chain: ChainTProxy}, Comment: "new connections: TPROXY to the inbound listener"})
			} else {
				for _, p := range o.InboundPorts {
					in = append(in,
						Rule{Proto: ProtoTCP, DPort: p, CtEstRel: true, Verdict: Verdict{Kind: Jump, Chain: ChainDivert}},
						Rule{Proto: ProtoTCP, DPort: p, Verdict: Verdict{Kind: Jump, Chain: ChainTProxy}})
				}
			}
			chains = append(chains,
				Chain{Name: ChainTProxyInbound, Table: TableMangle, Rules: in},
				Chain{Name: ChainDivert, Table: TableMangle, Rules: []Rule{
					{Verdict: Verdict{Kind: SetMark, Mark: m}}, {Verdict: Verdict{Kind: Accept}}}},
				Chain{Name: ChainTProxy, Table: TableMangle, Rules: []Rule{
					{Dst: localhost, NotDst: true, Proto: ProtoTCP, Verdict: Verdict{Kind: TProxy, Port: o.InboundPort, Mark: m}}}})
		}
		pre = append(pre, Rule{Proto: ProtoTCP, Mark: m, Verdict: Verdict{Kind: SaveMark}, Comment: "remember the TPROXY mark on the connection"})
		out = append(out, Rule{OutIface: "lo", Proto: ProtoTCP, Mark: m, Verdict: Verdict{Kind: Return}})
		for _, ow := range owners {
			out = append(out, Rule{OutIface: "lo", Dst: localhost, NotDst: true, Proto: ProtoTCP, Owner: ow, Verdict: Verdict{Kind: SetMark, Mark: OutboundMark},
				Comment: "the proxy calling the pod's own IP"})
		}
		out = append(out, Rule{Proto: ProtoTCP, ConnMark: m, Verdict: Verdict{Kind: RestoreMark},
			Comment: "answers of diverted connections carry the mark: the policy route keeps them local"})
	}
	if len(pre) > 0 {
		chains = append([]Chain{{Name: ChainManglePrerouting, Table: TableMangle, Hook: HookPrerouting, Rules: pre}}, chains...)
	}
	if len(out) > 0 {
		chains = append(chains, Chain{Name: ChainMangleOutput, Table: TableMangle, Hook: HookOutput, Rules: out})
	}
	return chains
}

func excludeWhy(o Options, p uint16) string {
	for _, q := range o.InboundExclude {
		if q == p {
			return fmt.Sprintf("excluded inbound port %d", p)
		}
	}
	return fmt.Sprintf("proxy port %d is never captured (--proxy-ports)", p)
}

func familyOf(p netip.Prefix) Family {
	if p.Addr().Is4() {
		return IPv4
	}
	return IPv6
}
