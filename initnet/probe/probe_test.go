package probe_test

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/initnet/internal/netnstest"
	"github.com/sidecarkit/sidecarkit/initnet/nft"
	"github.com/sidecarkit/sidecarkit/initnet/probe"
	"github.com/sidecarkit/sidecarkit/initnet/rules"
)

// TestProbe runs the validation probe in a private network namespace,
// without rules (it must fail, saying so) and with initnet's rules (it must
// land on the listener with the probe address as original destination).
func TestProbe(t *testing.T) {
	netnstest.Run(t, func() {
		cfg := probe.Config{ListenPort: 15006, Target: netip.MustParseAddrPort("127.0.0.6:15002"), UID: 1337, GID: 1337, Timeout: 2 * time.Second}
		if err := netnstest.Sh("ip", "link", "set", "lo", "up"); err != nil {
			t.Error(err)
			return
		}
		_, err := probe.Run(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "not redirected") {
			t.Errorf("probe without rules: %v, want a 'not redirected' error", err)
		}
		raw := rules.Raw{OutboundPort: 15001, InboundPort: 15006, TunnelPort: 15008, ProxyUID: "1337", ProxyGID: "1337", InboundPorts: []string{"*"}, OutboundCIDRs: []string{"*"}, IPv4: true}
		o, ps := raw.Options(rules.DefaultKeys())
		if len(ps) > 0 {
			t.Error(ps)
			return
		}
		if err := (nft.Backend{}).Apply(rules.Generate(o)); err != nil {
			t.Error(err)
			return
		}
		res, err := probe.Run(context.Background(), cfg)
		if err != nil || !res.Landed || res.OriginalDst != cfg.Target {
			t.Errorf("probe with rules: %+v, %v", res, err)
		}
		// As another UID the probe is not the proxy: its loopback traffic is
		// not captured, so it must fail.
		cfg.UID, cfg.GID = 4242, 4242
		if _, err := probe.Run(context.Background(), cfg); err == nil {
			t.Errorf("probe as uid 4242 was redirected")
		}
	})
}
