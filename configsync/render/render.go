// Package render turns what the brain knows into file contents — the pure
// core of configsync. A template declares its dependencies by executing
// against the view: every key, ls, tree or service call names one. An
// execution that touched an unknown dependency is incomplete and is not
// published; the watchers fetch what it named and the template runs again.
package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/template"

	"github.com/sidecarkit/sidecarkit/configsync/brain"
	"github.com/sidecarkit/sidecarkit/configsync/source"
)

// Result is one render of one output.
type Result struct {
	Files   map[string][]byte // tree outputs: relative path → content
	Data    []byte            // file and template outputs
	Deps    []brain.Dep       // everything the render read (known or not)
	Missing []brain.Dep       // dependencies not known yet: the render is incomplete
	Err     error             // a complete render that failed (missing key, bad template data)
	Skipped []string          // tree outputs with skip-bad-keys: the keys left out, each with why
}

// Complete reports whether every dependency was known.
func (r Result) Complete() bool { return len(r.Missing) == 0 }

// ErrMissing marks a key that does not exist in Consul.
var ErrMissing = errors.New("not found in Consul")

// Tree renders every key below prefix as a file (key path → file path).
// An empty prefix is an error unless allowEmpty.
func Tree(v brain.View, prefix string, allowEmpty bool) Result {
	return TreeOpts(v, prefix, allowEmpty, false)
}

// TreeOpts is Tree; with skipBad a key that cannot be a file is left out
// (and named in Result.Skipped) instead of failing the whole tree.
func TreeOpts(v brain.View, prefix string, allowEmpty, skipBad bool) Result {
	prefix = source.NormalizePrefix(prefix)
	dep := brain.Dep{Kind: brain.Prefix, Name: prefix}
	r := Result{Deps: []brain.Dep{dep}}
	d, ok := v.Get(dep)
	if !ok {
		r.Missing = r.Deps
		return r
	}
	var bad []error
	r.Files, bad = treeFiles(prefix, d.Pairs)
	if len(bad) > 0 {
		if !skipBad {
			r.Files, r.Err = nil, errors.Join(bad...)
			return r
		}
		for _, e := range bad {
			r.Skipped = append(r.Skipped, e.Error())
		}
	}
	if len(r.Files) == 0 && !allowEmpty {
		r.Err = fmt.Errorf("prefix %q: no keys: %w", prefix, ErrMissing)
	}
	return r
}

// TreeFiles maps pairs below prefix to files. Folder keys are skipped; a key
// that cannot be a path, or a key that is both a file and a directory
// ("a" and "a/b"), is an error naming the key.
func TreeFiles(prefix string, pairs []brain.KV) (map[string][]byte, error) {
	files, bad := treeFiles(prefix, pairs)
	if len(bad) > 0 {
		return nil, errors.Join(bad...)
	}
	return files, nil
}

// treeFiles maps the good keys to files and returns one error per bad key
// (which is left out).
func treeFiles(prefix string, pairs []brain.KV) (map[string][]byte, []error) {
	files := make(map[string][]byte, len(pairs))
	var errs []error
	for _, p := range pairs {
		path, skip, err := source.KeyPath(prefix, p.Key)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if skip {
			continue
		}
		if _, dup := files[path]; dup {
			errs = append(errs, fmt.Errorf("key %q: appears twice", p.Key))
			continue
		}
		files[path] = p.Value
	}
	// A file may not also be a directory: the file's key is the bad one.
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for i := 0; i+1 < len(paths); i++ {
		for j := i + 1; j < len(paths) && strings.HasPrefix(paths[j], paths[i]); j++ {
			if strings.HasPrefix(paths[j], paths[i]+"/") {
				errs = append(errs, fmt.Errorf("key %q is a file but key %q needs it to be a directory", prefix+paths[i], prefix+paths[j]))
				delete(files, paths[i])
				break
			}
		}
	}
	return files, errs
}

// Key renders one key's value. A missing key is an error unless allowMissing
// (then the file is empty).
func Key(v brain.View, key string, allowMissing bool) Result {
	dep := brain.Dep{Kind: brain.Key, Name: key}
	r := Result{Deps: []brain.Dep{dep}}
	d, ok := v.Get(dep)
	switch {
	case !ok:
		r.Missing = r.Deps
	case !d.Exists && !allowMissing:
		r.Err = fmt.Errorf("key %q: %w", key, ErrMissing)
	default:
		r.Data = d.Value
	}
	return r
}

// Template is a parsed Go text/template with configsync's functions.
type Template struct {
	name string
	t    *template.Template
}

// Functions every template can call (documented in the README).
var funcNames = []string{"key", "keyOrDefault", "keyExists", "ls", "tree", "service", "env", "toJSON", "toJSONPretty", "parseJSON", "trimPrefix", "trimSuffix", "split", "join", "contains", "replace", "toUpper", "toLower"}

// Parse parses template text; name is used in errors (usually the file).
func Parse(name, text string) (*Template, error) {
	stub := template.FuncMap{}
	for _, n := range funcNames {
		stub[n] = func(...any) (any, error) { return nil, nil }
	}
	t, err := template.New(name).Option("missingkey=error").Funcs(stub).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	return &Template{name: name, t: t}, nil
}

