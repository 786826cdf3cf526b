// Package output holds the debugging sinks: stdout, a file, and discard
// (which encodes everything and throws it away — the benchmark baseline).
// They write the documents of a batch as JSON lines, without the bulk
// action lines.
//
// A Writer is safe for concurrent use (batches are written whole, one at a
// time). The file sink is exactly-once across crashes: it reports the
// file's end after each batch, the checkpoint saves it with the positions,
// and at the next start the file is cut back to the committed end (what was
// written after it is written again from the checkpoint's positions).
package output

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sidecarkit/sidecarkit/adapter/bulk"
	"github.com/sidecarkit/sidecarkit/adapter/checkpoint"
)

// Writer writes documents as JSON lines to w.
type Writer struct {
	Sent prometheus.Counter // documents written (nil: not counted)

	mu   sync.Mutex
	dst  io.Writer
	w    *bufio.Writer
	f    *os.File // the file sink (nil for stdout)
	path string
	off  int64 // file: end of the last batch written whole
}

// Stdout returns a sink writing to w (the process's stdout).
func Stdout(w io.Writer) *Writer {
	return &Writer{dst: w, w: bufio.NewWriterSize(w, 256<<10)}
}

// File returns a sink appending to path. When committed names this file,
// the file is first cut back to committed.Size: anything after it was
// written by a run that crashed before committing it, and will be written
// again.
func File(path string, committed *checkpoint.OutputMark) (*Writer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("output file %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("output file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("output file %s: %w", path, err)
	}
	end := st.Size()
	if committed != nil && committed.Path == path && committed.Size < end {
		if err := f.Truncate(committed.Size); err != nil {
			f.Close()
			return nil, fmt.Errorf("output file %s: cut back to the committed end %d: %w", path, committed.Size, err)
		}
		end = committed.Size
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("output file %s: %w", path, err)
	}
	return &Writer{dst: f, w: bufio.NewWriterSize(f, 256<<10), f: f, path: path, off: end}, nil
}

// Write implements the pipeline's sink.
func (s *Writer) Write(ctx context.Context, b *bulk.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := int64(0)
	var err error
	for _, it := range b.Items {
		var k int
		k, err = s.w.Write(b.Buf[it.Doc:it.End])
		n += int64(k)
		if err != nil {
			break
		}
	}
	if err == nil {
		err = s.w.Flush()
	}
	if err == nil && s.f != nil {
		err = s.f.Sync()
	}
	if err != nil {
		// bufio keeps an error forever: start over, and cut a file back to
		// the end of the last whole batch so the retry does not double lines
		s.w.Reset(s.dst)
		if s.f != nil {
			if terr := s.f.Truncate(s.off); terr == nil {
				_, _ = s.f.Seek(s.off, io.SeekStart)
			} else {
				err = errors.Join(err, terr)
			}
		}
		return err
	}
	if s.f != nil {
		s.off += n
		b.Out = &checkpoint.OutputMark{Path: s.path, Size: s.off}
	}
	if s.Sent != nil {
		s.Sent.Add(float64(len(b.Items)))
	}
	return nil
}

// Close flushes and closes.
func (s *Writer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.w.Flush()
	if s.f != nil {
		if cerr := s.f.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Discard drops every batch (after it was fully built).
type Discard struct {
	Sent prometheus.Counter // documents dropped (nil: not counted)
}

// Write implements the pipeline's sink.
func (d Discard) Write(_ context.Context, b *bulk.Batch) error {
	if d.Sent != nil {
		d.Sent.Add(float64(len(b.Items)))
	}
	return nil
}

// Close implements the pipeline's sink.
func (Discard) Close() error { return nil }
