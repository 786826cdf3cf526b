package ambassador_test

import (
	"encoding/json"
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

const appPolicy = `
path "secret/data/*" { capabilities = ["read"] }
path "database/creds/*" { capabilities = ["read"] }
path "sys/leases/renew" { capabilities = ["update"] }
path "sys/leases/revoke" { capabilities = ["update"] }
`

// approle enables AppRole with a role "app" and returns files with its
// role ID and a fresh secret ID.
func approle(t *testing.T, v *testenv.Vault, dir, tokenTTL, maxTTL string) (roleIDFile, secretIDFile string) {
	t.Helper()
	if !strings.Contains(v.CLI(t, "auth", "list"), "approle/") {
		cli(t, v, "auth", "enable", "approle")
	}
	writeFile(t, filepath.Join(dir, "app.hcl"), appPolicy)
	cli(t, v, "policy", "write", "app", filepath.Join(dir, "app.hcl"))
	cli(t, v, "write", "auth/approle/role/app", "token_policies=app", "token_ttl="+tokenTTL, "token_max_ttl="+maxTTL)
	roleID := secret("role id", cli(t, v, "read", "-field=role_id", "auth/approle/role/app/role-id"))
	secretID := secret("secret id", cli(t, v, "write", "-f", "-field=secret_id", "auth/approle/role/app/secret-id"))
	return writeFile(t, filepath.Join(dir, "role-id"), roleID), writeFile(t, filepath.Join(dir, "secret-id"), secretID)
}

// childApp starts a real process named name that counts the SIGHUPs it gets
// in countFile.
func childApp(t *testing.T, dir, name string) (countFile string) {
	t.Helper()
	countFile = filepath.Join(dir, "hups")
	script := filepath.Join(dir, name)
	writeFile(t, script, fmt.Sprintf("#!/bin/sh\ntrap 'echo hup >> %s' HUP\nwhile :; do sleep 0.1; done\n", countFile))
	os.Chmod(script, 0o755)
	cmd := exec.Command(script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return countFile
}

// AppRole login (secret-id file removed after reading), KV v2 rendered as a
// raw key, JSON, env and a template; `vault kv put` of a new version changes
// the files within the refresh interval and the app process gets SIGHUP.
func TestAppRoleKVRotationSignalsApp(t *testing.T) {
	v := testenv.StartVault(t)
	dir := t.TempDir()
	out := t.TempDir()
	roleIDFile, secretIDFile := approle(t, v, dir, "1h", "24h")
	pw1 := secret("password v1", "pw-one-"+fmt.Sprint(time.Now().UnixNano()))
	pw2 := secret("password v2", "pw-two-"+fmt.Sprint(time.Now().UnixNano()))
	cli(t, v, "kv", "put", "secret/app", "password="+pw1, "user=app")

	name := fmt.Sprintf("skapp%d", time.Now().UnixNano()%100000)
	hups := childApp(t, dir, name)
	cfg := writeFile(t, filepath.Join(dir, "amb.yaml"), `
secrets:
  - name: conf
    destination: `+out+`/app.conf
    template: |
      {{ with secret "secret/data/app" }}user={{ .Data.data.user }} password={{ .Data.data.password }}{{ end }}
`)
	a := startAmb(t, []string{"--config", cfg,
		"--secret", out + "/password=secret/app#password", "--secret", out + "/app.json=secret/app", "--secret", out + "/app.env=secret/app",
		"--approle-role-id-file", roleIDFile, "--approle-secret-id-file", secretIDFile, "--approle-remove-secret-id-file",
		"--static-secret-refresh", "1s", "--notify-process", name, "--notify-debounce", "100ms"},
		"VAULT_ADDR="+v.Addr)
	a.ready(60 * time.Second)

	if got := readFile(t, out+"/password"); got != pw1 {
		t.Fatalf("password file: %q", got)
	}
	if got := readFile(t, out+"/app.conf"); got != "user=app password="+pw1+"\n" {
		t.Fatalf("template file: %q", got)
	}
	if got := readFile(t, out+"/app.env"); got != "PASSWORD="+pw1+"\nUSER=app\n" {
		t.Fatalf("env file: %q", got)
	}
	if got := readFile(t, out+"/app.json"); !strings.Contains(got, `"password": "`+pw1+`"`) {
		t.Fatalf("json file: %q", got)
	}
	st, _ := os.Stat(out + "/password")
	if st.Mode().Perm() != 0o400 {
		t.Fatalf("mode %v, want 0400", st.Mode().Perm())
	}
	if _, err := os.Stat(secretIDFile); !os.IsNotExist(err) {
		t.Fatalf("secret-id file still there: %v", err)
	}

	// A reader polling the JSON file through the rotation never sees a
	// partial, empty or unparsable file.
	stopReader := make(chan struct{})
	readerDone := make(chan string, 1)
	go func() {
		reads := 0
		for {
			select {
			case <-stopReader:
				if reads == 0 {
					readerDone <- "reader never read"
				} else {
					readerDone <- ""
				}
				return
			default:
			}
			b, err := os.ReadFile(out + "/app.json")
			var doc map[string]string
			if err != nil || json.Unmarshal(b, &doc) != nil || (doc["password"] != pw1 && doc["password"] != pw2) {
				readerDone <- fmt.Sprintf("bad read after %d good ones: %d bytes, %v", reads, len(b), err)
				return
			}
			reads++
		}
	}()
	cli(t, v, "kv", "put", "secret/app", "password="+pw2, "user=app")
	eventually(t, 30*time.Second, "password file rotated", func() error {
		if got := readFile(t, out+"/password"); got != pw2 {
			return fmt.Errorf("still %d bytes of the old value", len(got))
		}
		return nil
	})
	// The files are written one after another in the same render pass.
	eventually(t, 10*time.Second, "template rotated too", func() error {
		if got := readFile(t, out+"/app.conf"); got != "user=app password="+pw2+"\n" {
			return fmt.Errorf("app.conf still old")
		}
		return nil
	})
	eventually(t, 10*time.Second, "json rotated", func() error {
		if !strings.Contains(readFile(t, out+"/app.json"), pw2) {
			return fmt.Errorf("app.json still old")
		}
		return nil
	})
	close(stopReader)
	if msg := <-readerDone; msg != "" {
		t.Fatal(msg)
	}
	eventually(t, 30*time.Second, "app got SIGHUP", func() error {
		b, _ := os.ReadFile(hups)
		if n := strings.Count(string(b), "hup"); n < 1 {
			return fmt.Errorf("%d signals", n)
		}
		return nil
	})
	// One rotation, one debounced notification (four files changed).
	time.Sleep(time.Second)
	if b, _ := os.ReadFile(hups); strings.Count(string(b), "hup") != 1 {
		t.Fatalf("want exactly one SIGHUP for one rotation, got %q", b)
	}
	if n := a.metric(`sidecarkit_ambassador_notifications_total{result="ok"}`); n != 1 {
		t.Fatalf("notifications metric %v", n)
	}
	// Polled every second, written only when the data changed: twice.
	if n := a.metric(`sidecarkit_ambassador_renders_total{output="password",result="written"}`); n != 2 {
		t.Fatalf("password written %v times, want 2", n)
	}
	if n := a.metric(`sidecarkit_ambassador_secret_fetches_total{result="unchanged"}`); n < 1 {
		t.Fatalf("no unchanged re-reads counted: %v", n)
	}
	if code := a.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	// Files stay after the ambassador stops.
	if got := readFile(t, out+"/password"); got != pw2 {
		t.Fatalf("password after stop: %q", got)
	}
}
