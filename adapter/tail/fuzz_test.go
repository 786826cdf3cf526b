package tail

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/adapter/checkpoint"
)

type spanRecorder struct {
	lines  [][]byte
	starts []int64
	ends   []int64
	trunc  []bool
}

func (r *spanRecorder) Opened(*File) {}
func (r *spanRecorder) Line(f *File, line []byte, start, end int64, truncated bool) error {
	r.lines = append(r.lines, append([]byte(nil), line...))
	r.starts, r.ends, r.trunc = append(r.starts, start), append(r.ends, end), append(r.trunc, truncated)
	return nil
}
func (r *spanRecorder) Closing(*File) error  { return nil }
func (r *spanRecorder) Tick(time.Time) error { return nil }

// FuzzSplitLines feeds arbitrary file content through the reader with a
// tiny buffer: the lines must be exactly the newline-separated pieces (cut
// at MaxLineBytes with the marker) and their byte ranges must tile the file.
func FuzzSplitLines(f *testing.F) {
	f.Add([]byte("a\nbb\n\nccc"), 4, 3)
	f.Add([]byte("0123456789\nx\n"), 3, 2)
	f.Add([]byte("\n\n\n"), 1, 1)
	f.Fuzz(func(t *testing.T, data []byte, maxLine, bufSize int) {
		if maxLine < 1 || maxLine > 64 || bufSize < 1 || bufSize > 64 || len(data) > 4096 {
			return
		}
		path := filepath.Join(t.TempDir(), "f")
		os.WriteFile(path, data, 0o644)
		fd, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer fd.Close()
		store, _ := checkpoint.Open("")
		rec := &spanRecorder{}
		tl := New(Config{MaxLineBytes: maxLine, ReadBufferBytes: bufSize}, store, rec, slog.New(slog.DiscardHandler))
		file := &File{Path: path, fd: fd, fpReady: true, opened: true, gone: true}
		file.Pos = store.Track(checkpoint.Key{Ino: 1}, path, 0)
		for {
			n, err := tl.read(file, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
		if err := tl.drainGone(file); err != nil {
			t.Fatal(err)
		}
		// expected lines
		pieces := bytes.Split(data, []byte("\n"))
		if len(pieces) > 0 && len(pieces[len(pieces)-1]) == 0 {
			pieces = pieces[:len(pieces)-1]
		}
		if len(pieces) != len(rec.lines) {
			t.Fatalf("%d lines, want %d (%q → %q)", len(rec.lines), len(pieces), data, rec.lines)
		}
		var off int64
		for i, p := range pieces {
			want := p
			if len(p) > maxLine {
				want = append(append([]byte(nil), p[:maxLine]...), TruncatedMarker...)
			}
			if !bytes.Equal(rec.lines[i], want) || rec.trunc[i] != (len(p) > maxLine) {
				t.Fatalf("line %d = %q (truncated %v), want %q", i, rec.lines[i], rec.trunc[i], want)
			}
			if rec.starts[i] != off {
				t.Fatalf("line %d starts at %d, want %d", i, rec.starts[i], off)
			}
			off = rec.ends[i]
		}
		if off != int64(len(data)) || file.Consumed() != int64(len(data)) {
			t.Fatalf("lines end at %d, consumed %d, file has %d bytes", off, file.Consumed(), len(data))
		}
	})
}
