package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLegacyLine(t *testing.T) {
	ts := time.Date(2024, 1, 15, 14, 32, 1, 0, time.UTC)
	got := legacyLine(ts, "INFO", "order_id", "ORD-9921", "status", "FULFILLED", "note", "two words", "empty", "")
	want := `2024-01-15 14:32:01 INFO order_id=ORD-9921 status=FULFILLED note="two words" empty=""` + "\n"
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
}

func TestParseSecret(t *testing.T) {
	for _, tc := range []struct {
		in, user, pass, err string
	}{
		{in: "s3cret\n", pass: "s3cret"},
		{in: `{"username":"u","password":"p"}`, user: "u", pass: "p"},
		{in: `{"username":"u"}`, err: "no string"},
		{in: `{broken`, err: "not valid JSON"},
		{in: " \n", err: "empty"},
	} {
		u, p, err := parseSecret([]byte(tc.in))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || u != tc.user || p != tc.pass {
			t.Errorf("%q: got %q %q %v", tc.in, u, p, err)
		}
	}
}

// The config dir as configsync publishes a tree: a symlink to a version
// directory, hidden entries beside it.
func TestReadSettingsSymlinkTree(t *testing.T) {
	dir := t.TempDir()
	v1 := filepath.Join(dir, ".v1")
	os.MkdirAll(filepath.Join(v1, "db"), 0o755)
	os.WriteFile(filepath.Join(v1, "greeting"), []byte("hi\n"), 0o644)
	os.WriteFile(filepath.Join(v1, "db", "pool"), []byte("5"), 0o644)
	os.WriteFile(filepath.Join(v1, ".tmp-x"), []byte("partial"), 0o644)
	if err := os.Symlink(".v1", filepath.Join(dir, "current")); err != nil {
		t.Fatal(err)
	}
	m, err := readSettings(filepath.Join(dir, "current"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || m["greeting"] != "hi" || m["db/pool"] != "5" {
		t.Fatalf("settings %v", m)
	}
	if _, err := readSettings(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing dir: %v", err)
	}
}

func TestStoreKeepsLastGoodAndNeverHoldsPlaintext(t *testing.T) {
	dir := t.TempDir()
	sec := filepath.Join(dir, "pw")
	os.WriteFile(sec, []byte("hunter2"), 0o600)
	os.WriteFile(filepath.Join(dir, "greeting"), []byte("hello"), 0o644)
	s := &store{secretFile: sec, configDir: dir}
	h, err := s.Load(time.Now())
	if err != nil || !h.Complete() || h.PasswordSHA256 != fingerprint("hunter2") {
		t.Fatalf("load: %+v %v", h, err)
	}
	os.Remove(sec)
	h, err = s.Load(time.Now())
	if err == nil || h.PasswordSHA256 != fingerprint("hunter2") || h.Complete() {
		t.Fatalf("after removal: %+v %v", h, err)
	}
	if strings.Contains(strings.Join(h.Errors, " "), "hunter2") {
		t.Fatal("error leaks the secret")
	}
}

// The rendered secret file is outside input (the ambassador writes it).
func FuzzParseSecret(f *testing.F) {
	for _, s := range []string{"pw", `{"username":"u","password":"p"}`, `{"password":1}`, "{", "", " \n\t"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		u, p, err := parseSecret(b)
		if err != nil && (u != "" || p != "") {
			t.Fatalf("error with values: %q %q %v", u, p, err)
		}
		if err == nil && p == "" && !strings.HasPrefix(strings.TrimSpace(string(b)), "{") {
			t.Fatalf("raw secret accepted empty: %q", b)
		}
	})
}

// A legacy line is always one line, whatever the values hold.
func FuzzLegacyLine(f *testing.F) {
	f.Add("k", "v")
	f.Add("note", "two words\nand a newline")
	f.Add("q", `a "quoted" = value`)
	f.Fuzz(func(t *testing.T, k, v string) {
		if strings.ContainsAny(k, " \n\r=\"") {
			return // keys are ours, never outside input
		}
		line := legacyLine(time.Unix(0, 0), "INFO", k, v)
		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
			t.Fatalf("not one line: %q", line)
		}
	})
}
