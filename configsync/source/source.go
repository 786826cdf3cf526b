// Package source parses what names configsync's inputs and outputs: the
// seed's CONFIG_SOURCE URL (consul://host:port/prefix), the KEY=PATH mapping
// flags, and the mapping of a Consul key below a prefix to a file path.
package source

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/sidecarkit/sidecarkit/shared/publish"
)

// URL is a parsed CONFIG_SOURCE.
type URL struct {
	Address    string // host:port
	Scheme     string // http or https
	Prefix     string // KV prefix, no leading slash; "" is the whole KV store
	Datacenter string
	Stale      bool
	Consistent bool
}

// ParseURL parses consul://host[:port]/prefix (consul+https:// for TLS) with
// optional query parameters dc=, stale and consistent. The port defaults to
// 8500 (8501 for TLS).
func ParseURL(s string) (URL, error) {
	var out URL
	u, err := url.Parse(s)
	if err != nil {
		return out, fmt.Errorf("not a URL: %v", redactErr(err))
	}
	switch u.Scheme {
	case "consul", "consul+http":
		out.Scheme = "http"
	case "consul+https", "consuls":
		out.Scheme = "https"
	default:
		return out, fmt.Errorf("scheme %q: want consul:// or consul+https://", u.Scheme)
	}
	if u.User != nil {
		return out, errors.New("credentials in the URL are not accepted; use CONSUL_HTTP_TOKEN or --consul-token-file")
	}
	if u.Opaque != "" {
		return out, errors.New("want consul://host:port/prefix")
	}
	host := u.Hostname()
	if host == "" {
		return out, errors.New("no host (want consul://host:port/prefix)")
	}
	port := u.Port()
	if port == "" {
		if strings.HasSuffix(u.Host, ":") {
			return out, errors.New("empty port")
		}
		port = "8500"
		if out.Scheme == "https" {
			port = "8501"
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return out, fmt.Errorf("port %q: want 1-65535", port)
	}
	out.Address = net.JoinHostPort(host, port)
	p := u.Path
	if u.RawPath != "" {
		p = u.RawPath
		if p, err = url.PathUnescape(p); err != nil {
			return out, fmt.Errorf("path: %v", err)
		}
	}
	p = strings.TrimPrefix(p, "/")
	if err := CheckPrefix(p); err != nil {
		return out, err
	}
	out.Prefix = p
	if u.Fragment != "" {
		return out, fmt.Errorf("fragment %q not allowed", u.Fragment)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return out, fmt.Errorf("query: %v", err)
	}
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "dc", "datacenter":
			if v == "" {
				return out, fmt.Errorf("query %s: empty", k)
			}
			out.Datacenter = v
		case "stale", "consistent":
			b := true
			if v != "" {
				if b, err = strconv.ParseBool(v); err != nil {
					return out, fmt.Errorf("query %s=%q: want true or false", k, v)
				}
			}
			if k == "stale" {
				out.Stale = b
			} else {
				out.Consistent = b
			}
		default:
			return out, fmt.Errorf("unknown query parameter %q (known: dc, stale, consistent)", k)
		}
	}
	if out.Stale && out.Consistent {
		return out, errors.New("stale and consistent exclude each other")
	}
	return out, nil
}

func redactErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// CheckPrefix rejects KV prefixes and keys that cannot name files: "..",
// "." or empty segments inside, control characters.
func CheckPrefix(p string) error {
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("key %q: must not start with /", p)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("key %q: control character", p)
		}
	}
	t := strings.TrimSuffix(p, "/")
	if t == "" {
		return nil
	}
	for _, seg := range strings.Split(t, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("key %q: empty, . or .. segment", p)
		}
	}
	return nil
}

// Mapping is one NAME=PATH flag value: a key, prefix or template file and
// where its output goes.
type Mapping struct {
	From string
	To   string
}

// ParseMapping splits "from=to"; both sides must be non-empty.
func ParseMapping(s string) (Mapping, error) {
	from, to, ok := strings.Cut(s, "=")
	if !ok {
		return Mapping{}, errors.New("want FROM=PATH")
	}
	from, to = strings.TrimSpace(from), strings.TrimSpace(to)
	if from == "" || to == "" {
		return Mapping{}, errors.New("want FROM=PATH with both sides non-empty")
	}
	return Mapping{From: from, To: to}, nil
}

// NormalizePrefix returns p with exactly one trailing slash ("" stays "").
func NormalizePrefix(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return ""
	}
	return p + "/"
}

// MaxNameBytes is the longest file name Linux takes (NAME_MAX).
const MaxNameBytes = 255

// KeyPath maps a Consul key below prefix (as NormalizePrefix returns it) to
// a relative slash path. skip is true for the prefix itself and for folder
// keys ("a/b/"), which hold no file.
func KeyPath(prefix, key string) (path string, skip bool, err error) {
	if !strings.HasPrefix(key, prefix) {
		return "", false, fmt.Errorf("key %q is not below prefix %q", key, prefix)
	}
	rel := key[len(prefix):]
	if rel == "" || strings.HasSuffix(rel, "/") {
		return "", true, nil
	}
	if err := publish.CheckRelPath(rel); err != nil {
		return "", false, fmt.Errorf("key %q: cannot be a file path: %v", key, err)
	}
	for _, r := range rel {
		if r == 0 {
			return "", false, fmt.Errorf("key %q: NUL in name", key)
		}
	}
	for _, seg := range strings.Split(rel, "/") {
		if len(seg) > MaxNameBytes {
			return "", false, fmt.Errorf("key %q: segment of %d bytes; a file name has at most %d", key, len(seg), MaxNameBytes)
		}
	}
	return rel, false, nil
}

// Redact returns s with any password replaced, for errors and logs.
func Redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			return "(unparsable URL)"
		}
		return s
	}
	return u.Redacted()
}
