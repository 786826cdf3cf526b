package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

type seedConfig struct {
	vaultAddr, vaultToken, secretPath, password, username string
	consulAddr, consulPrefix                              string
	consulKV                                              []string
	approleDir                                            string
	waitURLs                                              []string
	timeout                                               time.Duration
}

type listFlag struct{ v *[]string }

func (l listFlag) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}

// Set accepts a comma-separated list; repeating the flag appends.
func (l listFlag) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l.v = append(*l.v, p)
		}
	}
	return nil
}

// seedCmd seeds the demo's servers once they answer: in Vault a KV v2 secret,
// a read-only policy and an AppRole whose role-id and secret-id it writes for
// the ambassador; in Consul the app's config keys. It is idempotent.
func seedCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c seedConfig
	fs := newFlags("seed", stderr)
	fs.StringVar(&c.vaultAddr, "vault-addr", "http://vault:8200", "Vault address (empty: do not seed Vault)")
	fs.StringVar(&c.vaultToken, "vault-token", "root", "Vault token allowed to seed (the dev root token)")
	fs.StringVar(&c.secretPath, "secret-path", "secret/demoapp", "KV v2 secret (mount/path) the app reads")
	fs.StringVar(&c.username, "username", "demoapp", "DB username stored in the secret")
	fs.StringVar(&c.password, "password", "initial-password-1", "DB password stored in the secret")
	fs.StringVar(&c.approleDir, "approle-dir", "/approle", "where to write role-id and secret-id for the ambassador (empty: skip AppRole)")
	fs.StringVar(&c.consulAddr, "consul-addr", "http://consul:8500", "Consul HTTP address")
	fs.StringVar(&c.consulPrefix, "consul-prefix", "config/demoapp", "Consul KV prefix of the app's settings")
	fs.Var(listFlag{&c.consulKV}, "consul-kv", "settings key=value under the prefix (comma-separated, repeatable)")
	fs.Var(listFlag{&c.waitURLs}, "wait-url", "also wait until these URLs answer 200 (comma-separated, repeatable)")
	fs.DurationVar(&c.timeout, "timeout", 2*time.Minute, "give up after this long")
	if err := parse(fs, args); err != nil {
		return err
	}
	if len(c.consulKV) == 0 {
		c.consulKV = []string{"greeting=hello", "color=blue", "max_connections=10"}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	s := &seeder{c: c, http: &http.Client{Timeout: 10 * time.Second}, out: stdout}
	return s.run(ctx)
}

type seeder struct {
	c    seedConfig
	http *http.Client
	out  io.Writer
}

func (s *seeder) run(ctx context.Context) error {
	c := s.c
	waits := append([]string{c.consulAddr + "/v1/status/leader"}, c.waitURLs...)
	if c.vaultAddr != "" {
		waits = append(waits, c.vaultAddr+"/v1/sys/health")
	}
	for _, u := range waits {
		if err := s.waitFor(ctx, u); err != nil {
			return err
		}
	}
	if c.vaultAddr != "" {
		if err := s.seedVault(ctx); err != nil {
			return err
		}
	}
	for _, kv := range c.consulKV {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("--consul-kv %q: want key=value", kv)
		}
		if err := s.do(ctx, "PUT", c.consulAddr+"/v1/kv/"+c.consulPrefix+"/"+k, nil, []byte(v), nil); err != nil {
			return err
		}
		fmt.Fprintf(s.out, "seed: consul: %s/%s = %q\n", c.consulPrefix, k, v)
	}
	fmt.Fprintln(s.out, "seed: done")
	return nil
}

func (s *seeder) seedVault(ctx context.Context) error {
	c := s.c
	mount, path, ok := strings.Cut(c.secretPath, "/")
	if !ok {
		return fmt.Errorf("--secret-path %q: want mount/path", c.secretPath)
	}
	if err := s.vault(ctx, "POST", "/v1/"+mount+"/data/"+path, map[string]any{
		"data": map[string]string{"username": c.username, "password": c.password}}, nil); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "seed: vault: wrote %s (username, password)\n", c.secretPath)
	if c.approleDir != "" {
		return s.approle(ctx, mount, path)
	}
	return nil
}

func (s *seeder) approle(ctx context.Context, mount, path string) error {
	policy := fmt.Sprintf("path %q { capabilities = [\"read\"] }\npath %q { capabilities = [\"read\"] }\n",
		mount+"/data/"+path, mount+"/metadata/"+path)
	if err := s.vault(ctx, "PUT", "/v1/sys/policies/acl/demoapp", map[string]string{"policy": policy}, nil); err != nil {
		return err
	}
	var auths map[string]any
	if err := s.vault(ctx, "GET", "/v1/sys/auth", nil, &auths); err != nil {
		return err
	}
	if _, ok := auths["approle/"]; !ok {
		if err := s.vault(ctx, "POST", "/v1/sys/auth/approle", map[string]string{"type": "approle"}, nil); err != nil {
			return err
		}
	}
	if err := s.vault(ctx, "POST", "/v1/auth/approle/role/demoapp", map[string]any{
		"token_policies": []string{"demoapp"}, "token_ttl": "1h", "token_max_ttl": "4h", "secret_id_ttl": "0"}, nil); err != nil {
		return err
	}
	var rid, sid struct {
		Data struct {
			RoleID   string `json:"role_id"`
			SecretID string `json:"secret_id"`
		} `json:"data"`
	}
	if err := s.vault(ctx, "GET", "/v1/auth/approle/role/demoapp/role-id", nil, &rid); err != nil {
		return err
	}
	if err := s.vault(ctx, "POST", "/v1/auth/approle/role/demoapp/secret-id", map[string]any{}, &sid); err != nil {
		return err
	}
	for name, v := range map[string]string{"role-id": rid.Data.RoleID, "secret-id": sid.Data.SecretID} {
		if v == "" {
			return fmt.Errorf("vault: approle %s is empty", name)
		}
		if err := writeFileAtomic(filepath.Join(s.c.approleDir, name), v); err != nil {
			return err
		}
	}
	fmt.Fprintf(s.out, "seed: vault: approle role demoapp (policy demoapp), role-id and secret-id in %s\n", s.c.approleDir)
	return nil
}

func writeFileAtomic(path, v string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(v), 0o400); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func (s *seeder) vault(ctx context.Context, method, path string, body, out any) error {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return err
		}
	}
	return s.do(ctx, method, s.c.vaultAddr+path, map[string]string{"X-Vault-Token": s.c.vaultToken}, b, out)
}

func (s *seeder) do(ctx context.Context, method, url string, hdr map[string]string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, url, resp.StatusCode, bytes.TrimSpace(rb))
	}
	if out != nil {
		if err := json.Unmarshal(rb, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, url, err)
		}
	}
	return nil
}

// waitFor polls url until it answers 200 (Consul's leader endpoint: a
// non-empty leader).
func (s *seeder) waitFor(ctx context.Context, url string) error {
	start := time.Now()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := s.http.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case resp.StatusCode != 200:
				err = fmt.Errorf("HTTP %d", resp.StatusCode)
			case strings.HasSuffix(url, "/status/leader") && len(bytes.Trim(b, "\" \n")) == 0:
				err = fmt.Errorf("no leader yet")
			}
		}
		if err == nil {
			fmt.Fprintf(s.out, "seed: %s answers after %s\n", url, time.Since(start).Round(time.Millisecond))
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %v (last: %v)", url, ctx.Err(), last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
