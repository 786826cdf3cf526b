package lo6_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/sidecarkit/sidecarkit/initnet/internal/netnstest"
	"github.com/sidecarkit/sidecarkit/initnet/lo6"
)

func addrs(t *testing.T) string {
	out, err := exec.Command("ip", "-6", "addr", "show", "dev", "lo").CombinedOutput()
	if err != nil {
		t.Errorf("ip addr: %v %s", err, out)
	}
	return string(out)
}

func TestEnsureRemove(t *testing.T) {
	netnstest.Run(t, func() {
		if err := netnstest.Sh("ip", "link", "set", "lo", "up"); err != nil {
			t.Error(err)
			return
		}
		before := addrs(t)
		if added, err := lo6.Ensure(); !added || err != nil {
			t.Errorf("Ensure: %v %v", added, err)
		}
		if !strings.Contains(addrs(t), "inet6 ::6/128") {
			t.Errorf("::6 not on lo:\n%s", addrs(t))
		}
		if added, err := lo6.Ensure(); added || err != nil {
			t.Errorf("second Ensure: %v %v", added, err)
		}
		if removed, err := lo6.Remove(); !removed || err != nil {
			t.Errorf("Remove: %v %v", removed, err)
		}
		if after := addrs(t); after != before {
			t.Errorf("after Remove:\n%s\nwant\n%s", after, before)
		}
		// Someone else's ::6 is left alone.
		if err := netnstest.Sh("ip", "-6", "addr", "add", "::6/128", "dev", "lo"); err != nil {
			t.Error(err)
			return
		}
		if added, err := lo6.Ensure(); added || err != nil {
			t.Errorf("Ensure over a foreign ::6: %v %v", added, err)
		}
		if removed, err := lo6.Remove(); removed || err != nil || !strings.Contains(addrs(t), "::6/128") {
			t.Errorf("Remove of a foreign ::6: %v %v\n%s", removed, err, addrs(t))
		}
	})
}
