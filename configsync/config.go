package configsync

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sidecarkit/sidecarkit/configsync/render"
	"github.com/sidecarkit/sidecarkit/configsync/source"
	"github.com/sidecarkit/sidecarkit/configsync/syncer"
	"github.com/sidecarkit/sidecarkit/configsync/watch"
	"github.com/sidecarkit/sidecarkit/shared/config"
	"github.com/sidecarkit/sidecarkit/shared/notify"
	"github.com/sidecarkit/sidecarkit/shared/publish"
)

// Config is configsync's whole configuration.
type Config struct {
	Source string // CONFIG_SOURCE: consul://host:port/prefix, mirrored to Dest
	Dest   string

	ConsulAddr    string
	Token         string
	TokenFile     string
	CACert        string
	ClientCert    string
	ClientKey     string
	TLSServerName string
	TLSSkipVerify bool
	Datacenter    string
	Consistency   string // default, stale, consistent

	Trees     []string // PREFIX=DIR
	Files     []string // KEY=PATH
	Templates []string // TEMPLATE_FILE=PATH
	Outputs   []OutputSpec

	SyncInterval time.Duration
	Blocking     bool
	WaitMin      time.Duration
	WaitMax      time.Duration
	Mode         string
	Owner        string
	AllowMissing bool
	SkipBadKeys  bool
	Once         bool
	TrimMemory   bool

	Notify notify.Options
}

// OutputSpec is one entry of the YAML-only `outputs` list: exactly one of
// tree, key, template, and dest; mode and owner override the global ones.
type OutputSpec struct {
	Tree     string `yaml:"tree"`
	Key      string `yaml:"key"`
	Template string `yaml:"template"`
	Dest     string `yaml:"dest"`
	Mode     string `yaml:"mode"`
	Owner    string `yaml:"owner"`
}

// Bind registers configsync's options.
func Bind(l *config.Loader, c *Config) {
	l.String(&c.Source, "source", "", "consul://host:port/prefix (consul+https:// for TLS; ?dc=, ?stale, ?consistent): mirror the prefix as a tree at --dest")
	l.Env("source", "CONFIG_SOURCE")
	l.String(&c.Dest, "dest", "/config/current", "where --source's tree is published: a symlink to the current version directory")
	l.String(&c.ConsulAddr, "consul-addr", "127.0.0.1:8500", "Consul HTTP address (host:port or http(s)://host:port); --source's host wins when set")
	l.Env("consul-addr", "CONSUL_HTTP_ADDR")
	l.String(&c.Token, "consul-token", "", "Consul ACL token")
	l.Env("consul-token", "CONSUL_HTTP_TOKEN")
	l.String(&c.TokenFile, "consul-token-file", "", "file holding the Consul ACL token")
	l.Env("consul-token-file", "CONSUL_HTTP_TOKEN_FILE")
	l.String(&c.CACert, "consul-cacert", "", "CA certificate file to verify Consul's TLS certificate")
	l.Env("consul-cacert", "CONSUL_CACERT")
	l.String(&c.ClientCert, "consul-client-cert", "", "client certificate file for Consul mTLS")
	l.Env("consul-client-cert", "CONSUL_CLIENT_CERT")
	l.String(&c.ClientKey, "consul-client-key", "", "client key file for Consul mTLS")
	l.Env("consul-client-key", "CONSUL_CLIENT_KEY")
	l.String(&c.TLSServerName, "consul-tls-server-name", "", "server name to verify in Consul's certificate")
	l.Env("consul-tls-server-name", "CONSUL_TLS_SERVER_NAME")
	l.Bool(&c.TLSSkipVerify, "consul-tls-skip-verify", false, "do not verify Consul's certificate (testing only)")
	l.String(&c.Datacenter, "consul-datacenter", "", "Consul datacenter to read from (default: the agent's)")
	l.String(&c.Consistency, "consistency", "default", "read consistency: default, stale (any server answers) or consistent")
	l.Strings(&c.Trees, "tree", nil, "PREFIX=DIR: mirror a KV prefix as a directory tree behind the symlink DIR (repeatable)")
	l.Strings(&c.Files, "file", nil, "KEY=PATH: write one key's value to PATH (repeatable)")
	l.Strings(&c.Templates, "template", nil, "TEMPLATE=PATH: render a Go text/template file to PATH (repeatable)")
	l.Section(&c.Outputs, "outputs", "list of {tree|key|template, dest, mode, owner}")
	l.Duration(&c.SyncInterval, "sync-interval", time.Minute, "longest a blocking query waits before reading again; with --blocking=false the poll interval")
	l.Env("sync-interval", "SYNC_INTERVAL")
	l.Bool(&c.Blocking, "blocking", true, "use Consul blocking queries (a change arrives in milliseconds); false: poll every --sync-interval")
	l.Duration(&c.WaitMin, "wait-min", 0, "quiescence: render this long after the last change (0: at once)")
	l.Duration(&c.WaitMax, "wait-max", 0, "quiescence: render at the latest this long after the first change (default 4x --wait-min)")
	l.String(&c.Mode, "mode", "0644", "file mode of published files (octal)")
	l.String(&c.Owner, "owner", "", "owner of published files: uid:gid or user:group (default: unchanged)")
	l.Bool(&c.AllowMissing, "allow-missing", false, "render a missing key as empty (and an empty prefix as an empty tree) instead of failing")
	l.Bool(&c.SkipBadKeys, "skip-bad-keys", false, "publish a tree without the keys that cannot be files (.., //, too long, both file and directory) instead of holding the whole tree; GET /status and sidecarkit_configsync_skipped_keys name them")
	l.Bool(&c.Once, "once", false, "render once and exit: 0 when every output was written, 2 when a key is missing")
	l.Bool(&c.TrimMemory, "trim-memory", true, "after the first sync, drop the executable's start-up pages from RSS (they stay in the page cache)")
	c.Notify.Bind(l)
}

