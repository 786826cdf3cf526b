package configsync_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
	"github.com/sidecarkit/sidecarkit/shared/app"
)

// aclConsul is a real Consul agent with ACLs on (default deny) and the
// real `consul` CLI to change policies while configsync runs.
type aclConsul struct {
	*testenv.Process
	bin, Addr, Mgmt string
}

func startACLConsul(t *testing.T) *aclConsul {
	t.Helper()
	bin := testenv.Binary(t, "consul")
	ports := make([]int, 6)
	for i := range ports {
		ports[i] = testenv.FreePort(t)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	const mgmt = "2b778dd9-f5f1-6f29-b4b4-9a5fa948757a"
	argv := []string{bin, "agent", "-dev", "-client", "127.0.0.1", "-bind", "127.0.0.1",
		"-http-port", strconv.Itoa(ports[0]), "-dns-port", strconv.Itoa(ports[1]), "-server-port", strconv.Itoa(ports[2]),
		"-serf-lan-port", strconv.Itoa(ports[3]), "-serf-wan-port", strconv.Itoa(ports[4]), "-grpc-port", strconv.Itoa(ports[5]),
		"-hcl", "ports { grpc_tls = -1 }",
		"-hcl", `acl { enabled = true, default_policy = "deny", tokens { initial_management = "` + mgmt + `" } }`,
		"-log-level", "warn"}
	p := testenv.NewProcess(t, "consul-acl", argv, nil, func() error {
		req, _ := http.NewRequest("GET", "http://"+addr+"/v1/acl/token/self", nil)
		req.Header.Set("X-Consul-Token", mgmt)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		r.Body.Close()
		if r.StatusCode != 200 {
			return fmt.Errorf("acl not ready: HTTP %d", r.StatusCode)
		}
		return nil
	})
	p.Start()
	return &aclConsul{Process: p, bin: bin, Addr: addr, Mgmt: mgmt}
}

// cli runs the real consul CLI with the management token.
func (c *aclConsul) cli(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), "CONSUL_HTTP_ADDR="+c.Addr, "CONSUL_HTTP_TOKEN="+c.Mgmt)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("consul %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (c *aclConsul) kv(t *testing.T) *api.KV {
	cl, err := api.NewClient(&api.Config{Address: c.Addr, Token: c.Mgmt})
	if err != nil {
		t.Fatal(err)
	}
	return cl.KV()
}

func getStatus(t *testing.T, h *harness) map[string]any {
	t.Helper()
	rec := &recorder{h: http.Header{}}
	req, _ := http.NewRequest("GET", "/status", nil)
	h.rt.Admin.ServeHTTP(rec, req)
	var m map[string]any
	if err := json.Unmarshal(rec.body, &m); err != nil {
		t.Fatalf("status %q: %v", rec.body, err)
	}
	return m
}

type recorder struct {
	h    http.Header
	code int
	body []byte
}

func (r *recorder) Header() http.Header         { return r.h }
func (r *recorder) Write(b []byte) (int, error) { r.body = append(r.body, b...); return len(b), nil }
func (r *recorder) WriteHeader(c int)           { r.code = c }

