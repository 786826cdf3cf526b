package checkpoint

import (
	"os"
	"path/filepath"
	"testing"
)

func TestTrackerCommitsOnlyInBatchOrder(t *testing.T) {
	s, _ := Open("")
	p := s.Track(Key{Dev: 1, Ino: 2, FP: 3, FPLen: 10}, "/a", 0)
	tr := NewTracker()
	// batches 1 and 2 finish before batch 0: nothing may move
	if n := tr.Done(1, []Mark{{p, 200}}); n != 0 || p.Committed() != 0 {
		t.Fatalf("batch 1 before 0 applied: n=%d committed=%d", n, p.Committed())
	}
	tr.Done(2, []Mark{{p, 300}})
	if tr.Waiting() != 2 {
		t.Fatalf("waiting = %d", tr.Waiting())
	}
	if n := tr.Done(0, []Mark{{p, 100}}); n != 3 || p.Committed() != 300 {
		t.Fatalf("after batch 0: applied %d, committed %d; want 3, 300", n, p.Committed())
	}
	p.Advance(50) // never backwards
	if p.Committed() != 300 {
		t.Fatal("Advance moved backwards")
	}
}

func TestStoreSaveLoadRetire(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "cp.json")
	os.MkdirAll(filepath.Dir(path), 0o755)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	k1 := Key{Dev: 1, Ino: 2, FP: 0xabc, FPLen: 60}
	k2 := Key{Dev: 1, Ino: 3, FP: 0xdef, FPLen: 256}
	p1 := s.Track(k1, "/var/log/a.log", 0)
	p2 := s.Track(k2, "/var/log/b.log", 0)
	p1.Advance(1234)
	p2.Advance(99)
	s.Retire(p2, 500) // rotated away, not fully shipped: kept
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("checkpoint mode %v", st.Mode().Perm())
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if off, ok := s2.Lookup(k1); !ok || off != 1234 {
		t.Errorf("k1 → %d %v", off, ok)
	}
	if off, ok := s2.Lookup(k2); !ok || off != 99 {
		t.Errorf("k2 → %d %v", off, ok)
	}
	if _, ok := s2.Lookup(Key{Dev: 1, Ino: 2, FP: 0xabd, FPLen: 60}); ok {
		t.Error("a reused inode with another fingerprint matched")
	}
	p2.Advance(500) // everything shipped: the record goes
	if recs := s.Snapshot(); len(recs) != 1 || recs[0].Path != "/var/log/a.log" {
		t.Errorf("after retiring a shipped file: %+v", recs)
	}
	if un := s2.Unclaimed(); len(un) != 2 {
		t.Errorf("unclaimed = %+v", un)
	}
}

func TestOpenRejectsDamagedFiles(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"notjson":  "{{{",
		"version":  `{"version":9,"files":[]}`,
		"fp":       `{"version":1,"files":[{"dev":1,"ino":2,"fp":"zz","fp_len":1,"path":"/a","offset":1}]}`,
		"negative": `{"version":1,"files":[{"dev":1,"ino":2,"fp":"a","fp_len":1,"path":"/a","offset":-1}]}`,
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		if _, err := Open(p); err == nil {
			t.Errorf("%s: accepted %s", name, body)
		}
	}
	if s, err := Open(filepath.Join(dir, "missing")); err != nil || s == nil {
		t.Errorf("missing file: %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	f.Add([]byte(`{"version":1,"files":[{"dev":1,"ino":2,"fp":"abc","fp_len":60,"path":"/a","offset":5}]}`))
	f.Add([]byte(`{"version":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "cp.json")
		os.WriteFile(p, b, 0o600)
		s, err := Open(p)
		if err == nil {
			for _, r := range s.Unclaimed() {
				if r.Offset < 0 {
					t.Fatalf("negative offset accepted")
				}
			}
		}
	})
}
