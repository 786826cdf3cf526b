// Package config loads a helper's configuration from flags, one environment
// variable per flag and an optional YAML file with the same keys, in that
// order of precedence (flag > env > file > default). Unknown flags, unknown
// YAML keys and bad values are errors that name the key and the value, and
// every problem is reported at once.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Loader binds a helper's options to flags, environment variables and YAML keys.
type Loader struct {
	helper    string
	envPrefix string
	fs        *flag.FlagSet
	opts      map[string]*option
	order     []string
	sections  map[string]*section
	configKey string
	source    map[string]string // name -> where its value came from
}

type option struct {
	name  string
	usage string
	env   []string
	value flag.Value
	list  bool
}

type section struct {
	name  string
	usage string
	ptr   any
}

// NewLoader returns a loader for helper; its environment variables are
// HELPER_FLAG_NAME (upper case, dashes to underscores). The --config flag
// (env HELPER_CONFIG) names the optional YAML file.
func NewLoader(helper string) *Loader {
	l := &Loader{
		helper:    helper,
		envPrefix: strings.ToUpper(strings.ReplaceAll(helper, "-", "_")) + "_",
		fs:        flag.NewFlagSet(helper, flag.ContinueOnError),
		opts:      map[string]*option{},
		sections:  map[string]*section{},
		configKey: "config",
		source:    map[string]string{},
	}
	l.fs.SetOutput(io.Discard)
	var cfg string
	l.String(&cfg, "config", "", "YAML file with the same keys as the flags")
	return l
}

// EnvName returns the environment variable bound to flag name.
func (l *Loader) EnvName(name string) string {
	return l.envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func (l *Loader) add(name, usage string, v flag.Value, list bool) {
	if _, dup := l.opts[name]; dup {
		panic("config: option registered twice: " + name)
	}
	l.fs.Var(v, name, usage)
	l.opts[name] = &option{name: name, usage: usage, env: []string{l.EnvName(name)}, value: v, list: list}
	l.order = append(l.order, name)
}

// String binds a string option.
func (l *Loader) String(p *string, name, def, usage string) {
	*p = def
	l.add(name, usage, (*stringValue)(p), false)
}

// Int binds an integer option.
func (l *Loader) Int(p *int, name string, def int, usage string) {
	*p = def
	l.add(name, usage, (*intValue)(p), false)
}

// Float binds a float option.
func (l *Loader) Float(p *float64, name string, def float64, usage string) {
	*p = def
	l.add(name, usage, (*floatValue)(p), false)
}

// Bool binds a boolean option (--name, --name=false, env true/false/1/0).
func (l *Loader) Bool(p *bool, name string, def bool, usage string) {
	*p = def
	l.add(name, usage, (*boolValue)(p), false)
}

// Duration binds a duration option ("250ms", "30s"; a bare number is seconds).
func (l *Loader) Duration(p *time.Duration, name string, def time.Duration, usage string) {
	*p = def
	l.add(name, usage, (*durationValue)(p), false)
}

// Strings binds a list option: the flag may repeat or hold a comma-separated
// list, the env var is comma-separated, the YAML key a list or a string.
func (l *Loader) Strings(p *[]string, name string, def []string, usage string) {
	*p = append([]string(nil), def...)
	l.add(name, usage, &listValue{p: p}, true)
}

// Var binds a custom flag.Value.
func (l *Loader) Var(v flag.Value, name, usage string) { l.add(name, usage, v, false) }

// Env adds more environment variables read for option name, after its own
// (e.g. VAULT_ADDR for ambassador's vault-addr). Earlier names win.
func (l *Loader) Env(name string, envs ...string) {
	o, ok := l.opts[name]
	if !ok {
		panic("config: Env for unknown option " + name)
	}
	o.env = append(o.env, envs...)
}

// Section binds a structured YAML-only key (routes, clusters, secrets ...),
// decoded strictly into ptr: unknown fields are errors.
func (l *Loader) Section(ptr any, name, usage string) {
	l.sections[name] = &section{name: name, usage: usage, ptr: ptr}
}

// Source says where option name got its value: "flag --x", "env X",
// "config file key x" or "default".
func (l *Loader) Source(name string) string {
	if s, ok := l.source[name]; ok {
		return s
	}
	return "default"
}

// ConfigFile returns the YAML file named by --config (or its env var), "" if none.
func (l *Loader) ConfigFile() string { return l.opts[l.configKey].value.String() }

// IsSet reports whether option name was given by flag, env or file.
func (l *Loader) IsSet(name string) bool { _, ok := l.source[name]; return ok }

// Parse reads args (without the program name), then env (os.Environ form),
// then the YAML file named by --config. It returns the remaining positional
// arguments and every problem found, joined.
func (l *Loader) Parse(args, env []string) ([]string, error) {
	if err := l.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, flag.ErrHelp
		}
		return nil, fmt.Errorf("%s: %w", l.helper, err)
	}
	l.fs.Visit(func(f *flag.Flag) { l.source[f.Name] = "flag --" + f.Name })
	var problems []error

	envMap := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			envMap[k] = v
		}
	}
	for _, name := range l.order {
		if l.IsSet(name) {
			continue
		}
		o := l.opts[name]
		for _, e := range o.env {
			v, ok := envMap[e]
			if !ok {
				continue
			}
			if err := setAll(o, v, true); err != nil {
				problems = append(problems, fmt.Errorf("env %s=%q: %v", e, v, err))
			}
			l.source[name] = "env " + e
			break
		}
	}

	path := l.opts[l.configKey].value.String()
	if path != "" {
		problems = append(problems, l.loadFile(path)...)
	}
	return l.fs.Args(), errors.Join(problems...)
}

