package tail

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/adapter/checkpoint"
)

// recorder is a Handler that keeps every line and acknowledges at once.
type recorder struct {
	mu        sync.Mutex
	lines     []string
	truncated int
	opened    []string
}

func (r *recorder) Opened(f *File) { r.mu.Lock(); r.opened = append(r.opened, f.Path); r.mu.Unlock() }
func (r *recorder) Line(f *File, line []byte, start, end int64, truncated bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, string(line))
	if truncated {
		r.truncated++
	}
	f.Pos.Advance(end)
	return nil
}
func (r *recorder) openedCount() int     { r.mu.Lock(); defer r.mu.Unlock(); return len(r.opened) }
func (r *recorder) Closing(*File) error  { return nil }
func (r *recorder) Tick(time.Time) error { return nil }
func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}
func (r *recorder) waitFor(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if l := r.snapshot(); len(l) >= n {
			time.Sleep(100 * time.Millisecond) // and no more than n
			return r.snapshot()
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r.snapshot()
}

func run(t *testing.T, cfg Config, store *checkpoint.Store) (*recorder, *Tailer) {
	t.Helper()
	cfg.ReadFromHead = true
	return runFrom(t, cfg, store)
}

func runFrom(t *testing.T, cfg Config, store *checkpoint.Store) (*recorder, *Tailer) {
	t.Helper()
	if store == nil {
		store, _ = checkpoint.Open("")
	}
	cfg.PollInterval, cfg.ScanInterval, cfg.RotateWait = 10*time.Millisecond, 30*time.Millisecond, 100*time.Millisecond
	rec := &recorder{}
	tl := New(cfg, store, rec, slog.New(slog.DiscardHandler))
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- tl.Run(context.Background(), stop) }()
	t.Cleanup(func() {
		close(stop)
		if err := <-done; err != nil {
			t.Errorf("tailer: %v", err)
		}
	})
	return rec, tl
}

func appendLines(t *testing.T, f *os.File, prefix string, from, to int) {
	t.Helper()
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "%s %d\n", prefix, i)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
}

func expectExactly(t *testing.T, got []string, prefix string, n int) {
	t.Helper()
	seen := map[string]int{}
	for _, l := range got {
		seen[l]++
	}
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("%s %d", prefix, i)
		if seen[k] != 1 {
			t.Errorf("line %q seen %d times", k, seen[k])
		}
	}
	if len(got) != n {
		t.Errorf("got %d lines, want %d", len(got), n)
	}
}

func TestRenameRotationReadsTheOldFileToItsEnd(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	f, _ := os.Create(path)
	appendLines(t, f, "line", 0, 100)
	rec, _ := run(t, Config{Include: []string{path}}, nil)
	rec.waitFor(t, 100)
	os.Rename(path, path+".1")
	appendLines(t, f, "line", 100, 150) // the writer still holds the old file
	f.Close()
	nf, _ := os.Create(path)
	appendLines(t, nf, "line", 150, 200)
	nf.Close()
	expectExactly(t, rec.waitFor(t, 200), "line", 200)
}

func TestCopyTruncateWithTheCopyInTheGlobs(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	f, _ := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	appendLines(t, f, "line", 0, 100)
	rec, _ := run(t, Config{Include: []string{path + "*"}}, nil)
	rec.waitFor(t, 50)
	appendLines(t, f, "line", 100, 300) // perhaps not read yet when the copy is made
	data, _ := os.ReadFile(path)
	os.WriteFile(path+".1", data, 0o644)
	f.Truncate(0)
	appendLines(t, f, "line", 300, 400)
	f.Close()
	expectExactly(t, rec.waitFor(t, 400), "line", 400)
}

func TestDeletedFileIsReadToItsEnd(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	f, _ := os.Create(path)
	appendLines(t, f, "line", 0, 10)
	rec, tl := run(t, Config{Include: []string{path}}, nil)
	rec.waitFor(t, 10)
	os.Remove(path)
	appendLines(t, f, "line", 10, 20)
	f.Close()
	expectExactly(t, rec.waitFor(t, 20), "line", 20)
	deadline := time.Now().Add(10 * time.Second)
	for len(tl.Files()) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(tl.Files()); n != 0 {
		t.Errorf("deleted, shipped file still open (%d files)", n)
	}
}

func TestLongLinesAreCutMarkedAndCounted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	long := strings.Repeat("x", 10000)
	os.WriteFile(path, []byte("a\n"+long+"\nb\n"+long[:1000]+"\n"), 0o644)
	rec, tl := run(t, Config{Include: []string{path}, MaxLineBytes: 1000, ReadBufferBytes: 256}, nil)
	got := rec.waitFor(t, 4)
	want := []string{"a", long[:1000] + TruncatedMarker, "b", long[:1000]}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("lines %q", got)
	}
	if rec.truncated != 1 || tl.Stats().LinesTruncated != 1 {
		t.Errorf("truncated count %d / %d", rec.truncated, tl.Stats().LinesTruncated)
	}
}

