package rules

import (
	"fmt"
	"strings"
)

// TableName is the nftables table initnet owns in each family (ip and ip6).
// Cleanup deletes it; nothing outside it is touched.
const TableName = "sidecarkit"

// NftFamily is the nftables family keyword of f.
func NftFamily(f Family) string {
	if f == IPv6 {
		return "ip6"
	}
	return "ip"
}

// HookPriority is the nat priority of initnet's base chains (dstnat, -100,
// as iptables' nat table uses).
const HookPriority = -100

// NftRule renders one rule in nft syntax, in the order of the expressions
// the nftables backend sends, as `nft list ruleset` prints them.
func NftRule(f Family, r Rule) string {
	var parts []string
	if r.InIface != "" {
		parts = append(parts, fmt.Sprintf("iifname %q", r.InIface))
	}
	if r.OutIface != "" {
		parts = append(parts, fmt.Sprintf("oifname %q", r.OutIface))
	}
	fam := NftFamily(f)
	if r.Src.IsValid() {
		parts = append(parts, fmt.Sprintf("%s saddr %s", fam, nftPrefix(r.Src.String(), r.Src.Bits(), r.Src.Addr().BitLen())))
	}
	if r.Dst.IsValid() {
		op := ""
		if r.NotDst {
			op = "!= "
		}
		parts = append(parts, fmt.Sprintf("%s daddr %s%s", fam, op, nftPrefix(r.Dst.String(), r.Dst.Bits(), r.Dst.Addr().BitLen())))
	}
	if r.Proto != ProtoAny {
		switch {
		case r.DPort != 0:
			parts = append(parts, fmt.Sprintf("%s dport %d", r.Proto, r.DPort))
		case r.SPort != 0:
			parts = append(parts, fmt.Sprintf("%s sport %d", r.Proto, r.SPort))
		case len(r.NotDPorts) > 0:
			for _, p := range r.NotDPorts {
				parts = append(parts, fmt.Sprintf("%s dport != %d", r.Proto, p))
			}
		default:
			parts = append(parts, "meta l4proto "+r.Proto.String())
		}
	}
	if r.Owner.Kind != OwnerNone {
		key := "skuid"
		if r.Owner.Kind == OwnerGID {
			key = "skgid"
		}
		op := ""
		if r.Owner.Not {
			op = "!= "
		}
		parts = append(parts, fmt.Sprintf("meta %s %s%d", key, op, r.Owner.ID))
	}
	for _, g := range r.NotGIDs {
		parts = append(parts, fmt.Sprintf("meta skgid != %d", g))
	}
	if r.CtInvalid {
		parts = append(parts, "ct state invalid")
	}
	if r.Mark != 0 {
		op := ""
		if r.NotMark {
			op = "!= "
		}
		parts = append(parts, fmt.Sprintf("meta mark %s0x%08x", op, r.Mark))
	}
	if r.ConnMark != 0 {
		parts = append(parts, fmt.Sprintf("ct mark 0x%08x", r.ConnMark))
	}
	if r.CtEstRel {
		parts = append(parts, "ct state established,related")
	}
	switch r.Verdict.Kind {
	case Return:
		parts = append(parts, "return")
	case Jump:
		parts = append(parts, "jump "+r.Verdict.Chain)
	case Redirect:
		parts = append(parts, fmt.Sprintf("redirect to :%d", r.Verdict.Port))
	case Drop:
		parts = append(parts, "drop")
	case SetZone:
		parts = append(parts, fmt.Sprintf("ct zone set %d", r.Verdict.Zone))
	case SetMark:
		parts = append(parts, fmt.Sprintf("meta mark set 0x%08x", r.Verdict.Mark))
	case Accept:
		parts = append(parts, "accept")
	case TProxy:
		parts = append(parts, fmt.Sprintf("tproxy to :%d meta mark set 0x%08x accept", r.Verdict.Port, r.Verdict.Mark))
	case SaveMark:
		parts = append(parts, "ct mark set meta mark")
	case RestoreMark:
		parts = append(parts, "meta mark set ct mark")
	}
	return strings.Join(parts, " ")
}

func nftPrefix(s string, bits, max int) string {
	if bits == max {
		return strings.TrimSuffix(s, fmt.Sprintf("/%d", bits))
	}
	return s
}

func nftHook(h Hook) string {
	if h == HookPrerouting {
		return "prerouting"
	}
	return "output"
}

// RenderNft renders the rule sets as an nft script (nft -f) in the shape
// `nft list table` prints, one table per family. With comments, each rule
// that has a reason is preceded by a # line.
func RenderNft(sets []RuleSet, comments bool) string {
	var b strings.Builder
	for _, rs := range sets {
		b.WriteString(RenderNftTable(rs, comments))
	}
	return b.String()
}

// RenderNftTable renders one family's table.
func RenderNftTable(rs RuleSet, comments bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s %s {\n", NftFamily(rs.Family), TableName)
	for i, c := range rs.Chains {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "\tchain %s {\n", c.Name)
		if c.Hook != HookNone {
			fmt.Fprintf(&b, "\t\ttype %s hook %s priority %s; policy accept;\n", NftChainType(c.Table, c.Hook), nftHook(c.Hook), nftPriority(c.Table, c.Hook))
		}
		for _, r := range c.Rules {
			if comments && r.Comment != "" {
				fmt.Fprintf(&b, "\t\t# %s\n", r.Comment)
			}
			fmt.Fprintf(&b, "\t\t%s\n", NftRule(rs.Family, r))
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// NftChainType is the nftables chain type of a base chain in table t at
// hook h (mangle's output chain is a route chain, so a changed mark
// re-routes the packet, as iptables' mangle OUTPUT does).
func NftChainType(t Table, h Hook) string {
	switch {
	case t == TableNat:
		return "nat"
	case t == TableMangle && h == HookOutput:
		return "route"
	}
	return "filter"
}

// NftPriority is the priority of a base chain in table t (iptables' table
// priorities: raw -300, mangle -150, nat -100).
func NftPriority(t Table) int {
	switch t {
	case TableRaw:
		return -300
	case TableMangle:
		return -150
	}
	return HookPriority
}

// nftPriority is how nft prints a base chain's priority: by its standard
// name where one applies.
func nftPriority(t Table, h Hook) string {
	switch {
	case t == TableRaw:
		return "raw"
	case t == TableMangle:
		return "mangle"
	case h == HookPrerouting:
		return "dstnat"
	}
	return "-100"
}
