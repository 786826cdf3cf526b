package output

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sidecarkit/sidecarkit/adapter/bulk"
	"github.com/sidecarkit/sidecarkit/adapter/checkpoint"
)

func batch(seq, n int) *bulk.Batch {
	b := &bulk.Batch{}
	for i := 0; i < n; i++ {
		doc := fmt.Sprintf(`{"seq":%d}`+"\n", seq*1000+i)
		it := bulk.Item{Start: len(b.Buf), Doc: len(b.Buf)}
		b.Buf = append(b.Buf, doc...)
		it.End = len(b.Buf)
		b.Items = append(b.Items, it)
	}
	return b
}

// Two senders writing at once (what --senders 2 did) must give whole,
// valid lines, each once.
func TestConcurrentWritesStayWholeLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.ndjson")
	w, err := File(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for s := 0; s < 8; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 50; k++ {
				if err := w.Write(context.Background(), batch(s*100+k, 100)); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	w.Close()
	b, _ := os.ReadFile(path)
	seen := map[int]bool{}
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		var d struct{ Seq int }
		if err := json.Unmarshal(l, &d); err != nil {
			t.Fatalf("invalid line %q", l)
		}
		if seen[d.Seq] {
			t.Fatalf("seq %d twice", d.Seq)
		}
		seen[d.Seq] = true
	}
	if len(seen) != 8*50*100 {
		t.Fatalf("%d lines, want %d", len(seen), 8*50*100)
	}
}

// A crash after writing but before committing: the next start cuts the
// file back to the committed end, so the re-sent batch is not doubled.
func TestFileIsCutBackToTheCommittedEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.ndjson")
	w, _ := File(path, nil)
	b1 := batch(1, 3)
	w.Write(context.Background(), b1)
	committed := b1.Out
	w.Write(context.Background(), batch(2, 3)) // written, never committed
	w.Close()
	w, err := File(path, committed)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(context.Background(), batch(2, 3)) // sent again after the restart
	w.Close()
	b, _ := os.ReadFile(path)
	if n := bytes.Count(b, []byte("\n")); n != 6 {
		t.Fatalf("%d lines after the restart, want 6:\n%s", n, b)
	}
	if committed.Size != int64(len(b1.Buf)) || committed.Path != path {
		t.Errorf("output mark %+v", committed)
	}
	_ = checkpoint.OutputMark{}
}
