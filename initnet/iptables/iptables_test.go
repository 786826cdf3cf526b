package iptables_test

import (
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/sidecarkit/sidecarkit/initnet/internal/netnstest"
	"github.com/sidecarkit/sidecarkit/initnet/iptables"
	"github.com/sidecarkit/sidecarkit/initnet/rules"
	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

func options(t *testing.T) rules.Options { return optionsWith(t, nil) }

func tproxyOptions(t *testing.T) rules.Options {
	return optionsWith(t, func(r *rules.Raw) {
		r.InterceptionMode, r.TProxyMark, r.TProxyRouteTable = "TPROXY", "1337", "133"
		r.OwnerGroups = "1000,202"
	})
}

func optionsWith(t *testing.T, mut func(*rules.Raw)) rules.Options {
	r := rules.Raw{OutboundPort: 15001, InboundPort: 15006, TunnelPort: 15008, DNSPort: 15053, ProxyUID: "1337", ProxyGID: "1337",
		InboundPorts: []string{"*"}, InboundExclude: []string{"8081"},
		OutboundCIDRs: []string{"*"}, OutboundExclude: []string{"10.9.0.0/16", "fd00:9::/64"}, OutboundExcludePort: []string{"5432"},
		ExcludeInterfaces: []string{"eth9"}, KubeVirtInterfaces: []string{"eth8"}, IPv4: true, IPv6: true, DNS: true,
		DNSServers: []string{"127.0.0.53", "fd00::53"}, DropInvalid: true, ProxyPorts: []string{"15000"}}
	if mut != nil {
		mut(&r)
	}
	o, ps := r.Options(rules.DefaultKeys())
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	return o
}

// stable drops iptables-save's timestamp comments and counters.
func stable(save string) string {
	var out []string
	for _, l := range strings.Split(save, "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, ":") {
			if i := strings.LastIndex(l, " ["); i > 0 {
				l = l[:i]
			}
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func want(rs rules.RuleSet) []string {
	var out []string
	for _, l := range strings.Split(rules.PlanIptablesApply(rs, "", false), "\n") {
		if strings.HasPrefix(l, "-A") {
			out = append(out, l)
		}
	}
	return out
}

// TestBackends applies, re-applies and cleans up with the nft and the
// legacy variants of iptables-restore in a private network namespace.
func TestBackends(t *testing.T) {
	variants := map[string]iptables.Backend{
		"iptables-nft":    {},
		"iptables-legacy": {Restore4: "iptables-legacy-restore", Save4: "iptables-legacy-save", Restore6: "ip6tables-legacy-restore", Save6: "ip6tables-legacy-save"},
	}
	for name, b := range variants {
		t.Run(name, func(t *testing.T) {
			for _, tool := range []string{"iptables-restore", "iptables-legacy-restore"} {
				testenv.Tool(t, tool, "iptables")
			}
			netnstest.Run(t, func() {
				fams := []rules.Family{rules.IPv4, rules.IPv6}
				if err := b.Available(fams...); err != nil {
					t.Errorf("available: %v", err)
					return
				}
				// Someone else's rules, which must survive.
				seed := "*nat\n:KEEPME - [0:0]\n-A OUTPUT -p tcp -m tcp --dport 7 -j RETURN\n-A KEEPME -j RETURN\n-A PREROUTING -p udp -j KEEPME\nCOMMIT\n"
				for _, tool := range []string{or(b.Restore4, "iptables-restore"), or(b.Restore6, "ip6tables-restore")} {
					cmd := exec.Command(tool, "--noflush", "--wait")
					cmd.Stdin = strings.NewReader(seed)
					if out, err := cmd.CombinedOutput(); err != nil {
						t.Errorf("seed %s: %v: %s", tool, err, out)
						return
					}
				}
				before := map[rules.Family]string{}
				for _, f := range fams {
					s, _ := b.Save(f)
					before[f] = stable(s)
				}
				sets := rules.Generate(options(t))
				tsets := rules.Generate(tproxyOptions(t))
				for i := 0; i < 4; i++ {
					if i == 2 {
						sets = tsets // switching mode replaces the rules
					}
					if err := b.Apply(sets); err != nil {
						t.Errorf("apply #%d: %v", i+1, err)
						return
					}
					for _, rs := range sets {
						s, _ := b.Save(rs.Family)
						got, w := rules.OursIptables(s), want(rs)
						if byChain(got) != byChain(w) {
							t.Errorf("apply #%d %s: kernel holds\n%s\nwant\n%s", i+1, rs.Family, strings.Join(got, "\n"), strings.Join(w, "\n"))
						}
					}
				}
				removed, err := b.Cleanup(fams...)
				if err != nil || !removed {
					t.Errorf("cleanup: %v %v", removed, err)
				}
				for _, f := range fams {
					s, _ := b.Save(f)
					// iptables-legacy cannot unload a table from one namespace:
					// raw and mangle (loaded for DNS zones and drop-invalid)
					// stay, empty.
					if stable(dropEmptyTables(s)) != before[f] {
						t.Errorf("%s after cleanup:\n%s\nwant\n%s", f, stable(s), before[f])
					}
				}
				if removed, err := b.Cleanup(fams...); removed || err != nil {
					t.Errorf("second cleanup: %v %v", removed, err)
				}
			})
		})
	}
}

// dropEmptyTables removes table sections holding no rules and no user
// chains (what iptables-legacy leaves once loaded).
func dropEmptyTables(save string) string {
	var out, sec []string
	empty := true
	for _, l := range strings.Split(save, "\n") {
		switch {
		case strings.HasPrefix(l, "*"):
			sec, empty = []string{l}, true
		case l == "COMMIT" && sec != nil:
			sec = append(sec, l)
			if !empty {
				out = append(out, sec...)
			}
			sec = nil
		case sec != nil:
			sec = append(sec, l)
			if strings.HasPrefix(l, "-") || (strings.HasPrefix(l, ":") && strings.Contains(l, " - ")) {
				empty = false
			}
		default:
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestCleanupLeavesFreshNamespaceEmpty: into a namespace without any
// tables, apply (nat, raw and mangle rules) and clean up; iptables-nft must
// leave no table and no built-in chain behind (nft list ruleset is empty),
// iptables-legacy no chain and no rule (its loaded tables stay, empty: the
// kernel cannot unload them per namespace).
func TestCleanupLeavesFreshNamespaceEmpty(t *testing.T) {
	nftCLI := testenv.Tool(t, "nft", "nftables")
	variants := map[string]iptables.Backend{
		"iptables-nft":    {Restore4: "iptables-nft-restore", Save4: "iptables-nft-save", Restore6: "ip6tables-nft-restore", Save6: "ip6tables-nft-save"},
		"iptables-legacy": {Restore4: "iptables-legacy-restore", Save4: "iptables-legacy-save", Restore6: "ip6tables-legacy-restore", Save6: "ip6tables-legacy-save"},
	}
	for name, b := range variants {
		t.Run(name, func(t *testing.T) {
			testenv.Tool(t, b.Restore4, "iptables")
			netnstest.Run(t, func() {
				fams := []rules.Family{rules.IPv4, rules.IPv6}
				if err := b.Apply(rules.Generate(options(t))); err != nil {
					t.Errorf("apply: %v", err)
					return
				}
				if err := b.Apply(rules.Generate(tproxyOptions(t))); err != nil {
					t.Errorf("re-apply: %v", err)
					return
				}
				if _, err := b.Cleanup(fams...); err != nil {
					t.Errorf("cleanup: %v", err)
					return
				}
				out, err := exec.Command(nftCLI, "list", "ruleset").CombinedOutput()
				if err != nil || strings.TrimSpace(string(out)) != "" {
					t.Errorf("nft list ruleset after cleanup (%v):\n%s", err, out)
				}
				for _, f := range fams {
					s, _ := b.Save(f)
					if d := strings.TrimSpace(stable(dropEmptyTables(s))); d != "" {
						t.Errorf("%s after cleanup:\n%s", f, d)
					}
				}
			})
		})
	}
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// byChain groups rule lines by chain (keeping their order inside each
// chain, which is what matters) in a canonical form.
func byChain(lines []string) string {
	m := map[string][]string{}
	var names []string
	for _, l := range lines {
		c := strings.Fields(l)[1]
		if _, ok := m[c]; !ok {
			names = append(names, c)
		}
		m[c] = append(m[c], l)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(strings.Join(m[n], "\n") + "\n")
	}
	return b.String()
}

// TestLegacyReadsLoadNoTable: with iptables-legacy, reading a table by name
// loads it into the namespace for good. An IPv4-only apply, a check of
// both families and a cleanup of both must leave no IPv6 table loaded.
func TestLegacyReadsLoadNoTable(t *testing.T) {
	testenv.Tool(t, "ip6tables-legacy-restore", "iptables")
	b := iptables.Backend{Restore4: "iptables-legacy-restore", Save4: "iptables-legacy-save", Restore6: "ip6tables-legacy-restore", Save6: "ip6tables-legacy-save"}
	netnstest.Run(t, func() {
		loaded := func() string {
			out, err := exec.Command("cat", "/proc/net/ip6_tables_names").CombinedOutput()
			if err != nil {
				t.Errorf("ip6_tables_names: %v %s", err, out)
			}
			return strings.TrimSpace(string(out))
		}
		if l := loaded(); l != "" {
			t.Fatalf("fresh namespace has IPv6 tables loaded: %q", l)
		}
		o := optionsWith(t, func(r *rules.Raw) { r.IPv6 = false })
		fams := []rules.Family{rules.IPv4, rules.IPv6}
		if err := b.Available(fams...); err != nil {
			t.Errorf("available: %v", err)
		}
		if err := b.Apply(rules.Generate(o)); err != nil {
			t.Errorf("apply: %v", err)
		}
		if _, err := b.Installed(fams...); err != nil {
			t.Errorf("installed: %v", err)
		}
		if _, err := b.Cleanup(fams...); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if l := loaded(); l != "" {
			t.Errorf("initnet loaded IPv6 tables it never used: %q", l)
		}
	})
}
