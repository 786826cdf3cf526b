package rules

import (
	"fmt"
	"sort"
	"strings"
)

// ChainPrefix starts the name of every iptables chain initnet owns.
const ChainPrefix = "SIDECARKIT_"

// IptablesChain is the iptables name of chain name.
func IptablesChain(name string) string { return ChainPrefix + strings.ToUpper(name) }

func builtin(h Hook) string {
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
	return fmt.Sprintf("-A %s -j %s", builtin(c.Hook), IptablesChain(c.Name))
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
		if r.DPort != 0 {
			fmt.Fprintf(&b, " -m %s --dport %d", r.Proto, r.DPort)
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
	switch r.Verdict.Kind {
	case Return:
		b.WriteString(" -j RETURN")
	case Jump:
		fmt.Fprintf(&b, " -j %s", IptablesChain(r.Verdict.Chain))
	case Redirect:
		fmt.Fprintf(&b, " -j REDIRECT --to-ports %d", r.Verdict.Port)
	}
	return b.String()
}

// RenderIptables renders rs as a complete iptables-restore input for the
// nat table, with comment lines saying why each loop-breaker exists. It is
// what --dry-run prints; the apply plan is PlanIptablesApply.
func RenderIptables(rs RuleSet) string {
	return PlanIptablesApply(rs, "", true)
}

// PlanIptablesApply returns iptables-restore --noflush input that makes the
// nat table hold exactly rs for initnet's chains, given the current
// iptables-save output: initnet's chains are declared (which flushes them),
// filled, the jumps from the built-in chains added only when missing, and
// chains initnet made earlier but no longer needs removed. Running it twice
// leaves the same rules.
func PlanIptablesApply(rs RuleSet, save string, comments bool) string {
	cur := parseSave(save)
	var b strings.Builder
	fmt.Fprintf(&b, "# sidecarkit initnet: %s nat rules\n*nat\n", rs.Family)
	want := map[string]bool{}
	for _, c := range rs.Chains {
		want[IptablesChain(c.Name)] = true
		fmt.Fprintf(&b, ":%s - [0:0]\n", IptablesChain(c.Name))
	}
	var stale []string
	for _, c := range cur.ours {
		if !want[c] {
			stale = append(stale, c)
			fmt.Fprintf(&b, ":%s - [0:0]\n", c)
		}
	}
	for _, c := range rs.Chains {
		for _, r := range c.Rules {
			if comments && r.Comment != "" {
				fmt.Fprintf(&b, "# %s\n", r.Comment)
			}
			b.WriteString(IptablesRule(IptablesChain(c.Name), r))
			b.WriteByte('\n')
		}
	}
	for _, c := range rs.Chains {
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
		fmt.Fprintf(&b, "-X %s\n", s)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// PlanIptablesCleanup returns iptables-restore --noflush input that removes
// everything initnet added to the nat table shown by save (an iptables-save
// output) and nothing else, or "" when there is nothing of initnet's.
func PlanIptablesCleanup(save string) string {
	cur := parseSave(save)
	if len(cur.ours) == 0 && len(cur.builtinJumps) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("*nat\n")
	for _, l := range cur.builtinJumps {
		b.WriteString("-D" + strings.TrimPrefix(l, "-A") + "\n")
	}
	for _, c := range cur.ours {
		fmt.Fprintf(&b, "-F %s\n", c)
	}
	for _, c := range cur.ours {
		fmt.Fprintf(&b, "-X %s\n", c)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// HasIptablesRules reports whether save (iptables-save output) holds any of
// initnet's chains.
func HasIptablesRules(save string) bool { return len(parseSave(save).ours) > 0 }

// OursIptables returns the nat-table lines of save that belong to initnet
// (its chains' rules and the jumps to them), for comparisons in tests and
// for the "installed" log line.
func OursIptables(save string) []string {
	var out []string
	for _, l := range natLines(save) {
		f := strings.Fields(l)
		if len(f) >= 2 && (strings.HasPrefix(f[1], ChainPrefix) || strings.Contains(l, " -j "+ChainPrefix)) {
			out = append(out, l)
		}
	}
	return out
}

type saveState struct {
	ours         []string // initnet's chains, sorted
	count        map[string]int
	builtinJumps []string // rules in non-initnet chains that jump to initnet chains
}

func natLines(save string) []string {
	var out []string
	inNat := false
	for _, l := range strings.Split(save, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "*"):
			inNat = l == "*nat"
		case l == "COMMIT":
			inNat = false
		case inNat && l != "" && !strings.HasPrefix(l, "#"):
			out = append(out, l)
		}
	}
	return out
}

func parseSave(save string) saveState {
	st := saveState{count: map[string]int{}}
	seen := map[string]bool{}
	for _, l := range natLines(save) {
		if strings.HasPrefix(l, ":") {
			name := strings.Fields(l[1:])
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
