package manifests

import (
	"os/exec"
	"testing"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// TestAlertRules checks monitoring/alerts.rules.yml with Prometheus's own
// promtool (Debian's prometheus package) and runs its unit tests
// (monitoring/alerts_test.yml): each alert fires on its input series and
// stays quiet before its `for`.
func TestAlertRules(t *testing.T) {
	promtool := testenv.Tool(t, "promtool", "prometheus")
	for _, args := range [][]string{{"check", "rules", "alerts.rules.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "monitoring"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
