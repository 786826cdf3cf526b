package publish

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

// TestTreeSharesUnchangedFiles: a new version hard-links the files that did
// not change from the version it replaces and writes only the changed ones.
func TestTreeSharesUnchangedFiles(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "cfg")
	files := map[string][]byte{"a": []byte("1"), "d/b": []byte("2"), "d/e/c": []byte("3")}
	if _, err := Tree(link, files, Options{}); err != nil {
		t.Fatal(err)
	}
	before := map[string]uint64{}
	for n := range files {
		before[n] = inode(t, filepath.Join(link, n))
	}
	files["d/b"] = []byte("22")
	files["new"] = []byte("4")
	if ch, err := Tree(link, files, Options{}); err != nil || !ch {
		t.Fatalf("changed=%v err=%v", ch, err)
	}
	for _, n := range []string{"a", "d/e/c"} {
		if inode(t, filepath.Join(link, n)) != before[n] {
			t.Errorf("%s: unchanged but not shared with the previous version", n)
		}
	}
	if inode(t, filepath.Join(link, "d/b")) == before["d/b"] {
		t.Error("d/b changed but shares the old inode")
	}
	if b, _ := os.ReadFile(filepath.Join(link, "d/b")); string(b) != "22" {
		t.Errorf("d/b = %q", b)
	}
	// A different mode is a different file: nothing shared.
	if _, err := Tree(link, files, Options{Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(link, "a"))
	if st.Mode().Perm() != 0o600 || inode(t, filepath.Join(link, "a")) == before["a"] {
		t.Errorf("mode change: mode %v, shared %v", st.Mode().Perm(), inode(t, filepath.Join(link, "a")) == before["a"])
	}
}

// TestLongestNames: a 255-byte name (NAME_MAX) is published as a file and
// inside a tree; the temp file's name does not grow with it.
func TestLongestNames(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("k", 255)
	if _, err := File(filepath.Join(dir, long), []byte("v"), Options{}); err != nil {
		t.Fatalf("File with a 255-byte name: %v", err)
	}
	if _, err := File(filepath.Join(dir, long), []byte("v2"), Options{}); err != nil {
		t.Fatalf("File replacing a 255-byte name: %v", err)
	}
	link := filepath.Join(dir, "tree")
	files := map[string][]byte{long: []byte("x"), "d/" + long: []byte("y")}
	if _, err := Tree(link, files, Options{}); err != nil {
		t.Fatalf("Tree with 255-byte names: %v", err)
	}
	files[long] = []byte("x2")
	if _, err := Tree(link, files, Options{}); err != nil {
		t.Fatalf("Tree update with 255-byte names: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(link, long)); string(b) != "x2" {
		t.Fatalf("got %q", b)
	}
}
