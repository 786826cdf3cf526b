package e2e

import (
	"testing"

	"github.com/sidecarkit/sidecarkit/initnet/internal/netnstest"
	"github.com/sidecarkit/sidecarkit/initnet/iptables"
	"github.com/sidecarkit/sidecarkit/initnet/nft"
	"github.com/sidecarkit/sidecarkit/initnet/rules"
)

type applier interface {
	Apply([]rules.RuleSet) error
}

// BenchmarkApply compares the backends side by side on the default
// dual-stack rule set (what an init container pays at pod start), each
// re-applying into a private network namespace. Run as root:
//
//	go test -run XXX -bench Apply ./e2e/
func BenchmarkApply(b *testing.B) {
	raw := rules.Raw{OutboundPort: 15001, InboundPort: 15006, TunnelPort: 15008, ProxyUID: "1337", ProxyGID: "1337",
		InboundPorts: []string{"*"}, ProxyPorts: []string{"15000,15090"}, OutboundCIDRs: []string{"*"}, IPv4: true, IPv6: true}
	o, ps := raw.Options(rules.DefaultKeys())
	if len(ps) > 0 {
		b.Fatal(ps)
	}
	sets := rules.Generate(o)
	for _, bc := range []struct {
		name string
		a    applier
	}{
		{"nftables-netlink", nft.Backend{}},
		{"iptables-nft-restore", iptables.Backend{}},
		{"iptables-legacy-restore", iptables.Backend{Restore4: "iptables-legacy-restore", Save4: "iptables-legacy-save", Restore6: "ip6tables-legacy-restore", Save6: "ip6tables-legacy-save"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			netnstest.Run(b, func() {
				for i := 0; i < b.N; i++ {
					if err := bc.a.Apply(sets); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
