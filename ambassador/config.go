package ambassador

import (
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sidecarkit/sidecarkit/ambassador/apiproxy"
	"github.com/sidecarkit/sidecarkit/ambassador/dest"
	"github.com/sidecarkit/sidecarkit/ambassador/render"
	"github.com/sidecarkit/sidecarkit/ambassador/secrets"
	"github.com/sidecarkit/sidecarkit/shared/config"
	"github.com/sidecarkit/sidecarkit/shared/notify"
)

// Config is the ambassador's whole configuration.
type Config struct {
	// Vault connection.
	VaultAddr     string
	CACert        string
	CAPath        string
	ClientCert    string
	ClientKey     string
	TLSServerName string
	TLSSkipVerify bool
	Namespace     string
	VaultTimeout  time.Duration

	// Auth.
	AuthMethod         string // kubernetes, approle, token; "" picks from what is set
	AuthMount          string
	K8sRole            string
	K8sJWTFile         string
	RoleIDFile         string
	SecretIDFile       string
	RemoveSecretIDFile bool
	TokenFile          string
	Token              string
	TokenSink          string
	TokenIncrement     time.Duration

	// Secrets.
	Secrets          []SecretSpec // YAML section "secrets"
	SecretFlags      []string     // --secret DEST=PATH[#KEY]
	StaticRefresh    time.Duration
	FileMode         string
	FileUID          int
	FileGID          int
	RequireTmpfs     bool
	ExitAfterRender  bool
	RevokeOnShutdown bool

	// API proxy.
	ProxyAddr        string
	ProxyToken       string
	ProxyAllowRemote bool
	ProxyTimeout     time.Duration

	Notify notify.Options

	// Outputs is built by Validate from Secrets and SecretFlags.
	Outputs []secrets.Output
}

// SecretSpec is one entry of the YAML "secrets:" list: one file.
type SecretSpec struct {
	Name         string            `yaml:"name"`
	Path         string            `yaml:"path"`
	Params       map[string]string `yaml:"params"`
	Version      int               `yaml:"version"`
	Destination  string            `yaml:"destination"`
	Format       string            `yaml:"format"`
	Key          string            `yaml:"key"`
	EnvPrefix    string            `yaml:"env_prefix"`
	Template     string            `yaml:"template"`
	TemplateFile string            `yaml:"template_file"`
	MissingKey   string            `yaml:"missing_key"`
	LeftDelim    string            `yaml:"left_delimiter"`
	RightDelim   string            `yaml:"right_delimiter"`
	Mode         string            `yaml:"mode"`
	UID          *int              `yaml:"uid"`
	GID          *int              `yaml:"gid"`
}