func setAll(o *option, v string, split bool) error {
	if lv, ok := o.value.(*listValue); ok {
		lv.reset()
		if !split {
			return lv.Set(v)
		}
		if strings.TrimSpace(v) == "" {
			return nil
		}
	}
	return o.value.Set(v)
}

func (l *Loader) loadFile(path string) []error {
	data, err := os.ReadFile(path)
	if err != nil {
		return []error{fmt.Errorf("config file: %w", err)}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return []error{fmt.Errorf("config file %s: %v", path, err)}
	}
	if root.Kind == 0 { // empty file
		return nil
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return []error{fmt.Errorf("config file %s: top level must be a mapping of keys", path)}
	}
	var problems []error
	seen := map[string]bool{}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		key := k.Value
		where := fmt.Sprintf("config file %s line %d: key %q", path, k.Line, key)
		if seen[key] {
			problems = append(problems, fmt.Errorf("%s: appears twice", where))
			continue
		}
		seen[key] = true
		if key == l.configKey {
			problems = append(problems, fmt.Errorf("%s: a config file cannot name another", where))
			continue
		}
		if s, ok := l.sections[key]; ok {
			if err := decodeStrict(v, s.ptr); err != nil {
				problems = append(problems, fmt.Errorf("%s: %v", where, err))
			}
			l.source[key] = "config file key " + key
			continue
		}
		o, ok := l.opts[key]
		if !ok {
			problems = append(problems, fmt.Errorf("%s: unknown key (known: %s)", where, strings.Join(l.keys(), ", ")))
			continue
		}
		if l.IsSet(key) { // flag or env wins
			continue
		}
		if err := setNode(o, v); err != nil {
			problems = append(problems, fmt.Errorf("%s: %v", where, err))
		}
		l.source[key] = "config file key " + key
	}
	return problems
}

func setNode(o *option, v *yaml.Node) error {
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			return nil
		}
		return setAll(o, v.Value, o.list)
	case yaml.SequenceNode:
		lv, ok := o.value.(*listValue)
		if !ok {
			return fmt.Errorf("want a single value, got a list")
		}
		lv.reset()
		for _, item := range v.Content {
			if item.Kind != yaml.ScalarNode {
				return fmt.Errorf("list items must be plain values (line %d)", item.Line)
			}
			if err := lv.Set(item.Value); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("want a plain value, got a mapping")
}

func decodeStrict(n *yaml.Node, ptr any) error {
	raw, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(ptr); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

func (l *Loader) keys() []string {
	var ks []string
	for _, n := range l.order {
		if n != l.configKey {
			ks = append(ks, n)
		}
	}
	for n := range l.sections {
		ks = append(ks, n)
	}
	sort.Strings(ks)
	return ks
}

// Usage writes every option with its env var and default.
func (l *Loader) Usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s [subcommand] [flags]\n\nSubcommands: run (default), validate, wait, version\n\nFlags (each also read from its env var and the --config YAML key of the same name):\n", l.helper)
	for _, n := range l.order {
		o := l.opts[n]
		def := l.fs.Lookup(n).DefValue
		fmt.Fprintf(w, "  --%s (env %s)", n, strings.Join(o.env, ", "))
		if def != "" && def != "[]" {
			fmt.Fprintf(w, " [default %s]", def)
		}
		fmt.Fprintf(w, "\n      %s\n", o.usage)
	}
	if len(l.sections) > 0 {
		fmt.Fprintf(w, "\nYAML-only keys:\n")
		var names []string
		for n := range l.sections {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(w, "  %s: %s\n", n, l.sections[n].usage)
		}
	}
}

// Problems collects validation problems, each naming the key and its value.
type Problems []error

// Add records that key's value is wrong.
func (p *Problems) Add(key string, value any, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s %q: %s", key, fmt.Sprint(value), fmt.Sprintf(format, args...)))
}

// Addf records a problem not tied to a single value.
func (p *Problems) Addf(format string, args ...any) { *p = append(*p, fmt.Errorf(format, args...)) }

// Err returns the problems joined, or nil.
func (p Problems) Err() error { return errors.Join(p...) }

type stringValue string

func (s *stringValue) Set(v string) error { *s = stringValue(v); return nil }
func (s *stringValue) String() string     { return string(*s) }

type intValue int

func (i *intValue) Set(v string) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("not a whole number")
	}
	*i = intValue(n)
	return nil
}
func (i *intValue) String() string { return strconv.Itoa(int(*i)) }

type floatValue float64

func (f *floatValue) Set(v string) error {
	n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil {
		return fmt.Errorf("not a number")
	}
	*f = floatValue(n)
	return nil
}
func (f *floatValue) String() string { return strconv.FormatFloat(float64(*f), 'g', -1, 64) }

type boolValue bool

func (b *boolValue) Set(v string) error {
	n, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("not true or false")
	}
	*b = boolValue(n)
	return nil
}
func (b *boolValue) String() string   { return strconv.FormatBool(bool(*b)) }
func (b *boolValue) IsBoolFlag() bool { return true }

type durationValue time.Duration

func (d *durationValue) Set(v string) error {
	v = strings.TrimSpace(v)
	if n, err := strconv.ParseFloat(v, 64); err == nil {
		*d = durationValue(time.Duration(n * float64(time.Second)))
		return nil
	}
	x, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("not a duration (e.g. 250ms, 30s, 5m)")
	}
	*d = durationValue(x)
	return nil
}
func (d *durationValue) String() string { return time.Duration(*d).String() }

type listValue struct {
	p       *[]string
	touched bool
}

func (l *listValue) reset() { *l.p = nil; l.touched = true }

func (l *listValue) Set(v string) error {
	if !l.touched {
		*l.p = nil
		l.touched = true
	}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l.p = append(*l.p, s)
		}
	}
	return nil
}

func (l *listValue) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}
