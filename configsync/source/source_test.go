package source

import (
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want URL
		err  string
	}{
		{in: "consul://consul:8500/config/my-app", want: URL{Address: "consul:8500", Scheme: "http", Prefix: "config/my-app"}},
		{in: "consul://consul/config/my-app/", want: URL{Address: "consul:8500", Scheme: "http", Prefix: "config/my-app/"}},
		{in: "consul+https://c.example:9501/a?dc=eu&stale", want: URL{Address: "c.example:9501", Scheme: "https", Prefix: "a", Datacenter: "eu", Stale: true}},
		{in: "consuls://c/a?consistent=true", want: URL{Address: "c:8501", Scheme: "https", Prefix: "a", Consistent: true}},
		{in: "consul://[::1]:8500/", want: URL{Address: "[::1]:8500", Scheme: "http"}},
		{in: "http://consul:8500/x", err: "scheme"},
		{in: "consul://user:pw@consul:8500/x", err: "credentials"},
		{in: "consul:///x", err: "no host"},
		{in: "consul://c:0/x", err: "port"},
		{in: "consul://c:99999/x", err: "port"},
		{in: "consul://c:8500/a/../b", err: "segment"},
		{in: "consul://c:8500/a//b", err: "segment"},
		{in: "consul://c:8500/a?bogus=1", err: "unknown query"},
		{in: "consul://c:8500/a?stale&consistent", err: "exclude"},
		{in: "consul://c:8500/a#frag", err: "fragment"},
		{in: "consul:c", err: "want consul://"},
		{in: "consul://c:/a", err: "empty port"},
	} {
		got, err := ParseURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseURL(%q) error %v, want containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseURLNeverLeaksPassword(t *testing.T) {
	_, err := ParseURL("consul://u:hunter2@c:8500/x")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %v must reject and not echo the password", err)
	}
}

func TestKeyPath(t *testing.T) {
	for _, tc := range []struct {
		prefix, key, path string
		skip              bool
		err               bool
	}{
		{"config/app/", "config/app/db/url", "db/url", false, false},
		{"config/app/", "config/app/", "", true, false},
		{"config/app/", "config/app/dir/", "", true, false},
		{"", "top", "top", false, false},
		{"config/app/", "config/app/../../etc/passwd", "", false, true},
		{"config/app/", "config/app/a//b", "", false, true},
		{"config/app/", "other/x", "", false, true},
	} {
		p, skip, err := KeyPath(tc.prefix, tc.key)
		if p != tc.path || skip != tc.skip || (err != nil) != tc.err {
			t.Errorf("KeyPath(%q, %q) = %q, %v, %v", tc.prefix, tc.key, p, skip, err)
		}
	}
}

func TestParseMapping(t *testing.T) {
	m, err := ParseMapping(" config/a = /etc/a ")
	if err != nil || m != (Mapping{"config/a", "/etc/a"}) {
		t.Fatalf("got %+v %v", m, err)
	}
	for _, bad := range []string{"", "a", "=b", "a="} {
		if _, err := ParseMapping(bad); err == nil {
			t.Errorf("ParseMapping(%q) accepted", bad)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"consul://consul:8500/config/my-app", "consul+https://c/a?dc=x&stale", "consul://[::1]:1/%2e%2e/x", "consul://c:8500/a?consistent=0", "://", "consul://c:8500/\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseURL(s)
		if err != nil {
			return
		}
		if u.Address == "" || (u.Scheme != "http" && u.Scheme != "https") {
			t.Fatalf("accepted %q with %+v", s, u)
		}
		if err := CheckPrefix(u.Prefix); err != nil {
			t.Fatalf("accepted prefix %q: %v", u.Prefix, err)
		}
		if u.Stale && u.Consistent {
			t.Fatalf("both stale and consistent from %q", s)
		}
		// Every accepted prefix's keys map to safe relative paths.
		p, skip, err := KeyPath(NormalizePrefix(u.Prefix), NormalizePrefix(u.Prefix)+"x/y")
		if err != nil || skip || p != "x/y" {
			t.Fatalf("KeyPath under %q: %q %v %v", u.Prefix, p, skip, err)
		}
	})
}

func FuzzKeyPath(f *testing.F) {
	for _, s := range []string{"config/app/a", "config/app/../x", "config/app/a/", "config/app/.x", "config/app/a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		p, skip, err := KeyPath("config/app/", key)
		if err != nil || skip {
			return
		}
		if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\x00") {
			t.Fatalf("key %q gave unsafe path %q", key, p)
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("key %q gave path %q with segment %q", key, p, seg)
			}
		}
	})
}
