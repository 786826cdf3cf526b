package ambassador_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// TestInitModeSIGTERMBeforeWriting: init mode (--exit-after-render) gets a
// real SIGTERM while Vault does not answer, before anything was written: it
// exits non-zero and says which files were not written (exit 0 means
// "written" and would let the app start without its secrets).
func TestInitModeSIGTERMBeforeWriting(t *testing.T) {
	dir := t.TempDir()
	tokenFile := writeFile(t, filepath.Join(dir, "token"), "unused-token")
	out := t.TempDir()
	a := startAmb(t, []string{"--exit-after-render", "--token-file", tokenFile,
		"--secret", out + "/a.json=secret/a", "--secret", out + "/b=secret/b#k"},
		fmt.Sprintf("VAULT_ADDR=http://127.0.0.1:%d", testenv.FreePort(t)))
	eventually(t, 30*time.Second, "admin up", func() error {
		if code, _ := a.get("/livez"); code != 200 {
			return fmt.Errorf("livez %d", code)
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // a login attempt or two
	code := a.stop()
	if code == 0 {
		t.Fatalf("init mode stopped before writing exited 0:\n%s", a.logText())
	}
	log := a.logText()
	if !strings.Contains(log, "init mode: stopped before") || !strings.Contains(log, out+"/a.json") || !strings.Contains(log, out+"/b") {
		t.Fatalf("exit %d; the log does not say what was not written:\n%s", code, log)
	}
	for _, f := range []string{"a.json", "b"} {
		if _, err := os.Stat(filepath.Join(out, f)); err == nil {
			t.Errorf("%s written", f)
		}
	}
}

// TestInitModeReportsEveryFailure: with several failing outputs init mode
// names each of them (not only the first) and says which files it wrote;
// a destroyed KV v2 version is called destroyed, not deleted.
func TestInitModeReportsEveryFailure(t *testing.T) {
	v := testenv.StartVault(t)
	dir := t.TempDir()
	tokenFile := writeFile(t, filepath.Join(dir, "token"), v.Token)
	val := secret("init-all value", fmt.Sprintf("all-%d", time.Now().UnixNano()))
	cli(t, v, "kv", "put", "secret/good", "k="+val)
	cli(t, v, "kv", "put", "secret/gone", "k="+val+"-1")
	cli(t, v, "kv", "put", "secret/gone", "k="+val+"-2")
	cli(t, v, "kv", "destroy", "-versions=1", "secret/gone")
	cli(t, v, "kv", "put", "secret/del", "k="+val+"-3")
	cli(t, v, "kv", "put", "secret/del", "k="+val+"-4")
	cli(t, v, "kv", "delete", "-versions=1", "secret/del")
	out := t.TempDir()
	a := startAmb(t, []string{"--exit-after-render", "--token-file", tokenFile,
		"--secret", out + "/good=secret/good#k",
		"--secret", out + "/nokey=secret/good#nope",
		"--secret", out + "/nosecret=secret/nothing#k",
		"--secret", out + "/destroyed=secret/gone?version=1#k",
		"--secret", out + "/deleted=secret/del?version=1#k",
	}, "VAULT_ADDR="+v.Addr)
	if code := a.wait(60 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	log := a.logText()
	for _, want := range []string{"4 of 5 outputs failed", "nokey", "nosecret", "version is destroyed", "version is deleted", "written anyway (complete files): " + out + "/good"} {
		if !strings.Contains(log, want) {
			t.Errorf("%q not in the log", want)
		}
	}
	if got := readFile(t, out+"/good"); got != val {
		t.Errorf("good = %q", got)
	}
}

// TestWriteRetriedOnTinyTmpfs: the destination is a real 64 KiB tmpfs. It
// fills up (a write fails: ENOSPC), then is freed: the file is rewritten
// without any new change in Vault; then the tmpfs is remounted read-only and
// read-write again: same. Meanwhile readiness fails naming the file behind
// its secret, the metric shows it, every retry is logged and the recovery
// once. Needs root (mount); fails in CI without it.
func TestWriteRetriedOnTinyTmpfs(t *testing.T) {
	testenv.RequireRoot(t)
	v := testenv.StartVault(t)
	dir := t.TempDir()
	tokenFile := writeFile(t, filepath.Join(dir, "token"), v.Token)
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", mnt).CombinedOutput(); err != nil {
		testenv.Unavailable(t, "mount a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	mount := func(opts string) {
		t.Helper()
		if out, err := exec.Command("mount", "-o", "remount,"+opts, mnt).CombinedOutput(); err != nil {
			t.Fatalf("remount %s: %v %s", opts, err, out)
		}
	}
	v1 := secret("tmpfs v1", fmt.Sprintf("tmpfs-v1-%d", time.Now().UnixNano()))
	cli(t, v, "kv", "put", "secret/tiny", "pw="+v1)
	a := startAmb(t, []string{"--token-file", tokenFile, "--require-tmpfs", "--static-secret-refresh", "300ms",
		"--secret", mnt + "/pw=secret/tiny#pw"}, "VAULT_ADDR="+v.Addr)
	a.ready(60 * time.Second)
	if got := readFile(t, mnt+"/pw"); got != v1 {
		t.Fatalf("pw = %q", got)
	}

	behind := func(want bool) func() error {
		return func() error {
			code, body := a.get("/readyz?verbose")
			m := a.metric(`sidecarkit_ambassador_output_behind{output="pw"}`)
			if want && (code != 503 || !strings.Contains(body, "files-current") || !strings.Contains(body, "behind its secret") || m != 1) {
				return fmt.Errorf("readyz %d %q, behind metric %v", code, body, m)
			}
			if !want && (code != 200 || m != 0) {
				return fmt.Errorf("readyz %d %q, behind metric %v", code, body, m)
			}
			return nil
		}
	}
	count := func(s string) int { return strings.Count(a.logText(), s) }

	// 1. Full: a filler takes every block; the new version cannot be written.
	filler, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := filler.Write(buf); err != nil {
			break
		}
	}
	filler.Sync()
	filler.Close()
	v2 := secret("tmpfs v2", strings.Repeat("x", 5000)+fmt.Sprintf("-v2-%d", time.Now().UnixNano()))
	cli(t, v, "kv", "put", "secret/tiny", "pw="+v2)
	eventually(t, 60*time.Second, "behind while full", behind(true))
	eventually(t, 60*time.Second, "repeated failures logged", func() error {
		if n := count("output still behind its secret"); n < 2 {
			return fmt.Errorf("%d retries logged", n)
		}
		return nil
	})
	if got := readFile(t, mnt+"/pw"); got != v1 {
		t.Fatalf("the old file was damaged: %q", got)
	}
	if !strings.Contains(a.logText(), "no space left on device") {
		t.Fatal("the log does not say why")
	}
	os.Remove(filepath.Join(mnt, "filler"))
	eventually(t, 60*time.Second, "rewritten after space was freed", func() error {
		if b, _ := os.ReadFile(mnt + "/pw"); string(b) != v2 {
			return fmt.Errorf("still old")
		}
		return nil
	})
	eventually(t, 30*time.Second, "ready again", behind(false))
	if n := count("output written again; no longer behind its secret"); n != 1 {
		t.Fatalf("recovery logged %d times", n)
	}

	// 2. Read-only, then read-write again.
	mount("ro")
	v3 := secret("tmpfs v3", fmt.Sprintf("tmpfs-v3-%d", time.Now().UnixNano()))
	cli(t, v, "kv", "put", "secret/tiny", "pw="+v3)
	eventually(t, 60*time.Second, "behind while read-only", behind(true))
	if !strings.Contains(a.logText(), "read-only file system") {
		t.Fatal("the log does not say read-only")
	}
	before := count("output still behind its secret")
	eventually(t, 60*time.Second, "retries logged while read-only", func() error {
		if count("output still behind its secret") <= before {
			return fmt.Errorf("no retry logged")
		}
		return nil
	})
	mount("rw")
	eventually(t, 60*time.Second, "rewritten after remount rw", func() error {
		if b, _ := os.ReadFile(mnt + "/pw"); string(b) != v3 {
			return fmt.Errorf("still old")
		}
		return nil
	})
	eventually(t, 30*time.Second, "ready again", behind(false))
	if n := count("output written again; no longer behind its secret"); n != 2 {
		t.Fatalf("recoveries logged %d times, want 2", n)
	}
	if code := a.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

var _ = syscall.SIGTERM

// TestPolicyRevokedMidRun: the token's policy loses read on the secret
// (the real `vault policy write`, mid-run). The file keeps its last good
// content — never emptied or removed — the refusal is logged without any
// value, and once the policy is restored the new version arrives.
func TestPolicyRevokedMidRun(t *testing.T) {
	v := testenv.StartVault(t)
	dir := t.TempDir()
	cli(t, v, "policy", "write", "app-read", writeFile(t, filepath.Join(dir, "p1.hcl"), `path "secret/data/pol" { capabilities = ["read"] }`))
	tok := secret("policy token", cli(t, v, "token", "create", "-policy=app-read", "-ttl=1h", "-field=token"))
	tokenFile := writeFile(t, filepath.Join(dir, "token"), tok)
	v1 := secret("policy v1", fmt.Sprintf("pol-v1-%d", time.Now().UnixNano()))
	cli(t, v, "kv", "put", "secret/pol", "pw="+v1)
	out := t.TempDir()
	a := startAmb(t, []string{"--token-file", tokenFile, "--static-secret-refresh", "300ms",
		"--secret", out + "/pw=secret/pol#pw", "--secret", out + "/all.json=secret/pol"}, "VAULT_ADDR="+v.Addr)
	a.ready(60 * time.Second)
	if got := readFile(t, out+"/pw"); got != v1 {
		t.Fatalf("pw = %q", got)
	}

	cli(t, v, "policy", "write", "app-read", writeFile(t, filepath.Join(dir, "p2.hcl"), `path "secret/data/other" { capabilities = ["read"] }`))
	v2 := secret("policy v2", fmt.Sprintf("pol-v2-%d", time.Now().UnixNano()))
	cli(t, v, "kv", "put", "secret/pol", "pw="+v2)
	eventually(t, 60*time.Second, "refusal logged", func() error {
		if !strings.Contains(a.logText(), "permission denied") {
			return fmt.Errorf("no permission denied in the log")
		}
		return nil
	})
	time.Sleep(time.Second) // several refresh rounds
	if got := readFile(t, out+"/pw"); got != v1 {
		t.Fatalf("pw changed to %q while the token may not read it", got)
	}
	if got := readFile(t, out+"/all.json"); !strings.Contains(got, v1) {
		t.Fatalf("all.json lost its content: %q", got)
	}

	cli(t, v, "policy", "write", "app-read", writeFile(t, filepath.Join(dir, "p3.hcl"), `path "secret/data/pol" { capabilities = ["read"] }`))
	eventually(t, 60*time.Second, "new version after the policy was restored", func() error {
		if b, _ := os.ReadFile(out + "/pw"); string(b) != v2 {
			return fmt.Errorf("still old")
		}
		return nil
	})
	a.ready(30 * time.Second)
}
