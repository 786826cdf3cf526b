package initnet

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/sidecarkit/sidecarkit/initnet/rules"
)

// memBackend is an in-memory backend: it holds what was applied.
type memBackend struct {
	name     string
	availErr error
	applyErr error
	sets     []rules.RuleSet
	cleaned  int
}

func (m *memBackend) Name() string     { return m.name }
func (m *memBackend) Available() error { return m.availErr }
func (m *memBackend) Apply(s []rules.RuleSet) error {
	if m.applyErr != nil {
		return m.applyErr
	}
	m.sets = s
	return nil
}
func (m *memBackend) Installed() (bool, error) { return m.sets != nil, m.availErr }
func (m *memBackend) Cleanup() (bool, error) {
	had := m.sets != nil
	m.sets = nil
	m.cleaned++
	return had, nil
}

func testOptions(t *testing.T) (rules.Options, []rules.RuleSet) {
	raw := rules.Raw{OutboundPort: 15001, InboundPort: 15006, TunnelPort: 15008, ProxyUID: "1337", InboundPorts: []string{"*"}, OutboundCIDRs: []string{"*"}, IPv4: true}
	o, ps := raw.Options(rules.DefaultKeys())
	if len(ps) > 0 {
		t.Fatal(ps)
	}
	return o, rules.Generate(o)
}

func TestAutoBackend(t *testing.T) {
	o, sets := testOptions(t)
	denied := errors.New("operation not permitted")
	cases := []struct {
		name              string
		nft, ipt          *memBackend
		want, wantErr, in string
	}{
		{"nftables when netlink works", &memBackend{name: "nftables"}, &memBackend{name: "iptables"}, "nftables", "", "nf_tables netlink available"},
		{"iptables keeps its rules", &memBackend{name: "nftables"}, &memBackend{name: "iptables", sets: sets}, "iptables", "", "already in iptables"},
		{"iptables when no netlink", &memBackend{name: "nftables", availErr: denied}, &memBackend{name: "iptables"}, "iptables", "", "nf_tables unavailable"},
		{"neither", &memBackend{name: "nftables", availErr: denied}, &memBackend{name: "iptables", availErr: errors.New("iptables-restore not found")}, "", "no usable backend: operation not permitted; iptables-restore not found", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			err := apply(slog.New(slog.NewTextHandler(&logs, nil)), "auto", c.nft, c.ipt, o, sets)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			chosen, other := c.nft, c.ipt
			if c.want == "iptables" {
				chosen, other = c.ipt, c.nft
			}
			if chosen.sets == nil || other.sets != nil {
				t.Errorf("rules in %s: %v, in the other: %v", c.want, chosen.sets != nil, other.sets != nil)
			}
			if !strings.Contains(logs.String(), "backend="+c.want) || !strings.Contains(logs.String(), c.in) {
				t.Errorf("log: %s", logs.String())
			}
		})
	}
}

func TestSwitchingBackendLeavesOneSet(t *testing.T) {
	o, sets := testOptions(t)
	nb, ib := &memBackend{name: "nftables"}, &memBackend{name: "iptables", sets: sets}
	if err := apply(slog.New(slog.DiscardHandler), "nftables", nb, ib, o, sets); err != nil {
		t.Fatal(err)
	}
	if nb.sets == nil || ib.sets != nil {
		t.Errorf("after --backend nftables: nft %v, iptables %v", nb.sets != nil, ib.sets != nil)
	}
	// A failing apply reports the backend and leaves the other alone.
	nb2, ib2 := &memBackend{name: "nftables", applyErr: errors.New("EINVAL")}, &memBackend{name: "iptables", sets: sets}
	err := apply(slog.New(slog.DiscardHandler), "nftables", nb2, ib2, o, sets)
	if err == nil || !strings.Contains(err.Error(), "install rules with nftables: EINVAL") || ib2.sets == nil {
		t.Errorf("failed apply: %v (iptables rules kept: %v)", err, ib2.sets != nil)
	}
}

func TestCleanupAuto(t *testing.T) {
	_, sets := testOptions(t)
	nb, ib := &memBackend{name: "nftables", sets: sets}, &memBackend{name: "iptables", availErr: errors.New("no tools")}
	if err := cleanup(slog.New(slog.DiscardHandler), "auto", nb, ib); err != nil || nb.sets != nil || ib.cleaned != 0 {
		t.Errorf("auto cleanup: %v, nft left %v, iptables cleaned %d", err, nb.sets != nil, ib.cleaned)
	}
	nb.availErr = errors.New("denied")
	if err := cleanup(slog.New(slog.DiscardHandler), "auto", nb, ib); err == nil || !strings.Contains(err.Error(), "denied; no tools") {
		t.Errorf("cleanup with nothing usable: %v", err)
	}
}
