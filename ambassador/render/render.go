// Package render turns secrets into file contents: one key raw, all keys as
// JSON or as an env file, or a Go text/template with functions in the spirit of
// consul-template ({{ with secret "kv/data/app" }}{{ .Data.data.password }}{{ end }}).
// It is pure: secrets come from a Source, the bytes go back to the caller.
// Missing keys are errors by default, and an error never yields partial output.
package render

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/template"
)

// Secret is one secret as Vault returned it, in the shape consul-template
// templates expect (.Data, .LeaseID, .LeaseDuration, .Renewable ...).
type Secret struct {
	RequestID     string
	LeaseID       string
	LeaseDuration int
	Renewable     bool
	Data          map[string]any
	Warnings      []string
	// KV2 marks a KV version 2 read: the fields are in Data["data"].
	KV2 bool
}

// Fields returns the secret's key/values: Data, or Data["data"] for KV v2.
func (s *Secret) Fields() map[string]any {
	if s == nil {
		return nil
	}
	if s.KV2 {
		if m, ok := s.Data["data"].(map[string]any); ok {
			return m
		}
		return map[string]any{}
	}
	return s.Data
}

// ErrPending is returned (wrapped) by a Source for a secret it has not
// fetched yet: the output is not rendered until it arrives.
var ErrPending = errors.New("secret not fetched yet")

// Source gives the secret at a Vault path, with write parameters for
// endpoints such as pki/issue/<role> ("common_name=example.com").
type Source interface {
	Secret(path string, params []string) (*Secret, error)
}

// Format is how an output is rendered.
type Format string

// Formats.
const (
	Raw      Format = "raw"
	JSON     Format = "json"
	Env      Format = "env"
	Template Format = "template"
)

// Formats lists the valid formats.
var Formats = []Format{Raw, JSON, Env, Template}

// Spec says what one output file contains.
type Spec struct {
	Format    Format
	Path      string   // secret path (raw, json, env)
	Params    []string // write parameters (raw, json, env)
	Key       string   // raw: the key whose value is the file
	EnvPrefix string   // env: prefix for every variable name
	Tmpl      *Tmpl    // template
}

// Render returns the contents of the output described by s.
func Render(s Spec, src Source) ([]byte, error) {
	if s.Format == Template {
		if s.Tmpl == nil {
			return nil, errors.New("render: template format without a template")
		}
		return s.Tmpl.Execute(src)
	}
	sec, err := src.Secret(s.Path, s.Params)
	if err != nil {
		return nil, err
	}
	fields := sec.Fields()
	switch s.Format {
	case Raw:
		v, ok := fields[s.Key]
		if !ok {
			return nil, fmt.Errorf("secret %s has no key %q (keys: %s)", s.Path, s.Key, strings.Join(keys(fields), ", "))
		}
		return valueBytes(v)
	case JSON:
		b, err := json.MarshalIndent(fields, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("secret %s: encode JSON: %w", s.Path, err)
		}
		return append(b, '\n'), nil
	case Env:
		return envFile(fields, s.EnvPrefix)
	}
	return nil, fmt.Errorf("render: unknown format %q", s.Format)
}

func keys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// valueBytes is a value as file content: a string as is, anything else as JSON.
func valueBytes(v any) ([]byte, error) {
	if s, ok := v.(string); ok {
		return []byte(s), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode value: %w", err)
	}
	return b, nil
}

// EnvName turns a secret key into an environment variable name: upper case,
// every character outside [A-Z0-9_] becomes '_', a leading digit gets '_'.
func EnvName(prefix, key string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(prefix + key) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	n := b.String()
	if n == "" || (n[0] >= '0' && n[0] <= '9') {
		n = "_" + n
	}
	return n
}

