// Package bulk ships batches of documents to Elasticsearch's bulk API (and
// anything that speaks it, such as VictoriaLogs' /insert/elasticsearch) and
// handles every item's result: 429 and 5xx items are retried with backoff
// and jitter for as long as it takes, other 4xx items go to a dead-letter
// file, and one bad document never holds back the others.
package bulk

import (
	"time"

	"github.com/sidecarkit/sidecarkit/adapter/checkpoint"
)

// Item locates one action+document pair in a Batch's buffer: the action
// line is Buf[Start:Doc], the document line (with its newline) Buf[Doc:End].
type Item struct {
	Start, Doc, End int
}

// Batch is one bulk request body and what it means for the checkpoint.
type Batch struct {
	Seq     uint64
	Buf     []byte
	Items   []Item
	Marks   []checkpoint.Mark
	Created time.Time
	Lines   int // physical lines in the batch (for metrics)
	// Out is set by a sink writing a file: the file's end after this batch
	// (saved with the checkpoint so a restart cuts what was not committed).
	Out *checkpoint.OutputMark
}

// Reset empties b for reuse, keeping its storage.
func (b *Batch) Reset() {
	b.Buf, b.Items, b.Marks, b.Lines = b.Buf[:0], b.Items[:0], b.Marks[:0], 0
	b.Created = time.Time{}
	b.Out = nil
}

// Action returns item i's action line (without newline).
func (b *Batch) Action(i int) []byte { it := b.Items[i]; return b.Buf[it.Start : it.Doc-1] }

// Doc returns item i's document (without newline).
func (b *Batch) Doc(i int) []byte { it := b.Items[i]; return b.Buf[it.Doc : it.End-1] }

// Mark records that the batch carries pos's data up to off; consecutive
// marks for the same position collapse into one.
func (b *Batch) Mark(pos *checkpoint.Position, off int64) {
	if n := len(b.Marks); n > 0 && b.Marks[n-1].Pos == pos {
		b.Marks[n-1].Offset = off
		return
	}
	for i := range b.Marks {
		if b.Marks[i].Pos == pos {
			b.Marks[i].Offset = off
			return
		}
	}
	b.Marks = append(b.Marks, checkpoint.Mark{Pos: pos, Offset: off})
}
