package dest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

func TestWriteModeAndUnchanged(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.txt")
	f := File{Path: p, UID: -1, GID: -1}
	if ch, err := f.Write([]byte("one")); err != nil || !ch {
		t.Fatalf("first write: %v %v", ch, err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o400 {
		t.Fatalf("mode %v, want 0400", st.Mode().Perm())
	}
	if ch, err := f.Write([]byte("one")); err != nil || ch {
		t.Fatalf("same content rewritten: %v %v", ch, err)
	}
	if ch, err := f.Write([]byte("two")); err != nil || !ch {
		t.Fatalf("new content: %v %v", ch, err)
	}
}

func TestOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "chown needs root")
	}
	p := filepath.Join(t.TempDir(), "s.txt")
	if _, err := (File{Path: p, UID: 1234, GID: 2345, Mode: 0o440}).Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o440 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
	if uid, gid := owner(st); uid != 1234 || gid != 2345 {
		t.Fatalf("owner %d:%d", uid, gid)
	}
}

func TestRequireTmpfs(t *testing.T) {
	disk := t.TempDir()
	if ok, _ := IsTmpfs(disk); ok {
		testenv.Unavailable(t, "TMPDIR %s is itself tmpfs; need a disk directory", disk)
	}
	err := File{Path: filepath.Join(disk, "s"), Tmpfs: true, UID: -1, GID: -1}.Check()
	if err == nil || !strings.Contains(err.Error(), "not on tmpfs") {
		t.Fatalf("disk accepted: %v", err)
	}
	if ok, err := IsTmpfs("/dev/shm"); err != nil || !ok {
		testenv.Unavailable(t, "/dev/shm is not tmpfs here (%v)", err)
	}
	shm, err := os.MkdirTemp("/dev/shm", "dest-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(shm)
	f := File{Path: filepath.Join(shm, "s"), Tmpfs: true, UID: -1, GID: -1}
	if _, err := f.Write([]byte("x")); err != nil {
		t.Fatalf("tmpfs refused: %v", err)
	}
	if err := (File{Path: "/nonexistent/dir/s"}).Check(); err == nil {
		t.Fatal("missing directory accepted")
	}
}

// A concurrent reader never sees a partial or empty file while it is
// rewritten over and over.
func TestConcurrentReaderNeverSeesPartial(t *testing.T) {
	p := filepath.Join(t.TempDir(), "s.json")
	f := File{Path: p, Mode: 0o600, UID: -1, GID: -1}
	a := []byte(strings.Repeat("A", 256<<10))
	b := []byte(strings.Repeat("B", 256<<10))
	if _, err := f.Write(a); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var bad atomic.Value
	var reads atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				got, err := os.ReadFile(p)
				if err != nil {
					bad.Store("read: " + err.Error())
					return
				}
				reads.Add(1)
				if len(got) != len(a) || (got[0] != 'A' && got[0] != 'B') || strings.Count(string(got), string(got[0])) != len(got) {
					bad.Store(fmt.Sprintf("partial or mixed file: %d bytes", len(got)))
					return
				}
			}
		}()
	}
	for i := 0; i < 300; i++ {
		d := a
		if i%2 == 0 {
			d = b
		}
		if _, err := f.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
	if reads.Load() == 0 {
		t.Fatal("reader never ran")
	}
}