func keyOf(t *testing.T, path string, fpLine string) checkpoint.Key {
	st, _ := os.Stat(path)
	sys := st.Sys().(*syscall.Stat_t)
	h := fnv.New64a()
	h.Write([]byte(fpLine))
	return checkpoint.Key{Dev: uint64(sys.Dev), Ino: sys.Ino, FP: h.Sum64(), FPLen: len(fpLine)}
}

func TestCheckpointResumesOnlyTheSameContent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	os.WriteFile(path, []byte("line 0\nline 1\nline 2\n"), 0o644)
	cpPath := filepath.Join(dir, "cp.json")

	// the right file at offset 7: resume after "line 0"
	s, _ := checkpoint.Open(cpPath)
	s.Track(keyOf(t, path, "line 0\n"), path, 7)
	s.Save()
	s, _ = checkpoint.Open(cpPath)
	rec, _ := run(t, Config{Include: []string{path}}, s)
	if got := rec.waitFor(t, 2); strings.Join(got, "|") != "line 1|line 2" {
		t.Errorf("resumed lines %q", got)
	}

	// same device+inode, other first line (inode reused): from the head
	path2 := filepath.Join(dir, "b.log")
	os.WriteFile(path2, []byte("new 0\nnew 1\n"), 0o644)
	s2, _ := checkpoint.Open("")
	s2.Track(keyOf(t, path2, "old 0\n"), path2, 6)
	s2, _ = reload(t, s2, filepath.Join(dir, "cp2.json"))
	rec2, _ := run(t, Config{Include: []string{path2}}, s2)
	if got := rec2.waitFor(t, 2); strings.Join(got, "|") != "new 0|new 1" {
		t.Errorf("inode reuse: lines %q, want the whole new file", got)
	}
}

func reload(t *testing.T, s *checkpoint.Store, path string) (*checkpoint.Store, error) {
	t.Helper()
	n, _ := checkpoint.Open(path)
	for _, r := range s.Snapshot() {
		k, _ := r.Key()
		n.Track(k, r.Path, r.Offset)
	}
	n.Save()
	return checkpoint.Open(path)
}

func TestMatch(t *testing.T) {
	inc := []string{"/var/log/*.log", "/var/log/containers/*"}
	exc := []string{"*.gz", "/var/log/containers/kube-*"}
	for p, want := range map[string]bool{"/var/log/a.log": true, "/var/log/a.log.gz": false, "/var/log/x.txt": false,
		"/var/log/containers/app_ns_c.log": true, "/var/log/containers/kube-proxy.log": false} {
		if Match(inc, exc, p) != want {
			t.Errorf("Match(%s) != %v", p, want)
		}
	}
}

func TestEmptyDeletedFileIsClosed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "empty.log")
	os.WriteFile(path, nil, 0o644)
	_, tl := run(t, Config{Include: []string{path}}, nil)
	deadline := time.Now().Add(10 * time.Second)
	for len(tl.Files()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	os.Remove(path)
	for len(tl.Files()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(tl.Files()); n != 0 {
		t.Fatalf("an empty deleted file is still open")
	}
}

func TestSymlinkedPathFollowsItsTargetAcrossRotation(t *testing.T) {
	// kubelet style: /var/log/containers/x.log → /var/log/pods/.../0.log
	dir := t.TempDir()
	pods := filepath.Join(dir, "pods")
	os.MkdirAll(pods, 0o755)
	target := filepath.Join(pods, "0.log")
	link := filepath.Join(dir, "x.log")
	f, _ := os.Create(target)
	appendLines(t, f, "line", 0, 10)
	os.Symlink(target, link)
	rec, _ := run(t, Config{Include: []string{link}}, nil)
	rec.waitFor(t, 10)
	os.Rename(target, target+".20240115-143201")
	appendLines(t, f, "line", 10, 20)
	f.Close()
	nf, _ := os.Create(target)
	appendLines(t, nf, "line", 20, 30)
	nf.Close()
	expectExactly(t, rec.waitFor(t, 30), "line", 30)
}

func TestTruncatedFileRestartingWithTheSameFirstLineIsReadFromZero(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	f, _ := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	f.WriteString("=== banner ===\n")
	appendLines(t, f, "old", 0, 50)
	rec, _ := run(t, Config{Include: []string{path}}, nil)
	rec.waitFor(t, 51)
	f.Truncate(0)
	f.WriteString("=== banner ===\n")
	appendLines(t, f, "new", 0, 5)
	f.Close()
	got := rec.waitFor(t, 51+6)
	if len(got) != 57 || got[51] != "=== banner ===" || got[56] != "new 4" {
		t.Fatalf("after truncation with the same first line: %d lines, tail %q", len(got), got[min(51, len(got)):])
	}
}

func TestReadFromTailSkipsExistingLinesButNotNewFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.log")
	f, _ := os.Create(path)
	appendLines(t, f, "old", 0, 5)
	rec, _ := runFrom(t, Config{Include: []string{filepath.Join(dir, "*.log")}}, nil)
	deadline := time.Now().Add(10 * time.Second)
	for rec.openedCount() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	appendLines(t, f, "new", 0, 3)
	f.Close()
	os.WriteFile(filepath.Join(dir, "b.log"), []byte("later 0\n"), 0o644) // appeared later: from its head
	got := rec.waitFor(t, 4)
	if strings.Join(got, "|") != "new 0|new 1|new 2|later 0" {
		t.Fatalf("lines %q", got)
	}
}