// TestACLFilteredListingIsPermissionError: a token whose policy loses read
// access (changed by the real `consul acl` CLI) gets a listing Consul
// filtered to nothing. configsync must call that a permission error — the
// last good tree stays, /status and the log say permission — never publish
// it as an empty tree, even with --allow-missing; --once exits non-zero.
func TestACLFilteredListingIsPermissionError(t *testing.T) {
	c := startACLConsul(t)
	kv := c.kv(t)
	put(t, kv, "acl/app/a", "1")
	put(t, kv, "acl/app/b", "2")
	put(t, kv, "acl/apple", "beside the prefix, unreadable")
	c.cli(t, "acl", "policy", "create", "-name", "app", "-rules", `key_prefix "acl/app/" { policy = "read" }`)
	const tok = "7f1c1e9e-3f1e-4a44-9a2b-1c1d1e1f2a2b"
	c.cli(t, "acl", "token", "create", "-secret", tok, "-policy-name", "app")

	dir := t.TempDir()
	h := start(t, &testenv.Consul{Addr: c.Addr}, "--consul-token", tok, "--allow-missing",
		"--tree", "acl/app="+dir+"/cfg", "--sync-interval", "2s")
	eventually(t, "tree", fileIs(dir+"/cfg/b", "2"))
	if _, err := os.Stat(dir + "/cfg/apple"); err == nil {
		t.Fatal("a key beside the prefix was published")
	}

	// Mid-run, the policy loses read on the prefix.
	c.cli(t, "acl", "policy", "update", "-name", "app", "-rules", `key_prefix "acl/app/" { policy = "deny" }`)
	put(t, kv, "acl/app/c", "3")
	eventually(t, "permission error logged", func() bool { return strings.Contains(h.logs.String(), "permission denied") })
	eventually(t, "status names permission", func() bool {
		e, _ := getStatus(t, h)["last_consul_error"].(string)
		return strings.Contains(e, "permission denied")
	})
	time.Sleep(3 * time.Second) // a few more blocking rounds (sync interval 2s)
	for _, f := range []string{"a", "b"} {
		if _, err := os.Stat(filepath.Join(dir, "cfg", f)); err != nil {
			t.Fatalf("the last good tree lost %s after the token lost read access: %v", f, err)
		}
	}
	if _, err := os.Stat(dir + "/cfg/c"); err == nil {
		t.Fatal("published data it may not read")
	}

	// Restored: the tree catches up by itself.
	c.cli(t, "acl", "policy", "update", "-name", "app", "-rules", `key_prefix "acl/app/" { policy = "read" }`)
	eventually(t, "recovered", fileIs(dir+"/cfg/c", "3"))
	eventually(t, "recovery logged", func() bool { return strings.Contains(h.logs.String(), "consul read recovered") })

	// --once with a token that may read nothing there: non-zero, says
	// permission (with and without --allow-missing), writes nothing.
	c.cli(t, "acl", "policy", "update", "-name", "app", "-rules", `key_prefix "acl/app/" { policy = "deny" }`)
	for _, extra := range [][]string{{"--allow-missing", "--tree", "acl/app=" + dir + "/once"}, {"--tree", "acl/app=" + dir + "/once"}, {"--allow-missing", "--file", "acl/app/a=" + dir + "/once"}} {
		args := append([]string{"--consul-addr", c.Addr}, extra...)
		code, out := runOnce(t, []string{"CONSUL_HTTP_TOKEN=" + tok}, args...)
		if code == 0 || !strings.Contains(strings.ToLower(out), "permission denied") || strings.Contains(out, "not found in Consul") || strings.Contains(out, "every output written") {
			t.Fatalf("--once %v: exit %d:\n%s", extra, code, out)
		}
		if _, err := os.Stat(dir + "/once"); err == nil {
			t.Fatalf("--once %v wrote a tree", extra)
		}
		if strings.Contains(out, tok) {
			t.Fatal("token leaked")
		}
	}
}

// TestDeleteRecurseWithoutSlash: `consul kv delete -recurse PREFIX` (no
// trailing slash, the real CLI) after an earlier single-key delete under the
// prefix. Consul's listing of "PREFIX/" neither wakes nor keeps its index,
// so the change must come from the listing without the slash: the tree
// empties at once (not after the blocking wait, here 5 minutes), with no
// false "index went backwards".
func TestDeleteRecurseWithoutSlash(t *testing.T) {
	c := testenv.StartConsul(t)
	kv := kvClient(t, c)
	put(t, kv, "del/app/a", "1")
	put(t, kv, "del/app/x", "2")
	put(t, kv, "del/apple", "beside")
	if _, err := kv.Delete("del/app/x", nil); err != nil { // an older tombstone under the prefix
		t.Fatal(err)
	}
	put(t, kv, "del/app/b", "3")
	dir := t.TempDir()
	h := start(t, c, "--tree", "del/app="+dir+"/cfg", "--allow-missing", "--sync-interval", "5m")
	eventually(t, "tree", fileIs(dir+"/cfg/b", "3"))
	time.Sleep(500 * time.Millisecond) // the watch is blocking now
	cmd := exec.Command(testenv.Binary(t, "consul"), "kv", "delete", "-recurse", "del/app")
	cmd.Env = append(os.Environ(), "CONSUL_HTTP_ADDR="+c.Addr)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("consul kv delete: %v\n%s", err, out)
	}
	start := time.Now()
	eventually(t, "tree emptied", func() bool { _, err := os.Stat(dir + "/cfg/a"); return os.IsNotExist(err) })
	t.Logf("tree emptied %s after the delete", time.Since(start).Round(time.Millisecond))
	if strings.Contains(h.logs.String(), "index went backwards") || h.metric("sidecarkit_configsync_index_resets_total") != 0 {
		t.Fatalf("false index reset:\n%s", h.logs.String())
	}
	if _, err := os.Stat(dir + "/cfg/apple"); err == nil {
		t.Fatal("a key beside the prefix was published")
	}
}