// Validate reports every problem in c.
func Validate(l *config.Loader, c *Config) error {
	var p config.Problems
	c.check(&p)
	return p.Err()
}

func (c *Config) check(p *config.Problems) {
	if _, err := c.consulOptions(); err != nil {
		p.Add("source", source.Redact(c.Source), "%v", err)
	}
	if c.Source == "" {
		if err := checkAddr(c.ConsulAddr); err != nil {
			p.Add("consul-addr", c.ConsulAddr, "%v", err)
		}
	}
	switch c.Consistency {
	case "default", "stale", "consistent":
	default:
		p.Add("consistency", c.Consistency, "want default, stale or consistent")
	}
	if c.TokenFile != "" {
		if st, err := os.Stat(c.TokenFile); err != nil || st.IsDir() {
			p.Add("consul-token-file", c.TokenFile, "not a readable file")
		}
	}
	for k, f := range map[string]string{"consul-cacert": c.CACert, "consul-client-cert": c.ClientCert, "consul-client-key": c.ClientKey} {
		if f != "" {
			if _, err := os.Stat(f); err != nil {
				p.Add(k, f, "%v", err)
			}
		}
	}
	if (c.ClientCert == "") != (c.ClientKey == "") {
		p.Addf("consul-client-cert and consul-client-key go together")
	}
	if c.SyncInterval <= 0 {
		p.Add("sync-interval", c.SyncInterval, "must be positive")
	}
	if c.WaitMin < 0 {
		p.Add("wait-min", c.WaitMin, "must not be negative")
	}
	if c.WaitMax < 0 || (c.WaitMax > 0 && c.WaitMax < c.WaitMin) {
		p.Add("wait-max", c.WaitMax, "must be at least --wait-min (%s)", c.WaitMin)
	}
	outs, probs := c.outputs()
	*p = append(*p, probs...)
	if len(outs) == 0 && len(probs) == 0 {
		p.Addf("nothing to sync: set --source (CONFIG_SOURCE), --tree, --file, --template or the outputs list")
	}
	c.Notify.Validate(p)
}

func checkAddr(a string) error {
	a = strings.TrimPrefix(strings.TrimPrefix(a, "http://"), "https://")
	if a == "" || strings.ContainsAny(a, "/ ?#") {
		return fmt.Errorf("want host:port or http(s)://host:port")
	}
	return nil
}

// consulOptions resolves how to reach Consul from the source URL, the flags
// and the ecosystem's variables.
func (c *Config) consulOptions() (watch.ConsulOptions, error) {
	o := watch.ConsulOptions{
		Address: c.ConsulAddr, Token: c.Token, TokenFile: c.TokenFile, Datacenter: c.Datacenter,
		CACert: c.CACert, ClientCert: c.ClientCert, ClientKey: c.ClientKey, TLSServerName: c.TLSServerName, TLSSkipVerify: c.TLSSkipVerify,
		Stale: c.Consistency == "stale", Consistent: c.Consistency == "consistent",
	}
	if c.CACert != "" || c.ClientCert != "" {
		o.Scheme = "https"
	}
	if strings.HasPrefix(o.Address, "https://") {
		o.Scheme = "https"
	}
	if c.Source == "" {
		return o, nil
	}
	u, err := source.ParseURL(c.Source)
	if err != nil {
		return o, err
	}
	o.Address, o.Scheme = u.Address, u.Scheme
	if u.Datacenter != "" {
		o.Datacenter = u.Datacenter
	}
	if u.Stale {
		o.Stale, o.Consistent = true, false
	}
	if u.Consistent {
		o.Stale, o.Consistent = false, true
	}
	return o, nil
}

