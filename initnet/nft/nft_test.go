package nft_test

import (
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/initnet/internal/netnstest"
	"github.com/sidecarkit/sidecarkit/initnet/nft"
	"github.com/sidecarkit/sidecarkit/initnet/rules"
	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

func opts(t *testing.T, mut func(*rules.Raw)) rules.Options {
	r := rules.Raw{OutboundPort: 15001, InboundPort: 15006, TunnelPort: 15008, DNSPort: 15053, ProxyUID: "1337", ProxyGID: "1337",
		InboundPorts: []string{"*"}, InboundExclude: []string{"8081"},
		OutboundCIDRs: []string{"*"}, OutboundExclude: []string{"10.9.0.0/16", "fd00:9::/64", "192.0.2.7"}, OutboundExcludePort: []string{"5432"},
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

func nftList(t *testing.T, nftCLI string, args ...string) string {
	out, err := exec.Command(nftCLI, append([]string{"list"}, args...)...).CombinedOutput()
	if err != nil {
		t.Errorf("nft list %v: %v: %s", args, err, out)
	}
	return string(out)
}

// TestApplyMatchesRendered installs rule sets through netlink in a private
// network namespace and checks that `nft list` shows exactly what
// rules.RenderNft renders (the dry-run output), that a second apply changes
// nothing and that cleanup restores the ruleset as it was.
func TestApplyMatchesRendered(t *testing.T) {
	nftCLI := testenv.Tool(t, "nft", "nftables") // only to read the ruleset back
	cases := map[string]rules.Options{
		"full": opts(t, nil),
		"ports-ipv4": opts(t, func(r *rules.Raw) {
			r.InboundPorts = []string{"8080,9090"}
			r.IPv6 = false
			r.DNS = false
			r.ProxyGID = ""
		}),
		"capture-all-dns-multi-uid": opts(t, func(r *rules.Raw) {
			r.CaptureAllDNS = true
			r.ProxyUID, r.ProxyGID = "1337,3", "1337,4"
			r.OutboundCIDRs = []string{"127.1.2.3/32"}
			r.OwnerGroups = "1000,202"
		}),
		"tproxy": opts(t, func(r *rules.Raw) {
			r.InterceptionMode, r.TProxyMark, r.TProxyRouteTable = "TPROXY", "1337", "133"
		}),
		"tproxy-ports": opts(t, func(r *rules.Raw) {
			r.InterceptionMode, r.TProxyMark, r.TProxyRouteTable = "TPROXY", "1337", "133"
			r.InboundPorts = []string{"8080,9090"}
		}),
		"outbound-only": opts(t, func(r *rules.Raw) {
			r.InboundPorts = nil
			r.OutboundCIDRs = []string{"10.0.0.0/8", "fd00::/8"}
			r.OutboundPorts = []string{"443"}
		}),
	}
	for name, o := range cases {
		t.Run(name, func(t *testing.T) {
			netnstest.Run(t, func() {
				if out, err := exec.Command(nftCLI, "add table inet keepme; add chain inet keepme c { type filter hook input priority 0; }; add rule inet keepme c tcp dport 22 accept").CombinedOutput(); err != nil {
					t.Errorf("seed ruleset: %v: %s", err, out)
					return
				}
				before := nftList(t, nftCLI, "ruleset")
				b := nft.Backend{}
				sets := rules.Generate(o)
				for i := 0; i < 2; i++ {
					if err := b.Apply(sets); err != nil {
						t.Errorf("apply #%d: %v", i+1, err)
						return
					}
					for _, rs := range sets {
						got := nftList(t, nftCLI, "table", rules.NftFamily(rs.Family), rules.TableName)
						if want := rules.RenderNftTable(rs, false); got != want {
							t.Errorf("apply #%d %s: kernel holds\n%s\nrendered\n%s", i+1, rs.Family, got, want)
						}
					}
				}
				// Dropping a family removes its table.
				if err := b.Apply(sets[:1]); err != nil {
					t.Errorf("apply one family: %v", err)
					return
				}
				if len(sets) == 2 {
					if out := nftList(t, nftCLI, "tables"); strings.Contains(out, "ip6 "+rules.TableName) {
						t.Errorf("ip6 table left after applying ipv4 only:\n%s", out)
					}
				}
				if ok, err := b.Installed(); !ok || err != nil {
					t.Errorf("Installed = %v, %v", ok, err)
				}
				removed, err := b.Cleanup()
				if err != nil || !removed {
					t.Errorf("cleanup: %v, %v", removed, err)
				}
				if after := nftList(t, nftCLI, "ruleset"); after != before {
					t.Errorf("cleanup left\n%s\nwant\n%s", after, before)
				}
				if removed, err := b.Cleanup(); removed || err != nil {
					t.Errorf("second cleanup: %v, %v", removed, err)
				}
				if !strings.Contains(before, "keepme") {
					t.Errorf("seed table missing")
				}
			})
		})
	}
}

// TestDNSCapture: with --redirect-dns the app's UDP DNS goes to the DNS
// proxy port; other UDP is untouched.
func TestDNSCapture(t *testing.T) {
	netnstest.Run(t, func() {
		for _, c := range [][]string{
			{"ip", "link", "set", "lo", "up"},
			{"ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1"},
			{"ip", "link", "set", "d1", "up"},
			{"ip", "addr", "add", "192.0.2.2/24", "dev", "d0"},
			{"ip", "link", "set", "d0", "up"},
		} {
			if err := netnstest.Sh(c...); err != nil {
				t.Error(err)
				return
			}
		}
		o := opts(t, func(r *rules.Raw) { r.IPv6 = false; r.DNSServers = []string{"192.0.2.53"} })
		if err := (nft.Backend{}).Apply(rules.Generate(o)); err != nil {
			t.Error(err)
			return
		}
		dns, err := net.ListenPacket("udp4", "127.0.0.1:15053")
		if err != nil {
			t.Error(err)
			return
		}
		defer dns.Close()
		// Only the nameserver's port 53 is DNS capture's business.
		for _, dst := range []string{"192.0.2.53:53", "192.0.2.53:54", "192.0.2.54:53"} {
			c, err := net.Dial("udp4", dst)
			if err != nil {
				t.Error(err)
				return
			}
			c.Write([]byte("query to " + dst))
			c.Close()
		}
		dns.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 100)
		n, _, err := dns.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "query to 192.0.2.53:53" {
			t.Errorf("DNS proxy got %q, %v; want the port-53 query", buf[:n], err)
		}
		dns.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if n, _, err := dns.ReadFrom(buf); err == nil {
			t.Errorf("DNS proxy also got %q (not DNS)", buf[:n])
		}
	})
}
