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
	"strings"
	"time"

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

// Save returns the family's nat table as iptables-save prints it.
func (b Backend) Save(f rules.Family) (string, error) {
	_, save := b.tools(f)
	return b.run("", save, "-t", "nat")
}

func (b Backend) restore(f rules.Family, input string) error {
	restore, _ := b.tools(f)
	if _, err := b.run(input, restore, "--noflush", "--wait"); err != nil {
		return fmt.Errorf("%w\ninput was:\n%s", err, input)
	}
	return nil
}

// Apply makes each family's nat table hold sets' rules in initnet's chains.
// A family not in sets loses initnet's chains from an earlier run, when its
// tools can read it (a host without IPv6 tables is left alone).
func (b Backend) Apply(sets []rules.RuleSet) error {
	have := map[rules.Family]bool{}
	for _, rs := range sets {
		have[rs.Family] = true
		save, err := b.Save(rs.Family)
		if err != nil {
			return err
		}
		if err := b.restore(rs.Family, rules.PlanIptablesApply(rs, save, false)); err != nil {
			return err
		}
	}
	for _, f := range []rules.Family{rules.IPv4, rules.IPv6} {
		if have[f] {
			continue
		}
		if save, err := b.Save(f); err == nil {
			if plan := rules.PlanIptablesCleanup(save); plan != "" {
				if err := b.restore(f, plan); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Installed reports whether any family's nat table holds initnet's chains.
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
// nat table, and reports whether there was anything to remove.
func (b Backend) Cleanup(fams ...rules.Family) (bool, error) {
	removed := false
	for _, f := range fams {
		save, err := b.Save(f)
		if err != nil {
			return removed, err
		}
		plan := rules.PlanIptablesCleanup(save)
		if plan == "" {
			continue
		}
		if err := b.restore(f, plan); err != nil {
			return removed, err
		}
		removed = true
	}
	return removed, nil
}