// Bind registers every option.
func Bind(l *config.Loader, c *Config) {
	l.String(&c.VaultAddr, "vault-addr", "", "Vault address, e.g. https://vault.vault:8200")
	l.Env("vault-addr", "VAULT_ADDR")
	l.String(&c.CACert, "vault-cacert", "", "PEM CA bundle that signs Vault's certificate")
	l.Env("vault-cacert", "VAULT_CACERT")
	l.String(&c.CAPath, "vault-capath", "", "directory of PEM CA certificates")
	l.Env("vault-capath", "VAULT_CAPATH")
	l.String(&c.ClientCert, "vault-client-cert", "", "PEM client certificate for TLS to Vault")
	l.Env("vault-client-cert", "VAULT_CLIENT_CERT")
	l.String(&c.ClientKey, "vault-client-key", "", "PEM key of --vault-client-cert")
	l.Env("vault-client-key", "VAULT_CLIENT_KEY")
	l.String(&c.TLSServerName, "vault-tls-server-name", "", "SNI name for Vault's TLS")
	l.Env("vault-tls-server-name", "VAULT_TLS_SERVER_NAME")
	l.Bool(&c.TLSSkipVerify, "vault-skip-verify", false, "do not verify Vault's certificate (never in production)")
	l.Env("vault-skip-verify", "VAULT_SKIP_VERIFY")
	l.String(&c.Namespace, "vault-namespace", "", "Vault Enterprise namespace")
	l.Env("vault-namespace", "VAULT_NAMESPACE")
	l.Duration(&c.VaultTimeout, "vault-timeout", 30*time.Second, "timeout of one Vault request")

	l.String(&c.AuthMethod, "auth-method", "", "kubernetes, approle or token (default: picked from the options set)")
	l.String(&c.AuthMount, "auth-mount", "", "auth method mount path (default: the method's name)")
	l.String(&c.K8sRole, "kubernetes-role", "", "Vault role for Kubernetes auth")
	l.String(&c.K8sJWTFile, "kubernetes-jwt-file", "/var/run/secrets/kubernetes.io/serviceaccount/token", "service account token file for Kubernetes auth")
	l.String(&c.RoleIDFile, "approle-role-id-file", "", "file holding the AppRole role ID")
	l.String(&c.SecretIDFile, "approle-secret-id-file", "", "file holding the AppRole secret ID")
	l.Bool(&c.RemoveSecretIDFile, "approle-remove-secret-id-file", false, "delete the secret ID file after reading it (kept in memory for later logins)")
	l.String(&c.TokenFile, "token-file", "", "file holding a Vault token (token auth; re-read at each re-login)")
	l.String(&c.Token, "token", "", "Vault token (token auth); prefer VAULT_TOKEN or --token-file: flags show in ps")
	l.Env("token", "VAULT_TOKEN")
	l.String(&c.TokenSink, "token-sink", "", "write the auto-auth token to this file (mode 0400) for apps that want it")
	l.Duration(&c.TokenIncrement, "token-renew-increment", 0, "TTL asked for at each token renewal (0: the token's own)")

	l.Section(&c.Secrets, "secrets", "list of files to render: name, path, params, version, destination, format (raw|json|env|template), key, env_prefix, template | template_file, missing_key (error|zero), left_delimiter, right_delimiter, mode, uid, gid")
	l.Strings(&c.SecretFlags, "secret", nil, "DEST=PATH[#KEY]: render PATH to DEST (one KEY raw; else by extension: .env env file, otherwise JSON); repeatable")
	l.Duration(&c.StaticRefresh, "static-secret-refresh", 5*time.Minute, "re-read secrets without a lease (KV) this often; files change only when the data did")
	l.String(&c.FileMode, "file-mode", "0400", "mode of rendered files (octal)")
	l.Int(&c.FileUID, "file-uid", -1, "owner uid of rendered files (-1: the ambassador's)")
	l.Int(&c.FileGID, "file-gid", -1, "group gid of rendered files (-1: the ambassador's)")
	l.Bool(&c.RequireTmpfs, "require-tmpfs", false, "refuse a destination that is not on tmpfs")
	l.Bool(&c.ExitAfterRender, "exit-after-render", false, "init mode: render every file once, then exit 0 (1 with the reason if anything is missing)")
	l.Bool(&c.RevokeOnShutdown, "revoke-on-shutdown", false, "revoke leases and the auto-auth token when stopping")

	l.String(&c.ProxyAddr, "proxy-addr", "127.0.0.1:8200", "Vault API proxy listen address (empty: no proxy)")
	l.String(&c.ProxyToken, "proxy-auto-auth-token", "true", "add the auto-auth token to proxied requests: true (when none), force (always), false")
	l.Bool(&c.ProxyAllowRemote, "proxy-allow-remote", false, "allow --proxy-addr on a non-loopback address")
	l.Duration(&c.ProxyTimeout, "proxy-timeout", 5*time.Minute, "how long the proxy waits for Vault's response headers (0: no limit)")

	// One render pass triggers one notification, so no debounce by default:
	// the app hears of a rotation as soon as the pass is written.
	nd := notify.Defaults()
	nd.Debounce = 0
	c.Notify.BindDefaults(l, nd)
}

