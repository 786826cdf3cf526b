package ambassador_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

func httpDo(t *testing.T, method, url string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Token auth from VAULT_TOKEN; the API proxy adds the token to requests that
// have none, keeps the app's own token (Vault's 403 comes back unchanged),
// passes Vault's 404 through byte for byte; in force mode it replaces the
// app's token.
func TestTokenAuthAndAPIProxy(t *testing.T) {
	v := testenv.StartVault(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "app.hcl"), appPolicy)
	cli(t, v, "policy", "write", "app", filepath.Join(dir, "app.hcl"))
	tok := secret("app token", cli(t, v, "token", "create", "-policy=app", "-ttl=1h", "-field=token"))
	val := secret("kv value", fmt.Sprintf("proxied-%d", time.Now().UnixNano()))
	cli(t, v, "kv", "put", "secret/app", "password="+val)

	for _, mode := range []string{"true", "force"} {
		t.Run("mode="+mode, func(t *testing.T) {
			a := startAmb(t, []string{"--proxy-auto-auth-token", mode}, "VAULT_ADDR="+v.Addr, "VAULT_TOKEN="+tok)
			a.ready(60 * time.Second)
			px := "http://" + a.proxy

			code, body := httpDo(t, "GET", px+"/v1/secret/data/app", nil)
			if code != 200 || !strings.Contains(body, val) {
				t.Fatalf("no token: %d %s", code, body)
			}
			// Vault's error passes through unchanged.
			dcode, dbody := httpDo(t, "GET", v.Addr+"/v1/secret/data/nope", map[string]string{"X-Vault-Token": tok})
			pcode, pbody := httpDo(t, "GET", px+"/v1/secret/data/nope", nil)
			if dcode != pcode || dbody != pbody {
				t.Fatalf("404 changed: direct %d %q, proxy %d %q", dcode, dbody, pcode, pbody)
			}
			code, body = httpDo(t, "GET", px+"/v1/secret/data/app", map[string]string{"X-Vault-Token": "hvs.not-a-token"})
			switch mode {
			case "true":
				dcode, dbody := httpDo(t, "GET", v.Addr+"/v1/secret/data/app", map[string]string{"X-Vault-Token": "hvs.not-a-token"})
				if code != 403 || code != dcode || body != dbody {
					t.Fatalf("app token not kept: proxy %d %q, direct %d %q", code, body, dcode, dbody)
				}
			case "force":
				if code != 200 || !strings.Contains(body, val) {
					t.Fatalf("force mode did not replace the token: %d %s", code, body)
				}
			}
			// A write through the proxy (the body streams through).
			req, _ := http.NewRequest("POST", px+"/v1/sys/wrapping/wrap", strings.NewReader(`{"k":"v"}`))
			req.Header.Set("X-Vault-Wrap-TTL", "60")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var wrapped struct {
				WrapInfo struct{ Token string } `json:"wrap_info"`
			}
			json.NewDecoder(resp.Body).Decode(&wrapped)
			resp.Body.Close()
			secret("wrapping token", wrapped.WrapInfo.Token)
			if resp.StatusCode != 200 || wrapped.WrapInfo.Token == "" {
				t.Fatalf("wrap through proxy: %d", resp.StatusCode)
			}
			if n := a.metric(`sidecarkit_ambassador_proxy_requests_total{code="2xx"}`); n < 2 {
				t.Fatalf("proxy metric: %v", n)
			}
			if code := a.stop(); code != 0 {
				t.Fatalf("exit %d", code)
			}
		})
	}
}