// TestLongAndBadKeys: a key whose name is 255 bytes (NAME_MAX) is published;
// one of 256 bytes, a "..", and a key that is both file and directory are
// bad keys: without --skip-bad-keys they hold the tree back (named), with it
// the rest is published and /status and the metric name them.
func TestLongAndBadKeys(t *testing.T) {
	c := testenv.StartConsul(t)
	kv := kvClient(t, c)
	long := strings.Repeat("k", 255)
	put(t, kv, "long/"+long, "longest")
	put(t, kv, "long/d/"+long, "nested")
	dir := t.TempDir()
	h := start(t, c, "--tree", "long="+dir+"/cfg")
	eventually(t, "255-byte key published", fileIs(dir+"/cfg/"+long, "longest"))
	eventually(t, "nested 255-byte key published", fileIs(dir+"/cfg/d/"+long, "nested"))
	put(t, kv, "long/"+long, "changed")
	eventually(t, "255-byte key updated", fileIs(dir+"/cfg/"+long, "changed"))
	h.stop()

	put(t, kv, "bad/good", "ok")
	put(t, kv, "bad/"+strings.Repeat("x", 256), "too long")
	// Through a transaction: the key is in the JSON body, so no HTTP path
	// cleaning turns it into "bad/escape".
	if ok, _, _, err := kv.Txn(api.KVTxnOps{{Verb: api.KVSet, Key: "bad/up/../escape", Value: []byte("no")}}, nil); err != nil || !ok {
		t.Fatalf("txn: %v %v", ok, err)
	}
	put(t, kv, "bad/f", "file")
	put(t, kv, "bad/f/g", "and dir")
	h2 := start(t, c, "--tree", "bad="+dir+"/strict")
	eventually(t, "render error", func() bool { return h2.metric("sidecarkit_configsync_errors_total", "stage", "render") > 0 })
	if _, err := os.Stat(dir + "/strict"); err == nil {
		t.Fatal("strict: a tree with bad keys was published")
	}
	if !strings.Contains(h2.logs.String(), "256 bytes") {
		t.Fatalf("the error does not name the long key:\n%s", h2.logs.String())
	}
	h2.stop()

	h3 := start(t, c, "--tree", "bad="+dir+"/lenient", "--skip-bad-keys")
	eventually(t, "rest published", fileIs(dir+"/lenient/good", "ok"))
	if b, _ := os.ReadFile(dir + "/lenient/f/g"); string(b) != "and dir" {
		t.Fatalf("f/g = %q", b)
	}
	eventually(t, "skipped metric", func() bool { return h3.metric("sidecarkit_configsync_skipped_keys") == 3 })
	outs := getStatus(t, h3)["outputs"].([]any)
	sk, _ := outs[0].(map[string]any)["skipped_keys"].([]any)
	joined := fmt.Sprint(sk)
	if len(sk) != 3 || !strings.Contains(joined, "256 bytes") || !strings.Contains(joined, "escape") || !strings.Contains(joined, `"bad/f"`) {
		t.Fatalf("status skipped_keys = %v", sk)
	}
	if !h3.rt.Health.Ready() {
		t.Fatal("not ready although every good key was published")
	}
	// Fixed in Consul: the key is no longer reported.
	for _, k := range []string{"bad/" + strings.Repeat("x", 256), "bad/up/../escape", "bad/f"} {
		if ok, _, _, err := kv.Txn(api.KVTxnOps{{Verb: api.KVDelete, Key: k}}, nil); err != nil || !ok {
			t.Fatalf("delete %s: %v %v", k, ok, err)
		}
	}
	eventually(t, "skipped back to 0", func() bool { return h3.metric("sidecarkit_configsync_skipped_keys") == 0 })
}

// TestOnceStoppedBySIGTERM: the built binary in --once mode, Consul not
// answering, gets a real SIGTERM before it wrote anything: it exits
// non-zero and says so (exit 0 would let the app start without its files).
func TestOnceStoppedBySIGTERM(t *testing.T) {
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	cmd := exec.Command(bin, "--once", "--consul-addr", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		"--file", "x="+dir+"/x", "--tree", "t="+dir+"/t", "--admin-addr", "127.0.0.1:0", "--drain-delay", "0")
	var out syncBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a failed read", func() bool { return strings.Contains(out.String(), "consul read failed") })
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	if err == nil || code == 0 {
		t.Fatalf("exit %d after SIGTERM before writing:\n%s", code, out.String())
	}
	if code != app.ExitRuntime || !strings.Contains(out.String(), "stopped before every output was written") || strings.Contains(out.String(), "every output written") {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	for _, f := range []string{"x", "t"} {
		if !strings.Contains(out.String(), dir+"/"+f) {
			t.Errorf("the error does not name %s as not written:\n%s", f, out.String())
		}
	}
}
