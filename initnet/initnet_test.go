package initnet

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), Env{Args: args, Environ: env, Stdout: &out, Stderr: &errb, IPv6Enabled: func() bool { return true }})
	return code, out.String(), errb.String()
}

func TestExpandAliases(t *testing.T) {
	known := func(n string) bool {
		return map[string]bool{"dry-run": true, "ipv6": true, "istio-inbound-ports": true, "proxy-uid": true}[n]
	}
	cases := []struct{ in, want string }{
		{"-p 15001", "--envoy-port 15001"},
		{"-p=15001 -z=15006", "--envoy-port=15001 --inbound-capture-port=15006"},
		{"-p15001", "--envoy-port=15001"},
		{"-b * -d 8081,8082", "--istio-inbound-ports * --istio-local-exclude-ports 8081,8082"},
		{"-dry-run --dry-run", "-dry-run --dry-run"},
		{"--run-validation", "--validate"},
		{"-u 1337 -g 1337 -m REDIRECT", "--proxy-uid 1337 --proxy-gid 1337 --istio-inbound-interception-mode REDIRECT"},
		{"-i 10.0.0.0/8 -x 10.96.0.0/12 -q 443 -o 5432 -c eth1", "--istio-service-cidr 10.0.0.0/8 --istio-service-exclude-cidr 10.96.0.0/12 --istio-outbound-ports 443 --istio-local-outbound-ports-exclude 5432 --istio-exclude-interfaces eth1"},
		{"validate -p 1", "validate --envoy-port 1"},
		{"-- -p 1", "-- -p 1"},
		{"--ipv6=false -", "--ipv6=false -"},
		{"-dryrun -b*", "-dryrun --istio-inbound-ports=*"},
	}
	for _, c := range cases {
		got := strings.Join(ExpandAliases(strings.Fields(c.in), known), " ")
		if got != c.want {
			t.Errorf("ExpandAliases(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzExpandAliases(f *testing.F) {
	for _, s := range []string{"-p 15001", "-p15001", "--run-validation", "-dry-run", "-- -p", "-=", "--=x", "-b=*"} {
		f.Add(s)
	}
	known := func(n string) bool { return n == "dry-run" }
	f.Fuzz(func(t *testing.T, s string) {
		in := strings.Fields(s)
		out := ExpandAliases(in, known)
		if len(out) != len(in) {
			t.Fatalf("ExpandAliases changed the number of arguments: %q → %q", in, out)
		}
		for i := range in {
			if !strings.HasPrefix(in[i], "-") && out[i] != in[i] {
				t.Fatalf("rewrote a non-flag %q → %q", in[i], out[i])
			}
		}
	})
}

func TestValidateSubcommandReportsEveryProblem(t *testing.T) {
	code, _, stderr := run(t, []string{"INITNET_ISTIO_SERVICE_EXCLUDE_CIDR=10.0.0.1/8"},
		"validate", "-p", "0", "-b", "80,abc", "--backend", "ebpf", "--ipv6", "maybe", "--dry-run", "--cleanup")
	if code != ExitConfig {
		t.Fatalf("exit %d, want %d", code, ExitConfig)
	}
	for _, want := range []string{
		`envoy-port "0": not a port`,
		`istio-inbound-ports "80,abc": bad port "abc"`,
		`istio-service-exclude-cidr "10.0.0.1/8": bad CIDR "10.0.0.1/8" (host bits set; did you mean 10.0.0.0/8?)`,
		`backend "ebpf": want nftables, iptables or auto`,
		`ipv6 "maybe"`,
		`pick one`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if code, out, _ := run(t, nil, "validate", "-p", "15001"); code != 0 || !strings.Contains(out, "valid") {
		t.Errorf("good config: exit %d %q", code, out)
	}
	if code, _, stderr := run(t, nil, "--nope"); code != ExitConfig || !strings.Contains(stderr, "nope") {
		t.Errorf("unknown flag: exit %d %q", code, stderr)
	}
	if code, _, _ := run(t, nil, "wait"); code != ExitConfig {
		t.Errorf("wait: exit %d", code)
	}
}

func TestVersionAndHelp(t *testing.T) {
	if code, out, _ := run(t, nil, "--version"); code != 0 || !strings.Contains(out, "initnet") {
		t.Errorf("--version: %d %q", code, out)
	}
	code, out, _ := run(t, nil, "--help")
	if code != 0 || !strings.Contains(out, "--envoy-port (env INITNET_ENVOY_PORT)") || !strings.Contains(out, "(-p)") {
		t.Errorf("--help: %d\n%s", code, out)
	}
}

// TestDryRunNeedsNoPrivilegeAndKeepsStdoutClean: the dry run prints only
// the ruleset on stdout (no log lines), for both backends.
func TestDryRun(t *testing.T) {
	code, out, _ := run(t, nil, "--dry-run", "--backend", "nftables", "-b", "8080", "-d", "", "--ipv6", "false")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.HasPrefix(out, "# sidecarkit initnet: nftables ruleset (families ipv4)\ntable ip sidecarkit {") || strings.Contains(out, `"level"`) || strings.Contains(out, "ip6") {
		t.Errorf("nftables dry run:\n%s", out)
	}
	code, out, _ = run(t, []string{"INITNET_BACKEND=iptables"}, "--dry-run", "-b", "8080")
	if code != 0 || !strings.Contains(out, "-A SIDECARKIT_INBOUND -p tcp -m tcp --dport 8080 -j SIDECARKIT_IN_REDIRECT") || !strings.Contains(out, "# sidecarkit initnet: ipv6 rules") {
		t.Errorf("iptables dry run (exit %d):\n%s", code, out)
	}
}

func TestYAMLConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("istio-inbound-ports: [8080, 9090]\nistio-service-exclude-cidr: [10.96.0.0/12, 'fd00::/8']\nbackend: iptables\nipv6: false\n"), 0o644)
	code, out, stderr := run(t, nil, "--config", good, "--dry-run", "-b", "7070")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// The flag wins over the file; the file's other keys apply.
	if !strings.Contains(out, "--dport 7070 -j SIDECARKIT_IN_REDIRECT") || strings.Contains(out, "--dport 8080") ||
		!strings.Contains(out, "-d 10.96.0.0/12 -j RETURN") || strings.Contains(out, "ipv6") {
		t.Errorf("dry run from YAML:\n%s", out)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("istio-inbound-port: 8080\nenvoy-port: lots\n"), 0o644)
	code, _, stderr = run(t, nil, "validate", "--config", bad)
	if code != ExitConfig || !strings.Contains(stderr, `key "istio-inbound-port": unknown key`) || !strings.Contains(stderr, `key "envoy-port": not a whole number`) {
		t.Errorf("bad YAML: exit %d\n%s", code, stderr)
	}
}

// TestIstioMode: `initnet istio-iptables …` takes istio-iptables' defaults
// (nothing captured unless asked, no proxy ports, GID = UID) and its
// environment variables, with its precedence (flag > extra env > env).
func TestIstioMode(t *testing.T) {
	dry := []string{"istio-iptables", "-n", "--backend", "iptables", "--ipv6", "false"}
	code, out, stderr := run(t, nil, append(dry, "-p", "15001", "-z", "15006", "-u", "1337")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, absent := range []string{"SIDECARKIT_INBOUND", "-A SIDECARKIT_OUTBOUND -j SIDECARKIT_OUT_REDIRECT", "--dport 15090", "*raw"} {
		if strings.Contains(out, absent) {
			t.Errorf("istio-init argv installs %q:\n%s", absent, out)
		}
	}
	for _, want := range []string{"--gid-owner 1337 -j RETURN", "! --dport 15008 -m owner --uid-owner 1337 -j SIDECARKIT_IN_REDIRECT"} {
		if !strings.Contains(out, want) {
			t.Errorf("istio-init argv lacks %q:\n%s", want, out)
		}
	}
	dir := t.TempDir()
	resolv := filepath.Join(dir, "resolv.conf")
	os.WriteFile(resolv, []byte("nameserver 10.96.0.10\n"), 0o644)
	env := []string{"ISTIO_INBOUND_PORTS=*", "ISTIO_LOCAL_EXCLUDE_PORTS=15020,15021", "ISTIO_SERVICE_CIDR=10.0.0.0/8",
		"REDIRECT_DNS=false", "ISTIO_META_DNS_CAPTURE=true", "INVALID_DROP=true", "PROXY_UID=1500", "KUBE_VIRT_INTERFACES=eth7",
		"INITNET_RESOLV_CONF=" + resolv}
	code, out, stderr = run(t, env, dry...)
	if code != 0 {
		t.Fatalf("env: exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"-A SIDECARKIT_INBOUND -p tcp -m tcp --dport 15021 -j RETURN",
		"-A SIDECARKIT_OUTBOUND -d 10.0.0.0/8 -j SIDECARKIT_OUT_REDIRECT",
		"-d 10.96.0.10/32 -p udp -m udp --dport 53 -j REDIRECT --to-ports 15053",
		"-m conntrack --ctstate INVALID -j DROP",
		"--uid-owner 1500 -j RETURN", "--gid-owner 1500 -j RETURN",
		"-A SIDECARKIT_PREROUTING -d 10.0.0.0/8 -i eth7 -j SIDECARKIT_OUT_REDIRECT",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Istio env: output lacks %q:\n%s", want, out)
		}
	}
	// A flag beats the environment.
	if _, out, _ = run(t, env, append(dry, "-b", "8080")...); strings.Contains(out, "15021") || !strings.Contains(out, "--dport 8080 -j SIDECARKIT_IN_REDIRECT") {
		t.Errorf("flag does not win over ISTIO_INBOUND_PORTS:\n%s", out)
	}
	// Bare initnet does not read Istio's variables.
	if _, out, _ = run(t, env, "-n", "--backend", "iptables", "--ipv6", "false"); strings.Contains(out, "--uid-owner 1500") {
		t.Errorf("bare initnet read PROXY_UID:\n%s", out)
	}
	// Owner-group capture, by GID or group name.
	if code, out, stderr = run(t, []string{"ISTIO_OUTBOUND_OWNER_GROUPS=1000,root"}, dry...); code != 0 || !strings.Contains(out, "-m owner ! --gid-owner 1000 -m owner ! --gid-owner 0 -j RETURN") {
		t.Errorf("owner groups: exit %d %s\n%s", code, stderr, out)
	}
	if code, _, stderr = run(t, []string{"ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE=no-such-group-x"}, dry...); code != ExitConfig || !strings.Contains(stderr, `group "no-such-group-x"`) {
		t.Errorf("unknown group: exit %d %s", code, stderr)
	}
}

// TestIstioInitArgv: the injected istio-init container's argv, logging
// flags included, runs unchanged after "initnet".
func TestIstioInitArgv(t *testing.T) {
	code, out, stderr := run(t, nil, "istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT",
		"-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:debug,ads:error", "--log_as_json", "-n", "--ipv6", "false", "--backend", "iptables")
	if code != 0 || !strings.Contains(out, "--dport 15021 -j RETURN") {
		t.Errorf("istio-init argv: exit %d\n%s\n%s", code, out, stderr)
	}
	// The level really reaches --log-level.
	if code, _, stderr := run(t, nil, "istio-iptables", "validate", "--log_output_level=default:loud"); code != ExitConfig || !strings.Contains(stderr, `log-level "loud"`) {
		t.Errorf("log level not mapped: exit %d %s", code, stderr)
	}
	if got := istioLogFlags([]string{"--log_output_level", "warning", "-p", "1"}); strings.Join(got, " ") != "--log-level=warn -p 1" {
		t.Errorf("istioLogFlags: %q", got)
	}
}

// TestIstioFlagAliases: istio-iptables' flags that initnet maps onto its own.
func TestIstioFlagAliases(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-n", "--backend", "iptables", "--ipv6", "false", "-k", "eth3"}, "-A SIDECARKIT_PREROUTING -i eth3 -j SIDECARKIT_OUT_REDIRECT"},
		{[]string{"-n", "--native-nftables", "--ipv6", "false"}, "table ip sidecarkit"},
		{[]string{"-n", "--force-iptables-binary", "legacy", "--ipv6", "false"}, "*nat"},
		{[]string{"-n", "--backend", "iptables", "--ipv6", "false", "-e", "15999"}, "--dport 15999 -j RETURN"},
		{[]string{"-n", "--backend", "iptables", "--ipv6", "false", "--drop-invalid"}, "*mangle"},
		{[]string{"-n", "--backend", "iptables", "--dual-stack", "--reconcile", "--force-apply", "--ipv6", "false", "-u", "1337,1400"}, "--uid-owner 1400 -j RETURN"},
	}
	for _, c := range cases {
		code, out, stderr := run(t, nil, c.args...)
		if code != 0 || !strings.Contains(out, c.want) {
			t.Errorf("%v: exit %d, want %q in\n%s%s", c.args, code, c.want, out, stderr)
		}
	}
	if code, _, stderr := run(t, nil, "validate", "--force-iptables-binary", "both"); code != ExitConfig || !strings.Contains(stderr, `force-iptables-binary "both": want legacy or nft`) {
		t.Errorf("bad --force-iptables-binary: %d %s", code, stderr)
	}
	if code, _, stderr := run(t, nil, "validate", "-m", "TPROXY", "-t", "1338", "-r", "254"); code != ExitConfig ||
		!strings.Contains(stderr, `istio-inbound-tproxy-mark "1338": must differ from 1338`) || !strings.Contains(stderr, `istio-inbound-tproxy-route-table "254": is a system table`) {
		t.Errorf("TPROXY: %d %s", code, stderr)
	}
	if code, out, _ := run(t, nil, "-n", "-m", "TPROXY", "--ipv6", "false"); code != 0 || !strings.Contains(out, "tproxy to :15006 meta mark set 0x00000539 accept") ||
		!strings.Contains(out, "ip rule fwmark 0x539 lookup 133") {
		t.Errorf("TPROXY dry run: %d\n%s", code, out)
	}
	if code, _, stderr := run(t, nil, "--network-namespace", "/nonexistent"); code != ExitConfig || !strings.Contains(stderr, "network-namespace") {
		t.Errorf("in-process --network-namespace: %d %s", code, stderr)
	}
}
