package rules

import (
	"fmt"
	"sort"
	"strings"
)

// ChainPrefix starts the name of every iptables chain initnet owns.
const ChainPrefix = "SIDECARKIT_"

// MadePrefix starts the names of initnet's marker chains: an empty chain
// SIDECARKIT_MADE_<BUILTIN> in a table says initnet's apply created that
// built-in chain (iptables-nft creates built-in chains on first use), and
// SIDECARKIT_MADE_TABLE that it created the table; cleanup removes what
// they name when it is empty again, so the namespace is left as found.
const MadePrefix = ChainPrefix + "MADE_"

// MadeTable is the marker chain saying initnet created the table.
const MadeTable = MadePrefix + "TABLE"

// IptablesChain is the iptables name of chain name.
func IptablesChain(name string) string { return ChainPrefix + strings.ToUpper(name) }

// Builtin is the iptables built-in chain of a hook.
func Builtin(h Hook) string {
	switch h {
	case HookPrerouting:
		return "PREROUTING"
	case HookOutput:
		return "OUTPUT"
	}
	return ""
}

// jumpRule is the one rule initnet adds to a built-in chain, as
// iptables-save prints it.
func jumpRule(c Chain) string {
	return fmt.Sprintf("-A %s -j %s", Builtin(c.Hook), IptablesChain(c.Name))
}

func joinPorts(ps []uint16) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, ",")
}

// IptablesRule renders one rule of chain as iptables-save prints it, so the
// rendered text can be compared with what the kernel holds.
func IptablesRule(chain string, r Rule) string {
	var b strings.Builder
	fmt.Fprintf(&b, "-A %s", chain)
	if r.Src.IsValid() {
		fmt.Fprintf(&b, " -s %s", r.Src)
	}
	if r.Dst.IsValid() {
		if r.NotDst {
			b.WriteString(" !")
		}
		fmt.Fprintf(&b, " -d %s", r.Dst)
	}
	if r.InIface != "" {
		fmt.Fprintf(&b, " -i %s", r.InIface)
	}
	if r.OutIface != "" {
		fmt.Fprintf(&b, " -o %s", r.OutIface)
	}
	if r.Proto != ProtoAny {
		fmt.Fprintf(&b, " -p %s", r.Proto)
		switch {
		case r.DPort != 0:
			fmt.Fprintf(&b, " -m %s --dport %d", r.Proto, r.DPort)
		case r.SPort != 0:
			fmt.Fprintf(&b, " -m %s --sport %d", r.Proto, r.SPort)
		case len(r.NotDPorts) == 1:
			fmt.Fprintf(&b, " -m %s ! --dport %d", r.Proto, r.NotDPorts[0])
		case len(r.NotDPorts) > 1:
			fmt.Fprintf(&b, " -m multiport ! --dports %s", joinPorts(r.NotDPorts))
		}
	}
	if r.Owner.Kind != OwnerNone {
		b.WriteString(" -m owner")
		if r.Owner.Not {
			b.WriteString(" !")
		}
		if r.Owner.Kind == OwnerUID {
			fmt.Fprintf(&b, " --uid-owner %d", r.Owner.ID)
		} else {
			fmt.Fprintf(&b, " --gid-owner %d", r.Owner.ID)
		}
	}
	for _, g := range r.NotGIDs {
		fmt.Fprintf(&b, " -m owner ! --gid-owner %d", g)
	}
	if r.CtInvalid {
		b.WriteString(" -m conntrack --ctstate INVALID")
	}
	if r.Mark != 0 {
		if r.NotMark {
			fmt.Fprintf(&b, " -m mark ! --mark %#x", r.Mark)
		} else {
			fmt.Fprintf(&b, " -m mark --mark %#x", r.Mark)
		}
	}
	if r.ConnMark != 0 {
		fmt.Fprintf(&b, " -m connmark --mark %#x", r.ConnMark)
	}
	if r.CtEstRel {
		b.WriteString(" -m conntrack --ctstate RELATED,ESTABLISHED")
	}
	switch r.Verdict.Kind {
	case Return:
		b.WriteString(" -j RETURN")
	case Jump:
		fmt.Fprintf(&b, " -j %s", IptablesChain(r.Verdict.Chain))
	case Redirect:
		fmt.Fprintf(&b, " -j REDIRECT --to-ports %d", r.Verdict.Port)
	case Drop:
		b.WriteString(" -j DROP")
	case SetZone:
		fmt.Fprintf(&b, " -j CT --zone %d", r.Verdict.Zone)
	case SetMark:
		fmt.Fprintf(&b, " -j MARK --set-xmark %#x/0xffffffff", r.Verdict.Mark)
	case Accept:
		b.WriteString(" -j ACCEPT")
	case TProxy:
		ip := "0.0.0.0"
		if r.Dst.IsValid() && r.Dst.Addr().Is6() {
			ip = "::"
		}
		fmt.Fprintf(&b, " -j TPROXY --on-port %d --on-ip %s --tproxy-mark %#x/0xffffffff", r.Verdict.Port, ip, r.Verdict.Mark)
	case SaveMark:
		b.WriteString(" -j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff")
	case RestoreMark:
		b.WriteString(" -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff")
	}
	return b.String()
}

