package tproxyroute_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/sidecarkit/sidecarkit/initnet/internal/netnstest"
	"github.com/sidecarkit/sidecarkit/initnet/tproxyroute"
	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

func ip(t *testing.T, args ...string) string {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Errorf("ip %v: %v: %s", args, err, out)
	}
	return string(out)
}

// TestEnsureAndRemove: the rule and route appear once however often
// Ensure runs, and Remove takes away exactly them (someone else's rule
// and route, even with the same mark and table, stay).
func TestEnsureAndRemove(t *testing.T) {
	testenv.Tool(t, "ip", "iproute2")
	netnstest.Run(t, func() {
		ip(t, "link", "set", "lo", "up")
		ip(t, "rule", "add", "fwmark", "0x7", "lookup", "133")
		ip(t, "route", "add", "local", "10.9.0.0/16", "dev", "lo", "table", "133")
		before4, before6 := ip(t, "-4", "rule"), ip(t, "-6", "rule")
		beforeRoutes := ip(t, "route", "show", "table", "133")
		for i := 0; i < 2; i++ {
			if err := tproxyroute.Ensure(1337, 133, true); err != nil {
				t.Fatalf("ensure #%d: %v", i+1, err)
			}
		}
		for _, fam := range []string{"-4", "-6"} {
			rules := ip(t, fam, "rule")
			if strings.Count(rules, "fwmark 0x539 lookup 133 proto 92") != 1 {
				t.Errorf("%s rules:\n%s", fam, rules)
			}
			routes := ip(t, fam, "route", "show", "table", "133")
			if strings.Count(routes, "local default dev lo proto 92") != 1 {
				t.Errorf("%s routes in table 133:\n%s", fam, routes)
			}
		}
		removed, err := tproxyroute.Remove()
		if err != nil || !removed {
			t.Fatalf("remove: %v %v", removed, err)
		}
		if a4, a6 := ip(t, "-4", "rule"), ip(t, "-6", "rule"); a4 != before4 || a6 != before6 {
			t.Errorf("rules after remove:\n%s%s\nwant\n%s%s", a4, a6, before4, before6)
		}
		if r := ip(t, "route", "show", "table", "133"); r != beforeRoutes {
			t.Errorf("table 133 after remove:\n%s\nwant\n%s", r, beforeRoutes)
		}
		if removed, err := tproxyroute.Remove(); removed || err != nil {
			t.Errorf("second remove: %v %v", removed, err)
		}
	})
}