// Validate reports every problem and builds c.Outputs.
func Validate(l *config.Loader, c *Config) error {
	var p config.Problems
	if c.VaultAddr == "" {
		p.Add("vault-addr", "", "required (or VAULT_ADDR)")
	} else if u, err := url.Parse(c.VaultAddr); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.Add("vault-addr", c.VaultAddr, "want http(s)://host:port")
	} else if c.ProxyAddr != "" && u.Host == c.ProxyAddr {
		p.Add("vault-addr", c.VaultAddr, "is the ambassador's own --proxy-addr")
	}
	if (c.ClientCert == "") != (c.ClientKey == "") {
		p.Addf("vault-client-cert and vault-client-key go together")
	}
	for _, f := range []struct{ k, v string }{{"vault-cacert", c.CACert}, {"vault-client-cert", c.ClientCert}, {"vault-client-key", c.ClientKey}} {
		if f.v != "" {
			if _, err := os.Stat(f.v); err != nil {
				p.Add(f.k, f.v, "%v", unwrapPath(err))
			}
		}
	}
	if c.VaultTimeout <= 0 {
		p.Add("vault-timeout", c.VaultTimeout, "must be positive")
	}
	c.AuthMethod = pickMethod(c)
	switch c.AuthMethod {
	case "kubernetes":
		if c.K8sRole == "" {
			p.Add("kubernetes-role", "", "required for kubernetes auth")
		}
		if c.K8sJWTFile == "" {
			p.Add("kubernetes-jwt-file", "", "required for kubernetes auth")
		}
	case "approle":
		if c.RoleIDFile == "" {
			p.Add("approle-role-id-file", "", "required for approle auth")
		}
		if c.RemoveSecretIDFile && c.SecretIDFile == "" {
			p.Addf("approle-remove-secret-id-file needs approle-secret-id-file")
		}
	case "token":
		if c.Token == "" && c.TokenFile == "" {
			p.Addf("token auth needs token-file or VAULT_TOKEN")
		}
	case "":
		p.Addf("no auth configured: set kubernetes-role, approle-role-id-file, token-file or VAULT_TOKEN (or auth-method)")
	default:
		p.Add("auth-method", c.AuthMethod, "want kubernetes, approle or token")
	}
	if c.TokenIncrement < 0 {
		p.Add("token-renew-increment", c.TokenIncrement, "must not be negative")
	}
	if c.StaticRefresh < time.Second/10 {
		p.Add("static-secret-refresh", c.StaticRefresh, "must be at least 100ms")
	}
	mode, err := parseMode(c.FileMode)
	if err != nil {
		p.Add("file-mode", c.FileMode, "%v", err)
	}
	if c.FileUID < -1 {
		p.Add("file-uid", c.FileUID, "want -1 or a uid")
	}
	if c.FileGID < -1 {
		p.Add("file-gid", c.FileGID, "want -1 or a gid")
	}
	if c.TokenSink != "" && !filepath.IsAbs(c.TokenSink) {
		p.Add("token-sink", c.TokenSink, "want an absolute path")
	} else if c.TokenSink != "" {
		if err := (dest.File{Path: c.TokenSink, Tmpfs: c.RequireTmpfs}).Check(); err != nil {
			p.Add("token-sink", c.TokenSink, "%v", err)
		}
	}
	if c.ProxyAddr != "" {
		host, _, err := net.SplitHostPort(c.ProxyAddr)
		if err != nil {
			p.Add("proxy-addr", c.ProxyAddr, "want host:port")
		} else if !c.ProxyAllowRemote && !loopback(host) {
			p.Add("proxy-addr", c.ProxyAddr, "not a loopback address: the proxy hands out the ambassador's token; set proxy-allow-remote to mean it")
		}
	}
	switch apiproxy.TokenMode(c.ProxyToken) {
	case apiproxy.TokenInject, apiproxy.TokenOff, apiproxy.TokenForce:
	default:
		p.Add("proxy-auto-auth-token", c.ProxyToken, "want true, false or force")
	}
	if c.ProxyTimeout < 0 {
		p.Add("proxy-timeout", c.ProxyTimeout, "must not be negative")
	}
	c.Notify.Validate(&p)

	c.Outputs = nil
	seen := map[string]string{}
	add := func(o secrets.Output, where string) {
		if prev, dup := seen[o.File.Path]; dup {
			p.Addf("%s: destination %s is also written by %s", where, o.File.Path, prev)
			return
		}
		seen[o.File.Path] = where
		c.Outputs = append(c.Outputs, o)
	}
	for i, f := range c.SecretFlags {
		where := fmt.Sprintf("secret[%d]", i)
		spec, err := ParseSecretFlag(f)
		if err != nil {
			p.Add("secret", f, "%v", err)
			continue
		}
		if o, ok := buildOutput(&p, where, spec, c, mode); ok {
			add(o, where)
		}
	}
	names := map[string]bool{}
	for i, s := range c.Secrets {
		where := fmt.Sprintf("secrets[%d]", i)
		if s.Name != "" {
			if names[s.Name] {
				p.Addf("%s: name %q used twice", where, s.Name)
			}
			names[s.Name] = true
		}
		if o, ok := buildOutput(&p, where, s, c, mode); ok {
			add(o, where)
		}
	}
	if c.ExitAfterRender && len(c.Outputs) == 0 {
		p.Addf("exit-after-render with no secrets to render (set secret or secrets)")
	}
	return p.Err()
}

