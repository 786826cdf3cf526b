package ambassador

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sidecarkit/sidecarkit/ambassador/dest"
	"github.com/sidecarkit/sidecarkit/ambassador/render"
	"github.com/sidecarkit/sidecarkit/shared/config"
)

func parse(t *testing.T, args, env []string) (*Config, error) {
	t.Helper()
	var c Config
	l := config.NewLoader("ambassador")
	Bind(l, &c)
	if _, err := l.Parse(args, env); err != nil {
		return &c, err
	}
	return &c, Validate(l, &c)
}

func TestConfigFromFlagsAndEnv(t *testing.T) {
	sd := t.TempDir()
	c, err := parse(t, []string{"--secret", sd + "/db.json=secret/db", "--secret=" + sd + "/pw=secret/db#password", "--secret", sd + "/app.env=kv/app"},
		[]string{"VAULT_ADDR=http://127.0.0.1:8201", "VAULT_TOKEN=t0k", "VAULT_NAMESPACE=team", "AMBASSADOR_FILE_MODE=0440"})
	if err != nil {
		t.Fatal(err)
	}
	if c.VaultAddr != "http://127.0.0.1:8201" || c.Token != "t0k" || c.Namespace != "team" || c.AuthMethod != "token" {
		t.Fatalf("env not applied: %+v", c)
	}
	want := []struct {
		path   string
		format render.Format
		key    string
	}{{sd + "/db.json", render.JSON, ""}, {sd + "/pw", render.Raw, "password"}, {sd + "/app.env", render.Env, ""}}
	if len(c.Outputs) != len(want) {
		t.Fatalf("outputs: %+v", c.Outputs)
	}
	for i, w := range want {
		o := c.Outputs[i]
		if o.File.Path != w.path || o.Spec.Format != w.format || o.Spec.Key != w.key || o.File.Mode != 0o440 || o.File.UID != -1 {
			t.Errorf("output %d: %+v %+v", i, o.Spec, o.File)
		}
	}
	if c.ProxyAddr != "127.0.0.1:8200" || c.ProxyToken != "true" {
		t.Errorf("proxy defaults: %q %q", c.ProxyAddr, c.ProxyToken)
	}
}

func TestConfigYAML(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "db.tmpl")
	os.WriteFile(tmpl, []byte(`{{ with secret "database/creds/app" }}{{ .Data.username }}{{ end }}`), 0o644)
	os.WriteFile(filepath.Join(dir, "role-id"), []byte("r"), 0o600)
	cfg := filepath.Join(dir, "a.yaml")
	os.WriteFile(cfg, []byte(`
vault-addr: https://vault:8200
approle-role-id-file: `+filepath.Join(dir, "role-id")+`
approle-secret-id-file: /x/secret-id
approle-remove-secret-id-file: true
static-secret-refresh: 30s
secrets:
  - name: db
    destination: `+dir+`/db.conf
    template_file: `+tmpl+`
  - path: secret/app
    version: 3
    destination: `+dir+`/app.json
    mode: "0600"
    uid: 1000
  - path: pki/issue/web
    params: {common_name: web.example.com, ttl: 1h}
    destination: `+dir+`/cert.pem
    key: certificate
`), 0o644)
	c, err := parse(t, []string{"--config", cfg}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.AuthMethod != "approle" || !c.RemoveSecretIDFile {
		t.Fatalf("auth: %+v", c)
	}
	if len(c.Outputs) != 3 {
		t.Fatalf("outputs %d", len(c.Outputs))
	}
	if o := c.Outputs[0]; o.Name != "db" || o.Spec.Format != render.Template || o.Spec.Tmpl == nil {
		t.Errorf("template output: %+v", o.Spec)
	}
	if o := c.Outputs[1]; o.Spec.Path != "secret/app?version=3" || o.File.Mode != 0o600 || o.File.UID != 1000 || o.File.GID != -1 || o.Spec.Format != render.JSON {
		t.Errorf("kv output: %+v %+v", o.Spec, o.File)
	}
	if o := c.Outputs[2]; o.Spec.Format != render.Raw || strings.Join(o.Spec.Params, "&") != "common_name=web.example.com&ttl=1h" {
		t.Errorf("pki output: %+v", o.Spec)
	}
}

