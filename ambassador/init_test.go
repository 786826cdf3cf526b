package ambassador_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// Init mode renders everything once and exits 0; a missing key or secret
// exits 1 naming what is missing, and writes no file.
func TestInitMode(t *testing.T) {
	v := testenv.StartVault(t)
	dir := t.TempDir()
	tokenFile := writeFile(t, filepath.Join(dir, "token"), v.Token)
	val := secret("init value", fmt.Sprintf("init-%d", time.Now().UnixNano()))
	cli(t, v, "kv", "put", "secret/app", "password="+val)
	cli(t, v, "secrets", "enable", "-path=kv1", "-version=1", "kv")
	cli(t, v, "kv", "put", "kv1/app", "password="+val)
	cli(t, v, "kv", "put", "secret/app", "password="+val+"-v2")

	out := t.TempDir()
	a := startAmb(t, []string{"--exit-after-render", "--token-file", tokenFile,
		"--secret", out + "/v1pinned=secret/app?version=1#password", "--secret", out + "/latest=secret/app#password",
		"--secret", out + "/kv1=kv1/app#password"}, "VAULT_ADDR="+v.Addr)
	if code := a.wait(60 * time.Second); code != 0 {
		t.Fatalf("init mode exit %d", code)
	}
	for f, want := range map[string]string{"v1pinned": val, "latest": val + "-v2", "kv1": val} {
		if got := readFile(t, filepath.Join(out, f)); got != want {
			t.Errorf("%s: got %q", f, got)
		}
	}

	cases := []struct{ name, arg, want string }{
		{"missing key", "/k=secret/app#nope", `has no key`},
		{"missing secret", "/k=secret/nothing-here#x", "no secret at this path"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := t.TempDir()
			a := startAmb(t, []string{"--exit-after-render", "--token-file", tokenFile, "--secret", out + c.arg}, "VAULT_ADDR="+v.Addr)
			if code := a.wait(60 * time.Second); code != 1 {
				t.Fatalf("exit %d, want 1", code)
			}
			if !strings.Contains(a.logText(), c.want) {
				t.Fatalf("reason %q not in log:\n%s", c.want, a.logText())
			}
			if _, err := os.Stat(out + "/k"); !os.IsNotExist(err) {
				t.Fatalf("file written although its data is missing: %v", err)
			}
		})
	}
}

// Sidecar mode is not ready (and writes no file) until the secret exists;
// then it renders and turns ready (vault#29444: the app waits on this).
func TestReadyOnlyAfterFirstRender(t *testing.T) {
	v := testenv.StartVault(t)
	dir := t.TempDir()
	tokenFile := writeFile(t, filepath.Join(dir, "token"), v.Token)
	out := t.TempDir()
	a := startAmb(t, []string{"--token-file", tokenFile, "--secret", out + "/db.json=secret/later", "--static-secret-refresh", "500ms"}, "VAULT_ADDR="+v.Addr)
	eventually(t, 30*time.Second, "proxy up, secret pending", func() error {
		code, body := a.get("/readyz?verbose")
		if code != 503 || !strings.Contains(body, "secrets-rendered") {
			return fmt.Errorf("readyz %d %s", code, body)
		}
		return nil
	})
	time.Sleep(time.Second)
	if code, _ := a.get("/readyz"); code != 503 {
		t.Fatalf("ready before the secret exists: %d", code)
	}
	if code, _ := a.get("/startupz"); code == 200 {
		t.Fatalf("started before the secret exists")
	}
	if _, err := os.Stat(out + "/db.json"); !os.IsNotExist(err) {
		t.Fatalf("file rendered before its data exists: %v", err)
	}
	val := secret("later value", fmt.Sprintf("later-%d", time.Now().UnixNano()))
	cli(t, v, "kv", "put", "secret/later", "k="+val)
	a.ready(30 * time.Second)
	if got := readFile(t, out+"/db.json"); !strings.Contains(got, val) {
		t.Fatalf("db.json: %q", got)
	}
	// `ambassador wait` (what an app entrypoint runs) agrees.
	if out, err := runWait(a.admin); err != nil {
		t.Fatalf("wait: %v %s", err, out)
	}
}
