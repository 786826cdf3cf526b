// Package output holds the debugging sinks: stdout, a file, and discard
// (which encodes everything and throws it away — the benchmark baseline).
// They write the documents of a batch as JSON lines, without the bulk
// action lines.
package output

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sidecarkit/sidecarkit/adapter/bulk"
)

// Writer writes documents as JSON lines to w. Sync, when set, is called
// after every batch (a file is fsynced before the batch counts as shipped).
type Writer struct {
	Sent prometheus.Counter // documents written (nil: not counted)
	w    *bufio.Writer
	sync func() error
	c    io.Closer
}

// Stdout returns a sink writing to w (the process's stdout).
func Stdout(w io.Writer) *Writer { return &Writer{w: bufio.NewWriterSize(w, 256<<10)} }

// File returns a sink appending to path.
func File(path string) (*Writer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("output file %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("output file: %w", err)
	}
	return &Writer{w: bufio.NewWriterSize(f, 256<<10), sync: f.Sync, c: f}, nil
}

// Write implements the pipeline's sink.
func (s *Writer) Write(ctx context.Context, b *bulk.Batch) error {
	for _, it := range b.Items {
		if _, err := s.w.Write(b.Buf[it.Doc:it.End]); err != nil {
			return err
		}
	}
	if err := s.w.Flush(); err != nil {
		return err
	}
	if s.sync != nil {
		if err := s.sync(); err != nil {
			return err
		}
	}
	if s.Sent != nil {
		s.Sent.Add(float64(len(b.Items)))
	}
	return nil
}

// Close flushes and closes.
func (s *Writer) Close() error {
	err := s.w.Flush()
	if s.c != nil {
		if cerr := s.c.Close(); err == nil {
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