// envKeyOK refuses a key whose env name would not say which key it came
// from: a character other than ASCII letters, digits, '_', '-', '.' and '/'
// (they become '_', so "é" would be "_", a special variable in bash), or a
// name with no letter or digit at all ("_", "-", "__").
func envKeyOK(prefix, key string) error {
	word := false
	for _, r := range prefix + key {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			word = true
		case r == '_' || r == '-' || r == '.' || r == '/':
		default:
			return fmt.Errorf("key %q cannot be an env variable name: %q is not an ASCII letter, digit, '_', '-', '.' or '/' (use format json or a template)", key, r)
		}
	}
	if !word {
		return fmt.Errorf("key %q cannot be an env variable name: it has no letter or digit (it would be %s)", key, EnvName(prefix, key))
	}
	return nil
}

// envFile writes NAME=value lines sorted by name. A value that is not a
// plain word is single-quoted the POSIX shell way, so `set -a; . file` works.
func envFile(fields map[string]any, prefix string) ([]byte, error) {
	var b bytes.Buffer
	seen := map[string]string{}
	for _, k := range keys(fields) {
		name := EnvName(prefix, k)
		if err := envKeyOK(prefix, k); err != nil {
			return nil, err
		}
		if other, dup := seen[name]; dup {
			return nil, fmt.Errorf("keys %q and %q both become env variable %s", other, k, name)
		}
		seen[name] = k
		v, err := valueBytes(fields[k])
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(ShellQuote(string(v)))
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// ShellQuote returns s unchanged when it is a plain word, else single-quoted.
func ShellQuote(s string) string {
	plain := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-.,:/@%+=", r)) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Tmpl is a parsed template.
type Tmpl struct {
	name string
	t    *template.Template
}

// TemplateOptions tune template parsing.
type TemplateOptions struct {
	// MissingKeyZero renders a missing map key as its zero value instead of
	// failing (the default is to fail).
	MissingKeyZero bool
	// LeftDelim, RightDelim replace {{ and }} when set.
	LeftDelim, RightDelim string
}

// ParseTemplate parses text once; Execute may then run concurrently.
func ParseTemplate(name, text string, o TemplateOptions) (*Tmpl, error) {
	t := template.New(name).Funcs(funcs(nil))
	if o.LeftDelim != "" || o.RightDelim != "" {
		t = t.Delims(o.LeftDelim, o.RightDelim)
	}
	if o.MissingKeyZero {
		t = t.Option("missingkey=zero")
	} else {
		t = t.Option("missingkey=error")
	}
	t, err := t.Parse(text)
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	return &Tmpl{name: name, t: t}, nil
}

// Execute renders the template with secrets from src.
func (t *Tmpl) Execute(src Source) ([]byte, error) {
	c, err := t.t.Clone()
	if err != nil {
		return nil, err
	}
	c.Funcs(funcs(src))
	var b bytes.Buffer
	if err := c.Execute(&b, nil); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func funcs(src Source) template.FuncMap {
	return template.FuncMap{
		// secret "path" ["k=v" ...] — the secret at path (a write when params are given).
		"secret": func(path string, params ...string) (*Secret, error) {
			if src == nil {
				return nil, errors.New("no secret source")
			}
			return src.Secret(path, params)
		},
		"toJSON": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
		"toJSONPretty": func(v any) (string, error) {
			b, err := json.MarshalIndent(v, "", "  ")
			return string(b), err
		},
		"base64Encode": func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
		"base64Decode": func(s string) (string, error) {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return "", errors.New("base64Decode: input is not base64")
			}
			return string(b), nil
		},
		"trimSpace":  strings.TrimSpace,
		"split":      func(sep, s string) []string { return strings.Split(s, sep) },
		"join":       func(sep string, a []string) string { return strings.Join(a, sep) },
		"toUpper":    strings.ToUpper,
		"toLower":    strings.ToLower,
		"contains":   func(sub, s string) bool { return strings.Contains(s, sub) },
		"replaceAll": func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
		"indent": func(n int, s string) string {
			pad := strings.Repeat(" ", n)
			return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
		},
		"quote":      strconv.Quote,
		"shellQuote": ShellQuote,
		"env":        os.Getenv,
		"keys":       func(m map[string]any) []string { return keys(m) },
	}
}