// Every problem is reported at once, naming the key and the value — and
// never a token.
func TestConfigProblems(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "a.yaml")
	os.WriteFile(cfg, []byte(`
secrets:
  - path: secret/a
    format: raw
    destination: relative/file
  - destination: /s/t
    template: "{{ with secret }"
  - path: secret/b
    destination: /s/t
    format: xml
  - path: secret/c
    destination: /s/c
    bogus: 1
`), 0o644)
	_, err := parse(t, []string{"--config", cfg}, nil)
	if err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown key not reported: %v", err)
	}
	os.WriteFile(cfg, []byte(`
secrets:
  - path: secret/a
    format: raw
    destination: relative/file
  - destination: /s/t
    template: "{{ with secret }"
  - path: secret/b
    destination: /s/t2
    format: xml
`), 0o644)
	_, err = parse(t, []string{"--config", cfg, "--vault-addr", "vault:8200", "--token", "hvs.SECRETTOKEN", "--file-mode", "0200",
		"--proxy-addr", "0.0.0.0:8200", "--proxy-auto-auth-token", "maybe", "--secret", "nodest", "--notify-signal", "NOPE", "--notify-process", "app"}, nil)
	if err == nil {
		t.Fatal("bad config accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		`vault-addr "vault:8200"`, `file-mode "0200"`, `proxy-addr "0.0.0.0:8200"`, `proxy-auto-auth-token "maybe"`,
		`secret "nodest"`, `notify-signal "NOPE"`, `secrets[0].destination "relative/file"`, `secrets[0].key`,
		`secrets[1].template`, `secrets[2].format "xml"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing problem %s in:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "SECRETTOKEN") {
		t.Errorf("token in validation output:\n%s", msg)
	}
	if _, err := parse(t, nil, []string{"VAULT_ADDR=http://v:1"}); err == nil || !strings.Contains(err.Error(), "no auth configured") {
		t.Errorf("missing auth: %v", err)
	}
	if _, err := parse(t, []string{"--exit-after-render"}, []string{"VAULT_ADDR=http://v:1", "VAULT_TOKEN=x"}); err == nil {
		t.Errorf("init mode without secrets accepted")
	}
}

func TestParseSecretFlag(t *testing.T) {
	for in, want := range map[string]SecretSpec{
		"/a/b.json=secret/x":         {Name: "b.json", Destination: "/a/b.json", Path: "secret/x", Format: "json"},
		"/a/b.env=secret/x":          {Name: "b.env", Destination: "/a/b.env", Path: "secret/x", Format: "env"},
		"/a/pw=secret/x#pass":        {Name: "pw", Destination: "/a/pw", Path: "secret/x", Format: "raw", Key: "pass"},
		"/a/pw=secret/x?version=2#p": {Name: "pw", Destination: "/a/pw", Path: "secret/x?version=2", Format: "raw", Key: "p"},
	} {
		got, err := ParseSecretFlag(in)
		if err != nil || got.Name != want.Name || got.Destination != want.Destination || got.Path != want.Path || got.Format != want.Format || got.Key != want.Key {
			t.Errorf("ParseSecretFlag(%q) = %+v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "x", "=a", "/a=", "/a=b#"} {
		if _, err := ParseSecretFlag(bad); err == nil {
			t.Errorf("ParseSecretFlag(%q) accepted", bad)
		}
	}
}

func FuzzParseSecretFlag(f *testing.F) {
	for _, s := range []string{"/a/b.json=secret/x", "/a/pw=secret/x#k", "=", "#", "/a=b=c#d#e"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParseSecretFlag(s)
		if err != nil {
			return
		}
		if spec.Destination == "" || spec.Path == "" || (spec.Format == "raw" && spec.Key == "") {
			t.Fatalf("accepted %q as %+v", s, spec)
		}
	})
}

// One rule for the format, from a flag or YAML alike; and what a run refuses
// with exit 2 (a missing directory, a destination not on tmpfs with
// require-tmpfs), validate refuses too.
func TestFormatRuleAndDestinationsValidated(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "a.yaml")
	os.WriteFile(cfg, []byte(`
secrets:
  - path: secret/app
    destination: `+dir+`/app.env
  - path: secret/app
    destination: `+dir+`/app.json
  - path: secret/app
    key: pw
    destination: `+dir+`/pw.env
`), 0o644)
	c, err := parse(t, []string{"--config", cfg, "--secret", dir + "/flag.env=secret/app"}, []string{"VAULT_ADDR=http://v:1", "VAULT_TOKEN=x"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]render.Format{}
	for _, o := range c.Outputs {
		got[filepath.Base(o.File.Path)] = o.Spec.Format
	}
	want := map[string]render.Format{"flag.env": render.Env, "app.env": render.Env, "app.json": render.JSON, "pw.env": render.Raw}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: format %q, want %q", k, got[k], v)
		}
	}

	_, err = parse(t, []string{"--secret", dir + "/missing/x.json=secret/app"}, []string{"VAULT_ADDR=http://v:1", "VAULT_TOKEN=x"})
	if err == nil || !strings.Contains(err.Error(), dir+"/missing") {
		t.Errorf("missing directory accepted: %v", err)
	}
	_, err = parse(t, []string{"--require-tmpfs", "--secret", dir + "/x.json=secret/app", "--token-sink", dir + "/tok"}, []string{"VAULT_ADDR=http://v:1", "VAULT_TOKEN=x"})
	if tmpfs, _ := isTmpfs(dir); !tmpfs {
		if err == nil || !strings.Contains(err.Error(), "not on tmpfs") || !strings.Contains(err.Error(), "token-sink") {
			t.Errorf("--require-tmpfs on %s accepted: %v", dir, err)
		}
	}
}

func isTmpfs(dir string) (bool, error) { return dest.IsTmpfs(dir) }