// RenderIptables renders rs as a complete iptables-restore input, one
// section per table, with comment lines saying why each loop-breaker
// exists. It is what --dry-run prints; the apply plan is PlanIptablesApply.
func RenderIptables(rs RuleSet) string {
	return PlanIptablesApply(rs, "", true)
}

// TablesOf returns the tables rs has chains in, in Tables order.
func TablesOf(rs RuleSet) []Table {
	var out []Table
	for _, t := range Tables {
		for _, c := range rs.Chains {
			if c.Table == t {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

// PlanIptablesApply returns iptables-restore --noflush input that makes the
// tables hold exactly rs for initnet's chains, given the current
// iptables-save output (all tables): initnet's chains are declared (which
// flushes them), filled, the jumps from the built-in chains added only when
// missing, chains initnet made earlier but no longer needs removed, and
// marker chains record the built-in chains and tables initnet creates (see
// MadePrefix). Tables rs does not use are left alone here (PlanIptablesCleanup
// handles them). Running it twice leaves the same rules.
func PlanIptablesApply(rs RuleSet, save string, comments bool) string {
	return planApply(rs, save, comments, false)
}

// PlanIptablesApplyMarked is PlanIptablesApply with the marker chains (see
// MadePrefix): what the backend runs. have, when not nil, says which
// tables (keys) and built-in chains exist (iptables-nft-save prints every
// built-in chain of a table whether it exists or not, so the backend asks
// nf_tables); nil: read it from save.
func PlanIptablesApplyMarked(rs RuleSet, save string, have map[string]map[string]bool) string {
	return planApply(rs, save, false, true, have)
}

func planApply(rs RuleSet, save string, comments, mark bool, have ...map[string]map[string]bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# sidecarkit initnet: %s rules\n", rs.Family)
	var h map[string]map[string]bool
	if len(have) > 0 {
		h = have[0]
	}
	for _, t := range TablesOf(rs) {
		planTable(&b, rs, t, save, comments, mark, h)
	}
	return b.String()
}

func planTable(b *strings.Builder, rs RuleSet, t Table, save string, comments, mark bool, have map[string]map[string]bool) {
	cur := parseSave(save, t.String())
	if have != nil {
		chains, ok := have[t.String()]
		cur.present, cur.builtins = ok, chains
		if cur.builtins == nil {
			cur.builtins = map[string]bool{}
		}
	}
	fmt.Fprintf(b, "*%s\n", t)
	want := map[string]bool{}
	var chains []Chain
	for _, c := range rs.Chains {
		if c.Table == t {
			chains = append(chains, c)
		}
	}
	declare := func(name string) {
		want[name] = true
		fmt.Fprintf(b, ":%s - [0:0]\n", name)
	}
	for _, c := range chains {
		declare(IptablesChain(c.Name))
	}
	// Markers: kept from an earlier run, added for what this run creates.
	for _, c := range cur.ours {
		if strings.HasPrefix(c, MadePrefix) {
			declare(c)
		}
	}
	if mark {
		if !cur.present && !want[MadeTable] {
			declare(MadeTable)
		}
		for _, c := range chains {
			if c.Hook == HookNone {
				continue
			}
			m := MadePrefix + Builtin(c.Hook)
			if !cur.builtins[Builtin(c.Hook)] && !want[m] {
				declare(m)
			}
		}
	}
	var stale []string
	for _, c := range cur.ours {
		if !want[c] {
			stale = append(stale, c)
			fmt.Fprintf(b, ":%s - [0:0]\n", c)
		}
	}
	for _, c := range chains {
		for _, r := range c.Rules {
			if comments && r.Comment != "" {
				fmt.Fprintf(b, "# %s\n", r.Comment)
			}
			b.WriteString(IptablesRule(IptablesChain(c.Name), r))
			b.WriteByte('\n')
		}
	}
	for _, c := range chains {
		if c.Hook == HookNone {
			continue
		}
		j := jumpRule(c)
		switch n := cur.count[j]; {
		case n == 0:
			b.WriteString(j + "\n")
		case n > 1:
			for i := 1; i < n; i++ {
				b.WriteString("-D" + strings.TrimPrefix(j, "-A") + "\n")
			}
		}
	}
	// Jumps from built-in chains to chains that go away.
	for _, l := range cur.builtinJumps {
		for _, s := range stale {
			if strings.HasSuffix(l, " -j "+s) {
				b.WriteString("-D" + strings.TrimPrefix(l, "-A") + "\n")
			}
		}
	}
	for _, s := range stale {
		fmt.Fprintf(b, "-X %s\n", s)
	}
	b.WriteString("COMMIT\n")
}

// Made says what initnet's marker chains in one table record it created.
type Made struct {
	Table    string   // nat, raw, mangle
	Whole    bool     // the table itself
	Builtins []string // PREROUTING, OUTPUT
}

// PlanIptablesCleanup returns iptables-restore --noflush input that removes
// everything initnet added to the nat, raw and mangle tables shown by save
// (an iptables-save output of all tables) and nothing else, or "" when there
// is nothing of initnet's; and what the markers say initnet created (for
// the caller to remove once empty: iptables-restore cannot). skip names
// tables to leave alone (those an apply is about to fill).
func PlanIptablesCleanup(save string, skip ...Table) (string, []Made) {
	var b strings.Builder
	var made []Made
	for _, t := range Tables {
		if containsTable(skip, t) {
			continue
		}
		cur := parseSave(save, t.String())
		if len(cur.ours) == 0 && len(cur.builtinJumps) == 0 {
			continue
		}
		fmt.Fprintf(&b, "*%s\n", t)
		for _, l := range cur.builtinJumps {
			b.WriteString("-D" + strings.TrimPrefix(l, "-A") + "\n")
		}
		m := Made{Table: t.String()}
		for _, c := range cur.ours {
			fmt.Fprintf(&b, "-F %s\n", c)
			switch {
			case c == MadeTable:
				m.Whole = true
			case strings.HasPrefix(c, MadePrefix):
				m.Builtins = append(m.Builtins, strings.TrimPrefix(c, MadePrefix))
			}
		}
		for _, c := range cur.ours {
			fmt.Fprintf(&b, "-X %s\n", c)
		}
		b.WriteString("COMMIT\n")
		if m.Whole || len(m.Builtins) > 0 {
			made = append(made, m)
		}
	}
	return b.String(), made
}

func containsTable(ts []Table, t Table) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

// HasIptablesRules reports whether save (iptables-save output) holds any of
// initnet's chains in the tables it uses.
func HasIptablesRules(save string) bool {
	for _, t := range Tables {
		if len(parseSave(save, t.String()).ours) > 0 {
			return true
		}
	}
	return false
}

// OursIptables returns the lines of save that belong to initnet (its
// chains' rules and the jumps to them, markers excluded), table by table,
// for comparisons in tests and for the "installed" log line.
func OursIptables(save string) []string {
	var out []string
	for _, t := range Tables {
		for _, l := range tableLines(save, t.String()) {
			f := strings.Fields(l)
			if len(f) >= 2 && !strings.HasPrefix(f[0], ":") && (strings.HasPrefix(f[1], ChainPrefix) || strings.Contains(l, " -j "+ChainPrefix)) {
				out = append(out, l)
			}
		}
	}
	return out
}

type saveState struct {
	present      bool            // the table is in the save output
	builtins     map[string]bool // built-in chains present
	ours         []string        // initnet's chains, sorted
	count        map[string]int
	builtinJumps []string // rules in non-initnet chains that jump to initnet chains
}

func tableLines(save, table string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(save, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "*"):
			in = l == "*"+table
		case l == "COMMIT":
			in = false
		case in && l != "" && !strings.HasPrefix(l, "#"):
			out = append(out, l)
		}
	}
	return out
}

func parseSave(save, table string) saveState {
	st := saveState{count: map[string]int{}, builtins: map[string]bool{}}
	for _, l := range strings.Split(save, "\n") {
		if strings.TrimSpace(l) == "*"+table {
			st.present = true
		}
	}
	seen := map[string]bool{}
	for _, l := range tableLines(save, table) {
		if strings.HasPrefix(l, ":") {
			name := strings.Fields(l[1:])
			if len(name) > 1 && name[1] != "-" {
				st.builtins[name[0]] = true
			}
			if len(name) > 0 && strings.HasPrefix(name[0], ChainPrefix) && !seen[name[0]] {
				seen[name[0]] = true
				st.ours = append(st.ours, name[0])
			}
			continue
		}
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "-A" || strings.HasPrefix(f[1], "-") {
			continue
		}
		l = strings.Join(f, " ")
		st.count[l]++
		n := len(f)
		if !strings.HasPrefix(f[1], ChainPrefix) && n >= 4 && f[n-2] == "-j" && strings.HasPrefix(f[n-1], ChainPrefix) && len(f[n-1]) > len(ChainPrefix) {
			st.builtinJumps = append(st.builtinJumps, l)
		}
	}
	sort.Strings(st.ours)
	return st
}