// A token with a 3 s TTL and an 8 s max TTL is renewed, and when it cannot
// be renewed any further the ambassador logs in again (vault#6659). The
// token sink follows, and its new token works.
func TestTokenRenewedThenReloginAtMaxTTL(t *testing.T) {
	v := testenv.StartVault(t)
	dir := t.TempDir()
	shm, err := os.MkdirTemp("/dev/shm", "amb-sink-")
	if err != nil {
		testenv.Unavailable(t, "no /dev/shm: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	roleIDFile, secretIDFile := approle(t, v, dir, "3s", "8s")
	cli(t, v, "kv", "put", "secret/app", "a=b")
	sink := filepath.Join(shm, "token")
	a := startAmb(t, []string{"--approle-role-id-file", roleIDFile, "--approle-secret-id-file", secretIDFile,
		"--token-sink", sink, "--require-tmpfs", "--secret", shm + "/a=secret/app#a"}, "VAULT_ADDR="+v.Addr)
	a.ready(60 * time.Second)
	first := secret("token 1", readFile(t, sink))
	st, _ := os.Stat(sink)
	if st.Mode().Perm() != 0o400 {
		t.Fatalf("sink mode %v", st.Mode().Perm())
	}
	eventually(t, 60*time.Second, "renewed, then logged in again", func() error {
		r := a.metric(`sidecarkit_ambassador_token_renewals_total{result="ok"}`)
		l := a.metric(`sidecarkit_ambassador_logins_total{result="ok"}`)
		if r < 1 || l < 2 {
			return fmt.Errorf("renewals %v, logins %v", r, l)
		}
		return nil
	})
	eventually(t, 10*time.Second, "sink updated", func() error {
		if readFile(t, sink) == first {
			return fmt.Errorf("sink still holds the first token")
		}
		return nil
	})
	second := secret("token 2", readFile(t, sink))
	code, body := httpDo(t, "GET", v.Addr+"/v1/auth/token/lookup-self", map[string]string{"X-Vault-Token": second})
	if code != 200 {
		t.Fatalf("new token does not work: %d %s", code, body)
	}
	// The proxy now injects the new token.
	eventually(t, 10*time.Second, "proxy uses a valid token", func() error {
		code, _ := httpDo(t, "GET", "http://"+a.proxy+"/v1/auth/token/lookup-self", nil)
		if code != 200 {
			return fmt.Errorf("HTTP %d", code)
		}
		return nil
	})
	if !strings.Contains(a.logText(), "logging in again") {
		t.Fatalf("no re-login logged")
	}
}

// A revoked token is noticed at the next 403 and replaced by a new login.
func TestRevokedTokenReLogin(t *testing.T) {
	v := testenv.StartVault(t)
	dir := t.TempDir()
	roleIDFile, secretIDFile := approle(t, v, dir, "1h", "24h")
	cli(t, v, "kv", "put", "secret/app", "a=b1")
	out := t.TempDir()
	sink := filepath.Join(out, "token")
	a := startAmb(t, []string{"--approle-role-id-file", roleIDFile, "--approle-secret-id-file", secretIDFile,
		"--token-sink", sink, "--secret", out + "/a=secret/app#a", "--static-secret-refresh", "500ms"}, "VAULT_ADDR="+v.Addr)
	a.ready(60 * time.Second)
	first := secret("token 1", readFile(t, sink))
	cli(t, v, "token", "revoke", first)
	eventually(t, 30*time.Second, "new token after revocation", func() error {
		if readFile(t, sink) == first {
			return fmt.Errorf("still the revoked token")
		}
		return nil
	})
	secret("token 2", readFile(t, sink))
	cli(t, v, "kv", "put", "secret/app", "a=b2")
	eventually(t, 30*time.Second, "file follows after re-login", func() error {
		if got := readFile(t, out+"/a"); got != "b2" {
			return fmt.Errorf("got %q", got)
		}
		return nil
	})
}

// Token auth from a file, with a token that cannot be renewed: when it runs
// out the file is read again, and a token written there meanwhile (by
// whatever rotates it) takes over without a restart.
func TestTokenFileReReadWhenTokenRunsOut(t *testing.T) {
	v := testenv.StartVault(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "app.hcl"), appPolicy)
	cli(t, v, "policy", "write", "app", filepath.Join(dir, "app.hcl"))
	cli(t, v, "kv", "put", "secret/app", "a=b")
	first := secret("short token", cli(t, v, "token", "create", "-policy=app", "-ttl=6s", "-renewable=false", "-field=token"))
	tokenFile := writeFile(t, filepath.Join(dir, "token"), first)
	out := t.TempDir()
	a := startAmb(t, []string{"--token-file", tokenFile, "--token-sink", out + "/sink", "--secret", out + "/a=secret/app#a"}, "VAULT_ADDR="+v.Addr)
	a.ready(60 * time.Second)
	second := secret("next token", cli(t, v, "token", "create", "-policy=app", "-ttl=1h", "-field=token"))
	writeFile(t, tokenFile, second)
	eventually(t, 60*time.Second, "the rotated token file is used", func() error {
		if got := readFile(t, out+"/sink"); got != second {
			return fmt.Errorf("sink still holds the first token")
		}
		return nil
	})
	code, _ := httpDo(t, "GET", "http://"+a.proxy+"/v1/secret/data/app", nil)
	if code != 200 {
		t.Fatalf("proxy with the new token: %d", code)
	}
}