func pickMethod(c *Config) string {
	if c.AuthMethod != "" {
		return c.AuthMethod
	}
	switch {
	case c.RoleIDFile != "":
		return "approle"
	case c.K8sRole != "":
		return "kubernetes"
	case c.TokenFile != "" || c.Token != "":
		return "token"
	}
	return ""
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func parseMode(s string) (fs.FileMode, error) {
	n, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil || n > 0o777 {
		return 0, fmt.Errorf("want an octal mode such as 0400")
	}
	if n&0o400 == 0 {
		return 0, fmt.Errorf("the owner must be able to read the file")
	}
	return fs.FileMode(n), nil
}

func unwrapPath(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// ParseSecretFlag parses --secret DEST=PATH[#KEY]. The format follows: a KEY
// means raw; else DEST ending in .env means an env file; otherwise JSON.
func ParseSecretFlag(s string) (SecretSpec, error) {
	d, path, ok := strings.Cut(s, "=")
	d, path = strings.TrimSpace(d), strings.TrimSpace(path)
	if !ok || d == "" || path == "" {
		return SecretSpec{}, fmt.Errorf("want DEST=PATH[#KEY], e.g. /vault/secrets/db.json=secret/db")
	}
	spec := SecretSpec{Destination: d} // the format follows from it (defaultFormat), as in YAML
	if p, k, hasKey := strings.Cut(path, "#"); hasKey {
		if k == "" {
			return SecretSpec{}, fmt.Errorf("empty KEY after #")
		}
		path, spec.Key = p, k
	}
	spec.Format = string(defaultFormat(spec))
	spec.Path = path
	spec.Name = filepath.Base(d)
	return spec, nil
}

// defaultFormat is the one rule for an output without a format, from a
// --secret flag or a YAML secrets: entry alike: a template renders as one;
// a key means that key raw; a destination ending in .env is an env file;
// anything else is JSON.
func defaultFormat(s SecretSpec) render.Format {
	switch {
	case s.Template != "" || s.TemplateFile != "":
		return render.Template
	case s.Key != "":
		return render.Raw
	case strings.HasSuffix(s.Destination, ".env"):
		return render.Env
	}
	return render.JSON
}

func buildOutput(p *config.Problems, where string, s SecretSpec, c *Config, defMode fs.FileMode) (secrets.Output, bool) {
	n := len(*p)
	o := secrets.Output{Name: s.Name}
	if o.Name == "" {
		o.Name = filepath.Base(s.Destination)
	}
	if s.Destination == "" || !filepath.IsAbs(s.Destination) || strings.HasSuffix(s.Destination, "/") {
		p.Add(where+".destination", s.Destination, "want an absolute file path")
	}
	format := render.Format(s.Format)
	if format == "" {
		format = defaultFormat(s)
	}
	path := strings.Trim(s.Path, "/")
	if s.Version < 0 {
		p.Add(where+".version", s.Version, "must not be negative")
	} else if s.Version > 0 {
		if strings.Contains(path, "?") {
			p.Add(where+".version", s.Version, "path already has a query")
		}
		path += "?version=" + strconv.Itoa(s.Version)
	}
	var params []string
	for k, v := range s.Params {
		params = append(params, k+"="+v)
	}
	sort.Strings(params)
	spec := render.Spec{Format: format, Path: path, Params: params, Key: s.Key, EnvPrefix: s.EnvPrefix}
	switch format {
	case render.Raw, render.JSON, render.Env:
		if path == "" {
			p.Add(where+".path", s.Path, "required for format %s", format)
		}
		if format == render.Raw && s.Key == "" {
			p.Add(where+".key", "", "required for format raw")
		}
		if s.Template != "" || s.TemplateFile != "" {
			p.Add(where+".format", format, "a template needs format template")
		}
	case render.Template:
		text := s.Template
		switch {
		case s.Template != "" && s.TemplateFile != "":
			p.Addf("%s: set template or template_file, not both", where)
		case s.TemplateFile != "":
			b, err := os.ReadFile(s.TemplateFile)
			if err != nil {
				p.Add(where+".template_file", s.TemplateFile, "%v", unwrapPath(err))
			}
			text = string(b)
		case s.Template == "":
			p.Addf("%s: format template needs template or template_file", where)
		}
		if s.Path != "" || len(s.Params) > 0 || s.Key != "" {
			p.Addf("%s: a template names its secrets itself ({{ with secret \"path\" }}); remove path/params/key", where)
		}
		if s.MissingKey != "" && s.MissingKey != "error" && s.MissingKey != "zero" {
			p.Add(where+".missing_key", s.MissingKey, "want error or zero")
		}
		if text != "" {
			t, err := render.ParseTemplate(o.Name, text, render.TemplateOptions{MissingKeyZero: s.MissingKey == "zero", LeftDelim: s.LeftDelim, RightDelim: s.RightDelim})
			if err != nil {
				p.Add(where+".template", o.Name, "%v", err)
			}
			spec.Tmpl = t
		}
	default:
		p.Add(where+".format", s.Format, "want raw, json, env or template")
	}
	mode := defMode
	if s.Mode != "" {
		m, err := parseMode(s.Mode)
		if err != nil {
			p.Add(where+".mode", s.Mode, "%v", err)
		}
		mode = m
	}
	uid, gid := c.FileUID, c.FileGID
	if s.UID != nil {
		uid = *s.UID
	}
	if s.GID != nil {
		gid = *s.GID
	}
	o.Spec = spec
	o.File = dest.File{Path: s.Destination, Mode: mode, UID: uid, GID: gid, Tmpfs: c.RequireTmpfs}
	if len(*p) == n {
		// What a run refuses with exit 2, validate refuses too: the
		// directory must exist (and be tmpfs with require-tmpfs).
		if err := o.File.Check(); err != nil {
			p.Add(where+".destination", s.Destination, "%v", err)
		}
	}
	return o, len(*p) == n
}
