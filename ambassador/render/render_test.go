package render

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// mapSource is an in-memory Source.
type mapSource map[string]*Secret

func (m mapSource) Secret(path string, params []string) (*Secret, error) {
	key := path
	if len(params) > 0 {
		key += "?" + strings.Join(params, "&")
	}
	s, ok := m[key]
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, ErrPending)
	}
	return s, nil
}

var src = mapSource{
	"secret/data/app": {KV2: true, Data: map[string]any{
		"data":     map[string]any{"password": "s3cr3t pw", "user": "app", "port": 5432.0, "db-url": "postgres://x"},
		"metadata": map[string]any{"version": 3.0},
	}},
	"kv/app":                        {Data: map[string]any{"token": "abc"}},
	"pki/issue/web?common_name=a.b": {Data: map[string]any{"certificate": "CERT", "private_key": "KEY"}},
}

func TestRender(t *testing.T) {
	tmpl := func(text string) *Tmpl {
		t.Helper()
		tp, err := ParseTemplate("t", text, TemplateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tp
	}
	cases := []struct {
		name string
		spec Spec
		want string
	}{
		{"raw kv2", Spec{Format: Raw, Path: "secret/data/app", Key: "password"}, "s3cr3t pw"},
		{"raw number as json", Spec{Format: Raw, Path: "secret/data/app", Key: "port"}, "5432"},
		{"raw kv1", Spec{Format: Raw, Path: "kv/app", Key: "token"}, "abc"},
		{"json", Spec{Format: JSON, Path: "kv/app"}, "{\n  \"token\": \"abc\"\n}\n"},
		{"env", Spec{Format: Env, Path: "secret/data/app", EnvPrefix: "db_"}, "DB_DB_URL=postgres://x\nDB_PASSWORD='s3cr3t pw'\nDB_PORT=5432\nDB_USER=app\n"},
		{"template kv2", Spec{Format: Template, Tmpl: tmpl(`{{ with secret "secret/data/app" }}{{ .Data.data.user }}:{{ .Data.data.password }}{{ end }}`)}, "app:s3cr3t pw"},
		{"template pki params", Spec{Format: Template, Tmpl: tmpl(`{{ with secret "pki/issue/web" "common_name=a.b" }}{{ .Data.certificate }}{{ .Data.private_key }}{{ end }}`)}, "CERTKEY"},
		{"template funcs", Spec{Format: Template, Tmpl: tmpl(`{{ with secret "kv/app" }}{{ .Data.token | base64Encode | base64Decode | toUpper }} {{ toJSON .Data }}{{ end }}`)}, `ABC {"token":"abc"}`},
	}
	for _, c := range cases {
		got, err := Render(c.spec, src)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	missing, _ := ParseTemplate("m", `{{ with secret "secret/data/app" }}{{ .Data.data.nope }}{{ end }}`, TemplateOptions{})
	zero, _ := ParseTemplate("z", `{{ with secret "secret/data/app" }}[{{ .Data.data.nope }}]{{ end }}`, TemplateOptions{MissingKeyZero: true})
	pending, _ := ParseTemplate("p", `a{{ with secret "secret/data/other" }}{{ .Data.data.x }}{{ end }}`, TemplateOptions{})

	if _, err := Render(Spec{Format: Raw, Path: "kv/app", Key: "nope"}, src); err == nil || !strings.Contains(err.Error(), `no key "nope"`) {
		t.Errorf("raw missing key: %v", err)
	}
	if _, err := Render(Spec{Format: Template, Tmpl: missing}, src); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("template missing key: %v", err)
	}
	if out, err := Render(Spec{Format: Template, Tmpl: zero}, src); err != nil || string(out) != "[<no value>]" {
		t.Errorf("template missing key zero: %q %v", out, err)
	}
	if out, err := Render(Spec{Format: Template, Tmpl: pending}, src); !errors.Is(err, ErrPending) || out != nil {
		t.Errorf("template pending: %q %v, want ErrPending and no output", out, err)
	}
	if _, err := Render(Spec{Format: JSON, Path: "nope"}, src); !errors.Is(err, ErrPending) {
		t.Errorf("json pending: %v", err)
	}
	// Errors never carry the secret's values.
	for _, sp := range []Spec{{Format: Raw, Path: "secret/data/app", Key: "x"}, {Format: Template, Tmpl: missing}} {
		_, err := Render(sp, src)
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error leaks a value: %v", err)
		}
	}
	if _, err := ParseTemplate("bad", "{{ with secret }", TemplateOptions{}); err == nil {
		t.Error("bad template parsed")
	}
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{"password": "PASSWORD", "db-url": "DB_URL", "1st": "_1ST", "a.b c": "A_B_C", "": "_"} {
		if got := EnvName("", in); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", in, got, want)
		}
	}
	if _, err := envFile(map[string]any{"a-b": "1", "a_b": "2"}, ""); err == nil {
		t.Error("colliding env names accepted")
	}
	// A key whose name would not say where it came from is refused, naming
	// the key and never the value.
	for _, k := range []string{"é", "_", "-", "a b", "pass$word", "ключ", "a=b", ""} {
		_, err := envFile(map[string]any{k: "v4lue"}, "")
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%q", k)) || strings.Contains(err.Error(), "v4lue") {
			t.Errorf("key %q: %v", k, err)
		}
	}
	if b, err := envFile(map[string]any{"db.url": "x", "api-key": "y", "path/to": "z", "1st": "w"}, "app_"); err != nil ||
		string(b) != "APP_1ST=w\nAPP_API_KEY=y\nAPP_DB_URL=x\nAPP_PATH_TO=z\n" {
		t.Errorf("plain keys: %q %v", b, err)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"abc": "abc", "a b": "'a b'", "it's": `'it'\''s'`, "": "''", "x\ny": "'x\ny'"} {
		if got := ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzTemplate: a template is outside input; parsing and executing it must
// never panic, and an error never comes with output.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{`{{ with secret "kv/app" }}{{ .Data.token }}{{ end }}`, `{{ secret }}`, `{{ range $k, $v := (secret "kv/app").Data }}{{ $k }}{{ end }}`, `{{ indent 2 "a\nb" }}`, "{{", `{{ template "x" }}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		tp, err := ParseTemplate("f", text, TemplateOptions{})
		if err != nil {
			return
		}
		out, err := tp.Execute(src)
		if err != nil && out != nil {
			t.Fatalf("output with an error")
		}
	})
}