func TestRotatedAwayFileKnownFromTheCheckpointIsFinished(t *testing.T) {
	// the adapter stopped while app.log.1 (rotated out of the globs) was
	// not fully shipped: at start it is found through the checkpoint's path
	dir := t.TempDir()
	rotated := filepath.Join(dir, "app.log.1")
	os.WriteFile(rotated, []byte("line 0\nline 1\nline 2\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "app.log"), nil, 0o644)
	s, _ := checkpoint.Open("")
	s.Track(keyOf(t, rotated, "line 0\n"), rotated, 7)
	s, _ = reload(t, s, filepath.Join(dir, "cp.json"))
	rec, _ := run(t, Config{Include: []string{filepath.Join(dir, "app.log")}}, s)
	if got := rec.waitFor(t, 2); strings.Join(got, "|") != "line 1|line 2" {
		t.Fatalf("lines %q, want the rest of the rotated file", got)
	}
}

// More files than --max-open-files: every file is read exactly once, idle
// ones are closed and reopened by identity when they grow.
func TestMaxOpenFilesReadsEveryFileOnce(t *testing.T) {
	dir := t.TempDir()
	var fs []*os.File
	for i := 0; i < 60; i++ {
		f, _ := os.Create(filepath.Join(dir, fmt.Sprintf("f%02d.log", i)))
		appendLines(t, f, fmt.Sprintf("f%02d", i), 0, 5)
		fs = append(fs, f)
	}
	rec, tl := run(t, Config{Include: []string{filepath.Join(dir, "*.log")}, MaxOpenFiles: 8}, nil)
	got := rec.waitFor(t, 300)
	if len(got) != 300 {
		t.Fatalf("read %d lines of 300", len(got))
	}
	if n := tl.Stats().FilesOpen; n > 8 {
		t.Errorf("%d files open, cap 8", n)
	}
	for i, f := range fs { // they grow: reopened by identity, read on from where they were
		appendLines(t, f, fmt.Sprintf("f%02d", i), 5, 7)
		f.Close()
	}
	got = rec.waitFor(t, 420)
	for i := range fs {
		expectOnce := 0
		for _, l := range got {
			if strings.HasPrefix(l, fmt.Sprintf("f%02d ", i)) {
				expectOnce++
			}
		}
		if expectOnce != 7 {
			t.Errorf("file %d: %d lines, want 7", i, expectOnce)
		}
	}
	if len(got) != 420 {
		t.Errorf("%d lines, want 420", len(got))
	}
}

// logrotate renaming .N → .N+1 between the listing and the stat: a file
// missing from one listing keeps its identity and offset.
func TestFileMissingFromAListingIsNotReadAgain(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	f, _ := os.Create(path)
	appendLines(t, f, "line", 0, 100)
	f.Close()
	rec, _ := run(t, Config{Include: []string{path + "*"}}, nil)
	rec.waitFor(t, 100)
	for i := 1; i <= 20; i++ { // renamed again and again within the globs
		os.Rename(fmt.Sprintf("%s.%d", path, i-1), fmt.Sprintf("%s.%d", path, i))
		if i == 1 {
			os.Rename(path, path+".1")
		}
		time.Sleep(7 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	expectExactly(t, rec.snapshot(), "line", 100)
}

func TestGlobReportsListingErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.log"), nil, 0o644)
	if m, err := Glob(filepath.Join(dir, "*.log")); err != nil || len(m) != 1 {
		t.Fatalf("Glob = %v, %v", m, err)
	}
	if m, err := Glob(filepath.Join(dir, "missing", "*.log")); err != nil || len(m) != 0 {
		t.Fatalf("missing dir: %v, %v (no match is not an error)", m, err)
	}
	f := filepath.Join(dir, "a.log")
	if _, err := Glob(filepath.Join(f, "*.log")); err != nil {
		t.Fatalf("a file as a directory: %v", err)
	}
}
