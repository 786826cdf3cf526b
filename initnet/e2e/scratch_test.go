package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// TestFromScratchImage runs initnet alone in a FROM-scratch container (no
// iptables, no nft, no shell) in a network namespace Docker makes
// (--network none): auto-detection picks nftables over netlink, and the
// validation probe proves the redirect inside the container.
func TestFromScratchImage(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireDocker(t)
	bins := build(t)
	ctx := t.TempDir()
	if err := os.Link(bins.initnet, filepath.Join(ctx, "initnet")); err != nil {
		sh(t, "cp", bins.initnet, filepath.Join(ctx, "initnet"))
	}
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte("FROM scratch\nCOPY initnet /initnet\nENTRYPOINT [\"/initnet\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tag := "sidecarkit-initnet-e2e:" + filepath.Base(ctx)
	tag = strings.ToLower(strings.ReplaceAll(tag, "_", "-"))
	sh(t, "docker", "build", "-q", "-t", tag, ctx)
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })

	out, err := exec.Command("docker", "run", "--rm", "--network", "none", "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW",
		tag, "--validate", "--log-format", "text").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "backend=nftables") || !strings.Contains(string(out), "validation passed") {
		t.Fatalf("initnet in a FROM-scratch container: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	// As the compose pod runs it: every capability dropped but NET_ADMIN and
	// NET_RAW, read-only root, no-new-privileges. Applying works; the probe
	// cannot act as the proxy's UID and says so.
	hardened := []string{"run", "--rm", "--network", "none", "--cap-drop", "ALL", "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW",
		"--read-only", "--security-opt", "no-new-privileges:true", "--user", "0:0", tag, "--log-format", "text",
		"--istio-inbound-ports=8080", "--istio-local-outbound-ports-exclude=8200,8500,9428"}
	out, err = exec.Command("docker", hardened...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "rules installed") {
		t.Fatalf("initnet with only NET_ADMIN+NET_RAW: %v\n%s", err, out)
	}
	out, err = exec.Command("docker", append(hardened, "--validate")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "needs CAP_SETUID") {
		t.Fatalf("--validate without CAP_SETUID: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	// Without NET_ADMIN it must fail clearly, not pretend.
	out, err = exec.Command("docker", "run", "--rm", "--network", "none", "--cap-drop", "NET_ADMIN", tag, "--log-format", "text").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no usable backend") {
		t.Fatalf("initnet without NET_ADMIN: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
