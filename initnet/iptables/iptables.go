// Package iptables installs initnet's rule sets with iptables-restore and
// ip6tables-restore (legacy or nft variants, whichever the binaries are),
// for hosts where nf_tables netlink is not an option. It reads the current
// nat table with *-save and feeds rules.PlanIptablesApply /
// PlanIptablesCleanup, so re-runs and cleanup touch only initnet's chains.
package iptables

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/google/nftables"

	"github.com/sidecarkit/sidecarkit/initnet/rules"
)

// Backend runs the iptables tools. Empty fields mean the usual names on PATH.
type Backend struct {
	Restore4, Restore6 string // iptables-restore, ip6tables-restore
	Save4, Save6       string // iptables-save, ip6tables-save
	Timeout            time.Duration
}

// Name is the backend's name for flags and logs.
func (Backend) Name() string { return "iptables" }

func (b Backend) tools(f rules.Family) (restore, save string) {
	if f == rules.IPv6 {
		return or(b.Restore6, "ip6tables-restore"), or(b.Save6, "ip6tables-save")
	}
	return or(b.Restore4, "iptables-restore"), or(b.Save4, "iptables-save")
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Available reports whether the tools for the families exist and can read
// the nat table.
func (b Backend) Available(fams ...rules.Family) error {
	for _, f := range fams {
		restore, save := b.tools(f)
		for _, tool := range []string{restore, save} {
			if _, err := exec.LookPath(tool); err != nil {
				return fmt.Errorf("iptables: %s not found: %w", tool, err)
			}
		}
		if _, err := b.Save(f); err != nil {
			return err
		}
	}
	return nil
}

func (b Backend) run(stdin string, name string, args ...string) (string, error) {
	timeout := b.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Save returns the family's tables as iptables-save prints them. It reads
// every table without naming one: with iptables-legacy, naming a table
// (-t nat) loads it into the namespace for good, which a read must not do.
func (b Backend) Save(f rules.Family) (string, error) {
	_, save := b.tools(f)
	return b.run("", save)
}

func (b Backend) restore(f rules.Family, input string) error {
	restore, _ := b.tools(f)
	if _, err := b.run(input, restore, "--noflush", "--wait"); err != nil {
		return fmt.Errorf("%w\ninput was:\n%s", err, input)
	}
	return nil
}

// nftVariant reports whether the family's restore tool is iptables-nft
// (its --version says "nf_tables"), whose built-in chains and tables exist
// only once used and so are initnet's to remove again.
func (b Backend) nftVariant(f rules.Family) bool {
	restore, _ := b.tools(f)
	out, err := b.run("", restore, "--version")
	return err == nil && strings.Contains(out, "nf_tables")
}

// cleanupTables removes initnet's chains from the family's tables but skip,
// then, for iptables-nft, the built-in chains and tables initnet's markers
// say it created, when nothing else is left in them.
func (b Backend) cleanupTables(f rules.Family, save string, skip ...rules.Table) (bool, error) {
	plan, made := rules.PlanIptablesCleanup(save, skip...)
	if plan == "" {
		return false, nil
	}
	if err := b.restore(f, plan); err != nil {
		return false, err
	}
	if len(made) > 0 && b.nftVariant(f) {
		if err := removeMade(f, made); err != nil {
			return true, err
		}
	}
	return true, nil
}

// nftChains returns the family's nf_tables tables and their chains (what
// iptables-nft really holds).
func nftChains(f rules.Family) (map[string]map[string]bool, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("iptables-nft: open netlink: %w", err)
	}
	fam := nftables.TableFamilyIPv4
	if f == rules.IPv6 {
		fam = nftables.TableFamilyIPv6
	}
	ts, err := c.ListTablesOfFamily(fam)
	if err != nil {
		return nil, fmt.Errorf("iptables-nft: list tables: %w", err)
	}
	out := map[string]map[string]bool{}
	for _, t := range ts {
		out[t.Name] = map[string]bool{}
	}
	chains, err := c.ListChainsOfTableFamily(fam)
	if err != nil {
		return nil, fmt.Errorf("iptables-nft: list chains: %w", err)
	}
	for _, ch := range chains {
		if m, ok := out[ch.Table.Name]; ok {
			m[ch.Name] = true
		}
	}
	return out, nil
}

// removeMade deletes, over nf_tables netlink, the empty built-in chains and
// tables iptables-nft created for initnet (iptables-restore cannot delete a
// table, and leaves built-in chains behind).
func removeMade(f rules.Family, made []rules.Made) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("iptables-nft cleanup: open netlink: %w", err)
	}
	fam := nftables.TableFamilyIPv4
	if f == rules.IPv6 {
		fam = nftables.TableFamilyIPv6
	}
	for _, m := range made {
		t, err := c.ListTableOfFamily(m.Table, fam)
		if err != nil {
			continue // gone already
		}
		chains, err := c.ListChainsOfTableFamily(fam)
		if err != nil {
			return fmt.Errorf("iptables-nft cleanup: list chains: %w", err)
		}
		left := 0
		for _, ch := range chains {
			if ch.Table.Name != t.Name {
				continue
			}
			left++
			if !slices.Contains(m.Builtins, ch.Name) {
				continue
			}
			rs, err := c.GetRules(t, ch)
			if err != nil {
				return fmt.Errorf("iptables-nft cleanup: list rules of %s: %w", ch.Name, err)
			}
			if len(rs) == 0 {
				c.DelChain(ch)
				left--
			}
		}
		if m.Whole && left == 0 {
			c.DelTable(t)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("iptables-nft cleanup: delete empty built-in chains: %w", err)
	}
	return nil
}

// Apply makes each family's tables hold sets' rules in initnet's chains.
// Tables and families not in sets lose initnet's chains from an earlier run
// (a family only when its tools can read it: a host without IPv6 tables is
// left alone).
func (b Backend) Apply(sets []rules.RuleSet) error {
	have := map[rules.Family]bool{}
	for _, rs := range sets {
		have[rs.Family] = true
		save, err := b.Save(rs.Family)
		if err != nil {
			return err
		}
		var have map[string]map[string]bool
		if b.nftVariant(rs.Family) {
			if have, err = nftChains(rs.Family); err != nil {
				return err
			}
		}
		if err := b.restore(rs.Family, rules.PlanIptablesApplyMarked(rs, save, have)); err != nil {
			return err
		}
		if _, err := b.cleanupTables(rs.Family, save, rules.TablesOf(rs)...); err != nil {
			return err
		}
	}
	for _, f := range []rules.Family{rules.IPv4, rules.IPv6} {
		if have[f] {
			continue
		}
		if save, err := b.Save(f); err == nil {
			if _, err := b.cleanupTables(f, save); err != nil {
				return err
			}
		}
	}
	return nil
}

// Installed reports whether any family's tables hold initnet's chains.
func (b Backend) Installed(fams ...rules.Family) (bool, error) {
	for _, f := range fams {
		save, err := b.Save(f)
		if err != nil {
			return false, err
		}
		if rules.HasIptablesRules(save) {
			return true, nil
		}
	}
	return false, nil
}

// Cleanup removes initnet's chains and the jumps to them from each family's
// tables (and what iptables-nft created for them), and reports whether
// there was anything to remove.
func (b Backend) Cleanup(fams ...rules.Family) (bool, error) {
	removed := false
	for _, f := range fams {
		save, err := b.Save(f)
		if err != nil {
			return removed, err
		}
		r, err := b.cleanupTables(f, save)
		removed = removed || r
		if err != nil {
			return removed, err
		}
	}
	return removed, nil
}
