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

// Hook says where a base chain is attached; HookNone is a regular chain
// reached only by jumps.
type Hook int

// The hooks initnet uses (both in the nat table).
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
)

// Verdict is a rule's action: return, jump to Chain, or redirect to Port.
type Verdict struct {
	Kind  VerdictKind
	Chain string
	Port  uint16
}

// Rule is one rule; every non-zero match must hold. Matches are applied (and
// rendered) in field order.
type Rule struct {
	InIface  string
	OutIface string
	Src      netip.Prefix // zero: any
	Dst      netip.Prefix // zero: any
	NotDst   bool
	Proto    Proto
	DPort    uint16 // needs Proto
	Owner    Owner
	Verdict  Verdict
	Comment  string // why the rule exists; rendered as a comment line
}

// Chain is a named chain; Hook != HookNone makes it a base chain in nat.
type Chain struct {
	Name  string
	Hook  Hook
	Rules []Rule
}

// RuleSet is everything initnet installs for one family.
type RuleSet struct {
	Family Family
	Chains []Chain
}

// Chain names (nftables spelling; iptables uses ChainPrefix + upper case).
const (
	ChainPrerouting = "prerouting"
	ChainInbound    = "inbound"
	ChainInRedirect = "in_redirect"
	ChainOutput     = "output"
	ChainOutbound   = "outbound"
	ChainRedirect   = "out_redirect"
	ChainDNS        = "dns_redirect"
)

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

func generate(o Options, f Family) RuleSet {
	inbound := o.InboundAll || len(o.InboundPorts) > 0
	passthrough := host(f, "127.0.0.6", "::6")
	localhost := host(f, "127.0.0.1", "::1")

	var pre, in, out, outb, dns []Rule
	for _, ifc := range o.ExcludeInterfaces {
		pre = append(pre, Rule{InIface: ifc, Verdict: Verdict{Kind: Return}, Comment: "excluded interface " + ifc})
		out = append(out, Rule{OutIface: ifc, Verdict: Verdict{Kind: Return}, Comment: "excluded interface " + ifc})
	}

	// Inbound.
	if inbound {
		pre = append(pre, Rule{Proto: ProtoTCP, Verdict: Verdict{Kind: Jump, Chain: ChainInbound}})
		for _, p := range o.InboundExcludeAll() {
			in = append(in, Rule{Proto: ProtoTCP, DPort: p, Verdict: Verdict{Kind: Return}, Comment: excludeWhy(o, p)})
		}
		if o.InboundAll {
			in = append(in, Rule{Proto: ProtoTCP, Verdict: Verdict{Kind: Jump, Chain: ChainInRedirect}, Comment: "capture every other inbound TCP port"})
		} else {
			for _, p := range o.InboundPorts {
				in = append(in, Rule{Proto: ProtoTCP, DPort: p, Verdict: Verdict{Kind: Jump, Chain: ChainInRedirect}})
			}
		}
	}

	// Outbound.
	out = append(out, Rule{Proto: ProtoTCP, Verdict: Verdict{Kind: Jump, Chain: ChainOutbound}})
	if o.DNS {
		out = append(out, Rule{Proto: ProtoUDP, DPort: 53, Verdict: Verdict{Kind: Jump, Chain: ChainDNS}, Comment: "DNS capture"})
	}
	for _, p := range o.OutboundExcludePorts {
		outb = append(outb, Rule{Proto: ProtoTCP, DPort: p, Verdict: Verdict{Kind: Return}, Comment: fmt.Sprintf("excluded outbound port %d", p)})
	}
	outb = append(outb, Rule{Src: passthrough, OutIface: "lo", Verdict: Verdict{Kind: Return},
		Comment: "the proxy's connections to the app (source " + passthrough.Addr().String() + ") are not captured again"})
	owners := []Owner{{Kind: OwnerUID, ID: o.ProxyUID}}
	if o.ProxyGID != nil {
		owners = append(owners, Owner{Kind: OwnerGID, ID: *o.ProxyGID})
	}
	for _, ow := range owners {
		who := fmt.Sprintf("proxy %s %d", map[OwnerKind]string{OwnerUID: "uid", OwnerGID: "gid"}[ow.Kind], ow.ID)
		if inbound {
			outb = append(outb, Rule{OutIface: "lo", Dst: localhost, NotDst: true, Owner: ow, Verdict: Verdict{Kind: Jump, Chain: ChainInRedirect},
				Comment: who + " calling the pod's own IP goes to the inbound listener"})
		}
		outb = append(outb, Rule{OutIface: "lo", Owner: Owner{Kind: ow.Kind, ID: ow.ID, Not: true}, Verdict: Verdict{Kind: Return},
			Comment: "the app calling localhost or its own pod IP is not captured"})
		outb = append(outb, Rule{Owner: ow, Verdict: Verdict{Kind: Return}, Comment: who + ": the proxy's own upstream connections are not captured (no loop)"})
	}
	outb = append(outb, Rule{Dst: localhost, Verdict: Verdict{Kind: Return}})
	if o.DNS {
		outb = append(outb, Rule{Proto: ProtoTCP, DPort: 53, Verdict: Verdict{Kind: Redirect, Port: o.DNSPort}, Comment: "DNS over TCP to the DNS proxy"})
		for _, ow := range owners {
			dns = append(dns, Rule{Owner: ow, Verdict: Verdict{Kind: Return}})
		}
		dns = append(dns, Rule{Dst: localhost, Verdict: Verdict{Kind: Return}})
		dns = append(dns, Rule{Proto: ProtoUDP, Verdict: Verdict{Kind: Redirect, Port: o.DNSPort}})
	}
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
	if inbound {
		rs.Chains = append(rs.Chains,
			Chain{Name: ChainInbound, Rules: in},
			Chain{Name: ChainInRedirect, Rules: []Rule{{Proto: ProtoTCP, Verdict: Verdict{Kind: Redirect, Port: o.InboundPort}}}})
	}
	rs.Chains = append(rs.Chains,
		Chain{Name: ChainOutput, Hook: HookOutput, Rules: out},
		Chain{Name: ChainOutbound, Rules: outb},
		Chain{Name: ChainRedirect, Rules: []Rule{{Proto: ProtoTCP, Verdict: Verdict{Kind: Redirect, Port: o.OutboundPort}}}})
	if o.DNS {
		rs.Chains = append(rs.Chains, Chain{Name: ChainDNS, Rules: dns})
	}
	return rs
}

func excludeWhy(o Options, p uint16) string {
	for _, q := range o.ProxyPorts {
		if q == p {
			return fmt.Sprintf("proxy port %d is never captured", p)
		}
	}
	return fmt.Sprintf("excluded inbound port %d", p)
}

func familyOf(p netip.Prefix) Family {
	if p.Addr().Is4() {
		return IPv4
	}
	return IPv6
}