// outputs builds every output (reading template files), with every problem.
func (c *Config) outputs() ([]syncer.Output, config.Problems) {
	var p config.Problems
	defMode, err := parseMode(c.Mode)
	if err != nil {
		p.Add("mode", c.Mode, "%v", err)
	}
	defUID, defGID, defChown, err := parseOwner(c.Owner)
	if err != nil {
		p.Add("owner", c.Owner, "%v", err)
	}
	var outs []syncer.Output
	seenDest := map[string]string{}
	add := func(key string, kind syncer.Kind, src, dest, mode, owner string) {
		o := syncer.Output{Kind: kind, Source: src, Dest: dest,
			Publish: publish.Options{Mode: defMode, UID: defUID, GID: defGID, Chown: defChown}}
		if mode != "" {
			m, err := parseMode(mode)
			if err != nil {
				p.Add(key+" mode", mode, "%v", err)
			}
			o.Publish.Mode = m
		}
		if owner != "" {
			u, g, ch, err := parseOwner(owner)
			if err != nil {
				p.Add(key+" owner", owner, "%v", err)
			}
			o.Publish.UID, o.Publish.GID, o.Publish.Chown = u, g, ch
		}
		if dest == "" || !filepath.IsAbs(dest) {
			p.Add(key, dest, "destination must be an absolute path")
			return
		}
		dest = filepath.Clean(dest)
		o.Dest = dest
		if prev, dup := seenDest[dest]; dup {
			p.Add(key, dest, "destination already used by %s", prev)
			return
		}
		seenDest[dest] = key
		if st, err := os.Lstat(dest); err == nil && st.IsDir() {
			if kind == syncer.Tree {
				p.Add(key, dest, "is a directory; a tree is published as a symlink that is swapped atomically: name a path inside the volume, e.g. %s", filepath.Join(dest, "current"))
			} else {
				p.Add(key, dest, "is a directory, not a file path")
			}
			return
		}
		switch kind {
		case syncer.Tree:
			if err := source.CheckPrefix(src); err != nil {
				p.Add(key, src, "%v", err)
				return
			}
			o.Source = source.NormalizePrefix(src)
			if dest == "/" {
				p.Add(key, dest, "a tree needs a symlink path, not /")
				return
			}
		case syncer.File:
			if err := source.CheckPrefix(src); err != nil || src == "" || strings.HasSuffix(src, "/") {
				p.Add(key, src, "not a key name")
				return
			}
		case syncer.Template:
			b, err := os.ReadFile(src)
			if err != nil {
				p.Add(key, src, "read template: %v", err)
				return
			}
			t, err := render.Parse(src, string(b))
			if err != nil {
				p.Add(key, src, "%v", err)
				return
			}
			o.Template = t
		}
		outs = append(outs, o)
	}
	if c.Source != "" {
		if u, err := source.ParseURL(c.Source); err == nil {
			add("dest", syncer.Tree, u.Prefix, c.Dest, "", "")
		}
	}
	for _, list := range []struct {
		key  string
		kind syncer.Kind
		vals []string
	}{{"tree", syncer.Tree, c.Trees}, {"file", syncer.File, c.Files}, {"template", syncer.Template, c.Templates}} {
		for _, v := range list.vals {
			m, err := source.ParseMapping(v)
			if err != nil {
				p.Add(list.key, v, "%v", err)
				continue
			}
			add(list.key, list.kind, m.From, m.To, "", "")
		}
	}
	for i, s := range c.Outputs {
		key := fmt.Sprintf("outputs[%d]", i)
		n := 0
		var kind syncer.Kind
		var src string
		if s.Tree != "" {
			n, kind, src = n+1, syncer.Tree, s.Tree
		}
		if s.Key != "" {
			n, kind, src = n+1, syncer.File, s.Key
		}
		if s.Template != "" {
			n, kind, src = n+1, syncer.Template, s.Template
		}
		if n != 1 {
			p.Addf("%s: set exactly one of tree, key, template", key)
			continue
		}
		add(key, kind, src, s.Dest, s.Mode, s.Owner)
	}
	return outs, p
}

func parseMode(s string) (fs.FileMode, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 8, 32)
	if err != nil || n > 0o777 || n == 0 {
		return 0, fmt.Errorf("want an octal permission like 0644 or 0600")
	}
	return fs.FileMode(n), nil
}

// parseOwner accepts uid:gid, user:group, uid or user ("" leaves owners alone).
func parseOwner(s string) (uid, gid int, chown bool, err error) {
	if s == "" {
		return -1, -1, false, nil
	}
	us, gs, hasGroup := strings.Cut(s, ":")
	uid, err = lookupID(us, func(n string) (string, error) {
		u, err := user.Lookup(n)
		if err != nil {
			return "", err
		}
		return u.Uid, nil
	})
	if err != nil {
		return 0, 0, false, err
	}
	gid = -1
	if hasGroup {
		gid, err = lookupID(gs, func(n string) (string, error) {
			g, err := user.LookupGroup(n)
			if err != nil {
				return "", err
			}
			return g.Gid, nil
		})
		if err != nil {
			return 0, 0, false, err
		}
	}
	return uid, gid, true, nil
}

func lookupID(s string, byName func(string) (string, error)) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("want uid:gid or user:group")
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("id %d is negative", n)
		}
		return n, nil
	}
	id, err := byName(s)
	if err != nil {
		return 0, fmt.Errorf("unknown user or group %q", s)
	}
	return strconv.Atoi(id)
}
