package nft_test

import (
	"strings"
	"testing"

	"github.com/sidecarkit/sidecarkit/initnet/nft"
	"github.com/sidecarkit/sidecarkit/initnet/rules"
)

// FuzzOptions drives the whole pure path with arbitrary option text: every
// accepted configuration must generate rules that both renderers print and
// that turn into nf_tables expressions; every refused one must name a key.
func FuzzOptions(f *testing.F) {
	f.Add("*", "8081", "*", "10.96.0.0/12,fd00::/8", "443", "5432", "eth1", "1337", "1337", true, true, "127.0.0.53,fd00::a", "REDIRECT", "*", "eth2")
	f.Add("8080,9090-9092", "", "10.0.0.0/8", "", "", "", "", "2000", "", true, false, "", "TPROXY", "1000,202", "")
	f.Add("", "", "*", "", "", "", "", "0", "x", false, false, "x", "tproxy", "", "eth1")
	f.Add("*", "", "127.1.2.3/32", "", "53", "53", "", "1337,3", "1337,4", true, true, "::ffff:1.2.3.4", "TPROXY", "*", "")
	f.Fuzz(func(t *testing.T, inPorts, inExcl, cidrs, exclCIDRs, outPorts, outExcl, ifaces, uid, gid string, dns, v6 bool,
		servers, mode, groups, kubeVirt string) {
		raw := rules.Raw{OutboundPort: 15001, InboundPort: 15006, TunnelPort: 15008, DNSPort: 15053, ProxyUID: uid, ProxyGID: gid,
			InboundPorts: []string{inPorts}, InboundExclude: []string{inExcl}, ProxyPorts: []string{"15000,15090"},
			OutboundCIDRs: []string{cidrs}, OutboundExclude: []string{exclCIDRs}, OutboundPorts: []string{outPorts},
			OutboundExcludePort: []string{outExcl}, ExcludeInterfaces: []string{ifaces}, IPv4: true, IPv6: v6, DNS: dns,
			DNSServers: strings.Split(servers, ","), CaptureAllDNS: servers == "", InterceptionMode: mode,
			TProxyMark: "1337", TProxyRouteTable: "133", OwnerGroups: groups, KubeVirtInterfaces: []string{kubeVirt}, DropInvalid: dns}
		o, ps := raw.Options(rules.DefaultKeys())
		if len(ps) > 0 {
			for _, p := range ps {
				if p.Key == "" || p.Why == "" {
					t.Fatalf("problem without key or reason: %#v", p)
				}
			}
			return
		}
		for _, rs := range rules.Generate(o) {
			_ = rules.RenderIptables(rs)
			txt := rules.RenderNftTable(rs, true)
			for _, ch := range rs.Chains {
				for _, r := range ch.Rules {
					if _, err := nft.Exprs(rs.Family, r); err != nil {
						t.Fatalf("rule %q: %v", rules.NftRule(rs.Family, r), err)
					}
					if r.Verdict.Kind == rules.Jump && !strings.Contains(txt, "chain "+r.Verdict.Chain+" {") {
						t.Fatalf("jump to missing chain %s", r.Verdict.Chain)
					}
				}
			}
		}
	})
}
