package ambassador_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

var outage = flag.Duration("outage", 30*time.Second, "how long TestVaultOutage keeps Vault down")

// startPersistentVault runs Vault in server (non-dev) mode with file storage,
// initialises and unseals it, so that Stop/Start keeps its data. It returns
// the server and a function that unseals it again after a restart.
func startPersistentVault(t *testing.T) (*testenv.Vault, func()) {
	t.Helper()
	return startServerVault(t, nil)
}

// startServerVault is startPersistentVault, with a TLS listener that
// requires client certificates when tls is set.
func startServerVault(t *testing.T, tls *tlsFiles) (*testenv.Vault, func()) {
	t.Helper()
	bin := testenv.Binary(t, "vault")
	dir := t.TempDir()
	port := testenv.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	scheme, listener, client, cliFlags := "http", "tls_disable = true", http.DefaultClient, []string(nil)
	if tls != nil {
		scheme = "https"
		listener = fmt.Sprintf("tls_cert_file = %q\n  tls_key_file = %q\n  tls_require_and_verify_client_cert = true\n  tls_client_ca_file = %q", tls.serverCert, tls.serverKey, tls.ca)
		client = tls.client
		cliFlags = []string{"-ca-cert=" + tls.ca, "-client-cert=" + tls.clientCert, "-client-key=" + tls.clientKey}
	}
	cfg := writeFile(t, filepath.Join(dir, "vault.hcl"), fmt.Sprintf(`
storage "file" { path = %q }
listener "tcp" {
  address = %q
  %s
}
disable_mlock = true
api_addr = "%s://%s"
`, filepath.Join(dir, "data"), addr, listener, scheme, addr))
	health := scheme + "://" + addr + "/v1/sys/health?uninitcode=200&sealedcode=200&standbycode=200"
	p := testenv.NewProcess(t, "vault-server", []string{bin, "server", "-config", cfg}, []string{"HOME=" + dir, "VAULT_DISABLE_MLOCK=true", "SKIP_SETCAP=1"},
		func() error {
			resp, err := client.Get(health)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("HTTP %d", resp.StatusCode)
			}
			return nil
		})
	p.Start()
	v := &testenv.Vault{Process: p, Addr: scheme + "://" + addr}
	withTLS := func(args ...string) []string {
		return append(append([]string{args[0], args[1]}, cliFlags...), args[2:]...)
	}
	var init struct {
		Keys  []string `json:"unseal_keys_b64"`
		Token string   `json:"root_token"`
	}
	if err := json.Unmarshal([]byte(v.CLI(t, withTLS("operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json")...)), &init); err != nil {
		t.Fatalf("vault operator init: %v", err)
	}
	v.Token = secret("root token", init.Token)
	key := secret("unseal key", init.Keys[0])
	unseal := func() {
		v.CLI(t, withTLS("operator", "unseal", key)...)
		eventually(t, 30*time.Second, "vault active", func() error {
			resp, err := client.Get(v.Addr + "/v1/sys/health")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("HTTP %d", resp.StatusCode)
			}
			return nil
		})
	}
	unseal()
	return v, unseal
}

// Vault goes away for --outage (30 s): the files keep their content, the
// ambassador stays up and ready, and after Vault returns it picks up a new
// secret version without a restart — logging in again if its token expired
// meanwhile.
func TestVaultOutage(t *testing.T) {
	v, unseal := startPersistentVault(t)
	dir := t.TempDir()
	out := t.TempDir()
	cli(t, v, "secrets", "enable", "-path=secret", "-version=2", "kv")
	v1 := secret("outage v1", fmt.Sprintf("before-%d", time.Now().UnixNano()))
	v2 := secret("outage v2", fmt.Sprintf("after-%d", time.Now().UnixNano()))
	cli(t, v, "kv", "put", "secret/app", "password="+v1)
	// The token lives 20 s: in a 30 s outage it expires and renewal cannot help.
	roleIDFile, secretIDFile := approle(t, v, dir, "20s", "1h")

	a := startAmb(t, []string{"--approle-role-id-file", roleIDFile, "--approle-secret-id-file", secretIDFile,
		"--secret", out + "/password=secret/app#password", "--secret", out + "/app.json=secret/app",
		"--static-secret-refresh", "1s"}, "VAULT_ADDR="+v.Addr)
	a.ready(60 * time.Second)
	jsonBefore := readFile(t, out+"/app.json")

	v.Stop()
	end := time.Now().Add(*outage)
	for time.Now().Before(end) {
		time.Sleep(time.Second)
		if got := readFile(t, out+"/password"); got != v1 {
			t.Fatalf("password file changed during the outage: %d bytes", len(got))
		}
		if code, body := a.get("/readyz?verbose"); code != 200 {
			t.Fatalf("not ready during the outage (files are still valid): %d %s", code, body)
		}
	}
	if readFile(t, out+"/app.json") != jsonBefore {
		t.Fatalf("json file changed during the outage")
	}
	if !strings.Contains(a.logText(), "fetch secret failed") {
		t.Fatalf("outage not noticed")
	}

	v.Start()
	unseal()
	cli(t, v, "kv", "put", "secret/app", "password="+v2)
	eventually(t, 90*time.Second, "new version after the outage", func() error {
		if got := readFile(t, out+"/password"); got != v2 {
			return fmt.Errorf("still the old value")
		}
		return nil
	})
	eventually(t, 30*time.Second, "proxy works again", func() error {
		code, _ := httpDo(t, "GET", "http://"+a.proxy+"/v1/secret/data/app", nil)
		if code != 200 {
			return fmt.Errorf("HTTP %d", code)
		}
		return nil
	})
	if _, err := os.Stat(out + "/password"); err != nil {
		t.Fatal(err)
	}
	if *outage > 25*time.Second {
		// The 20 s token expired while Vault was away: a fresh login, no restart.
		eventually(t, 30*time.Second, "second login", func() error {
			if n := a.metric(`sidecarkit_ambassador_logins_total{result="ok"}`); n < 2 {
				return fmt.Errorf("%v logins", n)
			}
			return nil
		})
	}
}