// Name is the template's name.
func (t *Template) Name() string { return t.name }

// KeyPair is what ls and tree give a template: Key relative to the prefix,
// Path the full key, Value the value as a string.
type KeyPair struct {
	Key   string
	Path  string
	Value string
}

// Execute renders t against v. env is what the env function sees.
// allowMissing makes key of a missing key return "" instead of an error.
func (t *Template) Execute(v brain.View, env map[string]string, allowMissing bool) Result {
	var r Result
	seen := map[brain.Dep]bool{}
	get := func(d brain.Dep) (brain.Data, bool) {
		if !seen[d] {
			seen[d] = true
			r.Deps = append(r.Deps, d)
		}
		data, ok := v.Get(d)
		if !ok {
			r.Missing = appendOnce(r.Missing, d)
		}
		return data, ok
	}
	list := func(prefix string, recursive bool) ([]KeyPair, error) {
		if err := source.CheckPrefix(prefix); err != nil {
			return nil, err
		}
		p := source.NormalizePrefix(prefix)
		d, ok := get(brain.Dep{Kind: brain.Prefix, Name: p})
		if !ok {
			return nil, nil
		}
		out := []KeyPair{}
		for _, kv := range d.Pairs {
			rel := strings.TrimPrefix(kv.Key, p)
			if rel == "" || strings.HasSuffix(rel, "/") {
				continue
			}
			if !recursive && strings.Contains(rel, "/") {
				continue
			}
			out = append(out, KeyPair{Key: rel, Path: kv.Key, Value: string(kv.Value)})
		}
		return out, nil
	}
	funcs := template.FuncMap{
		"key": func(k string) (string, error) {
			d, ok := get(brain.Dep{Kind: brain.Key, Name: k})
			if ok && !d.Exists && !allowMissing {
				return "", fmt.Errorf("key %q: %w", k, ErrMissing)
			}
			return string(d.Value), nil
		},
		"keyOrDefault": func(k, def string) string {
			d, ok := get(brain.Dep{Kind: brain.Key, Name: k})
			if ok && !d.Exists {
				return def
			}
			return string(d.Value)
		},
		"keyExists": func(k string) bool {
			d, _ := get(brain.Dep{Kind: brain.Key, Name: k})
			return d.Exists
		},
		"ls":   func(p string) ([]KeyPair, error) { return list(p, false) },
		"tree": func(p string) ([]KeyPair, error) { return list(p, true) },
		"service": func(name string) ([]brain.Instance, error) {
			if _, _, err := SplitService(name); err != nil {
				return nil, err
			}
			d, _ := get(brain.Dep{Kind: brain.Service, Name: name})
			if d.Instances == nil {
				return []brain.Instance{}, nil
			}
			return d.Instances, nil
		},
		"env": func(k string) string { return env[k] },
		"toJSON": func(x any) (string, error) {
			b, err := json.Marshal(x)
			return string(b), err
		},
		"toJSONPretty": func(x any) (string, error) {
			b, err := json.MarshalIndent(x, "", "  ")
			return string(b), err
		},
		"parseJSON": func(s string) (any, error) {
			if s == "" {
				return map[string]any{}, nil
			}
			return ParseJSON([]byte(s))
		},
		"trimPrefix": func(p, s string) string { return strings.TrimPrefix(s, p) },
		"trimSuffix": func(p, s string) string { return strings.TrimSuffix(s, p) },
		"split":      func(sep, s string) []string { return strings.Split(s, sep) },
		"join":       func(sep string, xs []string) string { return strings.Join(xs, sep) },
		"contains":   func(sub, s string) bool { return strings.Contains(s, sub) },
		"replace":    func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
		"toUpper":    strings.ToUpper,
		"toLower":    strings.ToLower,
	}
	tt, err := t.t.Clone()
	if err != nil {
		r.Err = err
		return r
	}
	var buf bytes.Buffer
	err = tt.Funcs(funcs).Execute(&buf, nil)
	if len(r.Missing) > 0 {
		return r // incomplete: errors may be the consequence of unknown data
	}
	if err != nil {
		r.Err = fmt.Errorf("render %s: %w", t.name, err)
		return r
	}
	r.Data = buf.Bytes()
	return r
}

func appendOnce(ds []brain.Dep, d brain.Dep) []brain.Dep {
	for _, x := range ds {
		if x == d {
			return ds
		}
	}
	return append(ds, d)
}

// SplitService parses "name" or "tag.name" as consul-template does.
func SplitService(s string) (name, tag string, err error) {
	if s == "" {
		return "", "", errors.New("service: empty name")
	}
	if i := strings.LastIndexByte(s, '.'); i >= 0 {
		tag, name = s[:i], s[i+1:]
		if tag == "" || name == "" {
			return "", "", fmt.Errorf("service %q: want name or tag.name", s)
		}
	} else {
		name = s
	}
	for _, r := range s {
		if r <= ' ' || r == '/' || r == '?' || r == '#' || r == 0x7f {
			return "", "", fmt.Errorf("service %q: bad character %q", s, r)
		}
	}
	return name, tag, nil
}

// ParseJSON decodes one JSON value (KV values handed to parseJSON); trailing
// data is an error.
func ParseJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("parseJSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("parseJSON: trailing data after the JSON value")
	}
	return v, nil
}
