package publish

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestFileWritesModeAndSkipsUnchanged(t *testing.T) {
	p := filepath.Join(t.TempDir(), "secret")
	changed, err := File(p, []byte("v1"), Options{Mode: 0o400})
	if err != nil || !changed {
		t.Fatalf("first write: changed=%v err=%v", changed, err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o400 {
		t.Fatalf("mode %v", st.Mode())
	}
	mod := st.ModTime()
	time.Sleep(10 * time.Millisecond)
	if changed, err := File(p, []byte("v1"), Options{Mode: 0o400}); err != nil || changed {
		t.Fatalf("unchanged write: changed=%v err=%v", changed, err)
	}
	if st2, _ := os.Stat(p); !st2.ModTime().Equal(mod) {
		t.Fatalf("unchanged content was rewritten")
	}
	if changed, _ := File(p, []byte("v2"), Options{Mode: 0o400}); !changed {
		t.Fatal("changed content not written")
	}
	if b, _ := os.ReadFile(p); string(b) != "v2" {
		t.Fatalf("content %q", b)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".*tmp*"))
	if len(left) != 0 {
		t.Fatalf("temp files left behind: %v", left)
	}
}

// A concurrent reader doing 100k reads never sees a partial or mixed file.
func TestFileConcurrentReaderNeverSeesPartial(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config")
	a := bytes.Repeat([]byte("a"), 4<<10)
	b := bytes.Repeat([]byte("b"), 2<<10+1)
	if _, err := File(p, a, Options{}); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var writes atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			data := a
			if i%2 == 1 {
				data = b
			}
			if _, err := File(p, data, Options{}); err != nil {
				t.Error(err)
				return
			}
			writes.Add(1)
		}
	}()
	for i := 0; i < 100_000; i++ {
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
			t.Fatalf("read %d: partial or mixed file (%d bytes)", i, len(got))
		}
	}
	stop.Store(true)
	wg.Wait()
	if writes.Load() < 10 {
		t.Fatalf("writer only published %d times; the test proved nothing", writes.Load())
	}
	t.Logf("100000 reads against %d publishes", writes.Load())
}

// A concurrent reader doing 100k reads of a tree through the link never sees
// a mixed tree or a missing file.
func TestTreeConcurrentReaderNeverSeesMix(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "current")
	tree := func(v string) map[string][]byte {
		return map[string][]byte{"app.yaml": []byte("version: " + v), "nested/db.conf": []byte("version: " + v), "gone-in-odd": []byte(v)}
	}
	if _, err := Tree(link, tree("0"), Options{}); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var writes atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; !stop.Load(); i++ {
			files := tree(string(rune('0' + i%10)))
			if i%2 == 1 {
				delete(files, "gone-in-odd")
			}
			if _, err := Tree(link, files, Options{Retain: time.Minute}); err != nil {
				t.Error(err)
				return
			}
			writes.Add(1)
		}
	}()
	for i := 0; i < 100_000; i++ {
		target, err := os.Readlink(link)
		if err != nil {
			t.Fatalf("readlink %d: %v", i, err)
		}
		root := filepath.Join(dir, target)
		x, err1 := os.ReadFile(filepath.Join(root, "app.yaml"))
		y, err2 := os.ReadFile(filepath.Join(root, "nested/db.conf"))
		if err1 != nil || err2 != nil {
			t.Fatalf("read %d: missing file: %v %v", i, err1, err2)
		}
		if !bytes.Equal(x, y) {
			t.Fatalf("read %d: mixed tree %q vs %q", i, x, y)
		}
	}
	stop.Store(true)
	wg.Wait()
	if writes.Load() < 10 {
		t.Fatalf("writer only published %d times", writes.Load())
	}
	t.Logf("100000 tree reads against %d publishes", writes.Load())
}

func TestTreeUnchangedAndPrunes(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "cfg")
	files := map[string][]byte{"a": []byte("1")}
	if c, err := Tree(link, files, Options{}); err != nil || !c {
		t.Fatalf("first: %v %v", c, err)
	}
	if c, err := Tree(link, files, Options{}); err != nil || c {
		t.Fatalf("unchanged: %v %v", c, err)
	}
	for i := range 5 {
		if _, err := Tree(link, map[string][]byte{"a": {byte('2' + i)}}, Options{Retain: time.Nanosecond}); err != nil {
			t.Fatal(err)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(dir, ".cfg.versions"))
	if len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("want current + 1 previous version, have %v", names)
	}
	if b, _ := os.ReadFile(filepath.Join(link, "a")); string(b) != "6" {
		t.Fatalf("through link: %q", b)
	}
}

func TestTreeRejectsEscapingPaths(t *testing.T) {
	for _, bad := range []string{"../x", "/etc/passwd", "a/../../b", "", "a//b"} {
		_, err := Tree(filepath.Join(t.TempDir(), "l"), map[string][]byte{bad: nil}, Options{})
		if err == nil || !strings.Contains(err.Error(), "file name") && !strings.Contains(err.Error(), "empty") {
			t.Errorf("%q: got %v", bad, err)
		}
	}
}
