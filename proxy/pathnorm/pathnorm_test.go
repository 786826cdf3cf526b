package pathnorm

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	for _, c := range []struct {
		mode, slashes, in, want string
		err                     error
	}{
		{Base, "", "/", "/", nil},
		{Base, "", "", "/", nil},
		{Base, "", "*", "*", nil},
		{Base, "", "/api/v1/items", "/api/v1/items", nil},
		{Base, "", "/admin/..", "/", nil},
		{Base, "", "/admin/../api/v1/charge", "/api/v1/charge", nil},
		{Base, "", "/public/../admin", "/admin", nil},
		{Base, "", "/a/./b/.", "/a/b/", nil},
		{Base, "", "/a/b/..", "/a/", nil},
		{Base, "", "/../../admin", "/admin", nil},
		{Base, "", `/public\..\admin`, "/admin", nil},
		{Base, "", `\admin`, "/admin", nil},
		{Base, "", "/%2e%2e/admin", "/admin", nil},
		{Base, "", "/public/%2E%2E/admin", "/admin", nil},
		{Base, "", "/%61dmin", "/admin", nil},
		{Base, "", "/a%7eb%2Dc%5f", "/a~b-c_", nil},
		{Base, "", "/a%3bb", "/a%3Bb", nil},
		{Base, "", "/a b", "/a%20b", nil},
		{Base, "", "/a\"<>", "/a%22%3C%3E", nil},
		{Base, "", "/caf\xc3\xa9", "/caf%C3%A9", nil},
		{Base, "", "/admin%2f..", "/admin%2F..", nil},
		{Base, "", "/admin%2f..%2fapi/v1/charge", "/admin%2F..%2Fapi/v1/charge", nil},
		{Base, "", "/public%5C..%5Cadmin", "/public%5C..%5Cadmin", nil},
		{Base, "", "/a//b", "/a//b", nil},
		{Base, Reject, "/admin%2f..", "", ErrEscapedSlash},
		{Base, Reject, "/a%5cb", "", ErrEscapedSlash},
		{MergeSlashes, "", "/a//b///c", "/a/b/c", nil},
		{MergeSlashes, "", "//admin", "/admin", nil},
		{MergeSlashes, "", "/a//../admin", "/a/admin", nil},
		{DecodeAndMergeSlashes, "", "/admin%2f..", "/", nil},
		{DecodeAndMergeSlashes, "", "/admin%2f..%2fapi/v1/charge", "/api/v1/charge", nil},
		{DecodeAndMergeSlashes, "", "/public%5c..%5cadmin", "/admin", nil},
		{DecodeAndMergeSlashes, "", "/a%2F%2Fb", "/a/b", nil},
		{Base, "", "/a%00b", "", ErrNUL},
		{Base, "", "/a%zz", "", ErrBadEscape},
		{Base, "", "/a%2", "", ErrBadEscape},
		{Base, "", "/a\x01", "", ErrControl},
		{Base, "", "/%252e%252e/admin", "/%252e%252e/admin", nil}, // decoded once only
		{None, "", "/admin/../x%2f", "/admin/../x%2f", nil},
		{"", "", "/x/../admin", "/admin", nil}, // default is BASE
	} {
		got, err := Normalize(c.in, Options{Mode: c.mode, EscapedSlashes: c.slashes})
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%s %q: err %v, want %v", c.mode, c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s %q = %q, %v; want %q", c.mode, c.in, got, err, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := (Options{Mode: "base"}).Validate(); err == nil || !strings.Contains(err.Error(), `path-normalization "base"`) {
		t.Errorf("lower-case mode: %v", err)
	}
	if err := (Options{Mode: DecodeAndMergeSlashes, EscapedSlashes: Reject}).Validate(); err == nil {
		t.Error("decode + reject accepted")
	}
	if err := (Options{EscapedSlashes: "drop"}).Validate(); err == nil || !strings.Contains(err.Error(), "path-escaped-slashes") {
		t.Errorf("bad slashes: %v", err)
	}
	if err := (Options{}).Validate(); err != nil {
		t.Error(err)
	}
}

// TestApplyForwardsWhatWasDecided: after Apply, the bytes Go writes
// upstream (RequestURI) are the normalised path, for paths Go's parser
// decoded or re-escaped on its own.
func TestApplyForwardsWhatWasDecided(t *testing.T) {
	for _, c := range []struct{ mode, target, want string }{
		{Base, "/admin%2f..?x=1", "/admin%2F..?x=1"},
		{Base, `/public\..\admin?a`, "/admin?a"},
		{Base, "/a/../b%20c", "/b%20c"},
		{Base, "/%61dmin", "/admin"},
		{DecodeAndMergeSlashes, "/admin%2f..%2fapi/v1/charge", "/api/v1/charge"},
		{None, `/public\..\admin`, `/public\..\admin`},
		{None, "/admin%2f..", "/admin%2f.."},
	} {
		u, err := url.ParseRequestURI(c.target)
		if err != nil {
			t.Fatal(err)
		}
		n, err := Apply(u, Options{Mode: c.mode})
		if err != nil {
			t.Fatalf("%q: %v", c.target, err)
		}
		if got := u.RequestURI(); got != c.want {
			t.Errorf("%s %q: forwards %q (decided on %q), want %q", c.mode, c.target, got, n, c.want)
		}
		if q := strings.IndexByte(c.want, '?'); q >= 0 && n != c.want[:q] || q < 0 && n != c.want {
			t.Errorf("%s %q: decided on %q, forwards %q", c.mode, c.target, n, c.want)
		}
	}
}

// FuzzNormalize: the result is idempotent, starts with "/", has no dot
// segments, and Apply forwards exactly it.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", `/a\..\b`, "/a%2f..", "/%2e%2e/x", "//a//b", "/a b", "/\xff"} {
		f.Add(s, uint8(0))
	}
	modes := []string{Base, MergeSlashes, DecodeAndMergeSlashes}
	f.Fuzz(func(t *testing.T, p string, m uint8) {
		o := Options{Mode: modes[int(m)%len(modes)]}
		n, err := Normalize("/"+p, o)
		if err != nil {
			return
		}
		if n[0] != '/' {
			t.Fatalf("%q → %q", p, n)
		}
		again, err := Normalize(n, o)
		if err != nil || again != n {
			t.Fatalf("not idempotent: %q → %q → %q (%v)", p, n, again, err)
		}
		for _, seg := range strings.Split(n, "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("%q → %q keeps a dot segment", p, n)
			}
		}
		if strings.ContainsRune(n, '\\') {
			t.Fatalf("%q → %q keeps a backslash", p, n)
		}
		u := &url.URL{}
		dec, err := url.PathUnescape(n)
		if err != nil {
			t.Fatalf("%q → %q does not unescape: %v", p, n, err)
		}
		u.Path, u.RawPath = dec, n
		if got, err := Apply(u, o); err != nil || got != n || u.RequestURI() != n {
			t.Fatalf("%q: Apply %q, %v; forwards %q", n, got, err, u.RequestURI())
		}
	})
}

func BenchmarkNormalize(b *testing.B) {
	for _, p := range []string{"/api/v1/orders/12345", "/api/v1/../v2/%61b%2fc//d"} {
		b.Run(p, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Normalize(p, Options{Mode: MergeSlashes})
			}
		})
	}
}
