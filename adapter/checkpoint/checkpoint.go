// Package checkpoint keeps how far each file has been shipped. A position
// only moves forward when the sink acknowledged every document up to it
// (Tracker orders out-of-order batch completions), and the positions are
// persisted atomically (temp file, fsync, rename), so a restart — even
// after SIGKILL — resumes with nothing lost (at worst re-sending documents
// whose _id makes the re-send an overwrite).
package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/sidecarkit/sidecarkit/shared/publish"
)

// Key identifies a file's content: device, inode and a fingerprint (hash) of
// its first FPLen bytes. Inode reuse with other content gives another Key.
type Key struct {
	Dev   uint64
	Ino   uint64
	FP    uint64
	FPLen int
}

// String is a compact form for logs and document ids.
func (k Key) String() string {
	return strconv.FormatUint(k.Dev, 16) + "-" + strconv.FormatUint(k.Ino, 16) + "-" + strconv.FormatUint(k.FP, 16)
}

// Position is the shipped offset of one tracked file.
type Position struct {
	Key       Key
	committed atomic.Int64

	// guarded by Store.mu
	path    string
	retired bool  // the identity ended (truncated, deleted): dropped once committed up to final
	parked  bool  // the file is closed but still exists: kept (with final) until Forget
	final   int64 // the offset read up to when it was retired or parked
}

// Committed returns the offset up to which everything was acknowledged.
func (p *Position) Committed() int64 { return p.committed.Load() }

// Advance moves the committed offset forward to off (never back).
func (p *Position) Advance(off int64) {
	for {
		cur := p.committed.Load()
		if off <= cur || p.committed.CompareAndSwap(cur, off) {
			return
		}
	}
}

// Record is one persisted position.
type Record struct {
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	FP     string `json:"fp"`
	FPLen  int    `json:"fp_len"`
	Path   string `json:"path"`
	Offset int64  `json:"offset"`
	// Closed: the file was read to this offset and closed (idle, or over
	// --max-open-files); it is reopened by identity when it grows.
	Closed bool `json:"closed,omitempty"`
}

// Key returns the record's file key.
func (r Record) Key() (Key, error) {
	fp, err := strconv.ParseUint(r.FP, 16, 64)
	if err != nil {
		return Key{}, fmt.Errorf("bad fingerprint %q", r.FP)
	}
	return Key{Dev: r.Dev, Ino: r.Ino, FP: fp, FPLen: r.FPLen}, nil
}

type fileFormat struct {
	Version int      `json:"version"`
	Files   []Record `json:"files"`
	// Output is the end of the output file (--output file) when these
	// positions were committed: anything after it was written but not
	// committed and is cut at the next start (it will be written again).
	Output *OutputMark `json:"output,omitempty"`
}

// OutputMark is the output file's committed end.
type OutputMark struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
}

// Store holds the positions of every tracked file and the records loaded at
// start that no file claimed yet.
type Store struct {
	path string // "" keeps positions in memory only

	mu        sync.Mutex
	positions map[Key]*Position
	loaded    map[Key]Record
	lastSaved []byte
	output    *OutputMark

	saveMu sync.Mutex // one Save at a time
}

// Open loads the checkpoint file at path (missing is fine). A file that
// cannot be read as a checkpoint is an error naming it.
func Open(path string) (*Store, error) {
	s := &Store{path: path, positions: map[Key]*Position{}, loaded: map[Key]Record{}}
	if path == "" {
		return s, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	var f fileFormat
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("checkpoint %s is not a checkpoint file: %v", path, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("checkpoint %s: unknown version %d", path, f.Version)
	}
	for _, r := range f.Files {
		k, err := r.Key()
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: file %s: %v", path, r.Path, err)
		}
		if r.Offset < 0 {
			return nil, fmt.Errorf("checkpoint %s: file %s: negative offset %d", path, r.Path, r.Offset)
		}
		s.loaded[k] = r
	}
	s.output = f.Output
	s.lastSaved = data
	return s, nil
}

// Lookup returns the offset to resume k at: the loaded record's, or the
// offset a parked (closed) file was read up to.
func (s *Store) Lookup(k Key) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.loaded[k]; ok {
		return r.Offset, true
	}
	if p, ok := s.positions[k]; ok && p.parked {
		return max(p.final, p.Committed()), true
	}
	return 0, false
}

// ClaimCopy looks for a loaded record (of a file the checkpoint knew before
// a restart) with the same fingerprint as k but another inode, whose own
// inode does not hold that content any more (isOriginal reports whether the
// record's file is still there with its first line): k is a copy of it
// (copytruncate while the adapter was down). The record is claimed and its
// offset returned.
func (s *Store) ClaimCopy(k Key, isOriginal func(Record) bool) (Record, bool) {
	s.mu.Lock()
	var cands []Record
	for rk, r := range s.loaded {
		if rk.FP == k.FP && rk.FPLen == k.FPLen && (rk.Ino != k.Ino || rk.Dev != k.Dev) {
			cands = append(cands, r)
		}
	}
	s.mu.Unlock()
	sort.Slice(cands, func(i, j int) bool { return cands[i].Offset > cands[j].Offset })
	for _, r := range cands {
		if isOriginal != nil && isOriginal(r) {
			continue
		}
		rk, _ := r.Key()
		s.mu.Lock()
		_, still := s.loaded[rk]
		delete(s.loaded, rk)
		s.mu.Unlock()
		if still {
			return r, true
		}
	}
	return Record{}, false
}

// Track starts tracking k at committed offset off, claiming any loaded
// record for it.
func (s *Store) Track(k Key, path string, off int64) *Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.positions[k]; ok {
		p.path, p.retired, p.parked = path, false, false
		return p
	}
	p := &Position{Key: k, path: path}
	p.committed.Store(off)
	s.positions[k] = p
	delete(s.loaded, k)
	return p
}

// SetPath records the file's current path.
func (s *Store) SetPath(p *Position, path string) {
	s.mu.Lock()
	p.path = path
	s.mu.Unlock()
}

// Retire says the file behind p will not be read past final; its position
// is dropped once everything up to final is committed.
func (s *Store) Retire(p *Position, final int64) {
	s.mu.Lock()
	p.retired, p.final = true, final
	s.mu.Unlock()
}

// Park says the file behind p was closed after being read up to final but
// still exists: its position is kept (and saved) so that the file, found
// again by identity, resumes at final instead of its head.
func (s *Store) Park(p *Position, final int64) {
	s.mu.Lock()
	p.parked, p.retired, p.final = true, false, final
	s.mu.Unlock()
}

// Forget drops p (its file is gone for good).
func (s *Store) Forget(p *Position) {
	s.mu.Lock()
	if q, ok := s.positions[p.Key]; ok && q == p {
		delete(s.positions, p.Key)
	}
	s.mu.Unlock()
}

// Output returns the output file's committed end saved with the loaded
// positions (nil when none was saved).
func (s *Store) Output() *OutputMark {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.output == nil {
		return nil
	}
	o := *s.output
	return &o
}

// Unclaimed returns loaded records no tracked file claimed (files rotated
// away while the adapter was down), and forgets them.
func (s *Store) Unclaimed() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Record
	for k, r := range s.loaded {
		out = append(out, r)
		delete(s.loaded, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Snapshot returns the records to persist (and drops retired positions that
// are fully committed).
func (s *Store) Snapshot() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, 0, len(s.positions)+len(s.loaded))
	for k, p := range s.positions {
		c := p.Committed()
		if p.retired && c >= p.final {
			delete(s.positions, k)
			continue
		}
		out = append(out, Record{Dev: k.Dev, Ino: k.Ino, FP: strconv.FormatUint(k.FP, 16), FPLen: k.FPLen, Path: p.path, Offset: c,
			Closed: p.parked && c >= p.final})
	}
	for _, r := range s.loaded {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Ino < out[j].Ino
	})
	return out
}

// Save persists the current positions atomically; it writes nothing when
// nothing changed.
func (s *Store) Save() error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	recs := s.Snapshot() // takes s.mu: consistent with Tracker's commits
	s.mu.Lock()
	out := s.output
	s.mu.Unlock()
	if s.path == "" {
		return nil
	}
	data, err := json.Marshal(fileFormat{Version: 1, Files: recs, Output: out})
	if err != nil {
		return err
	}
	s.mu.Lock()
	same := string(data) == string(s.lastSaved)
	s.mu.Unlock()
	if same {
		return nil
	}
	if _, err := publish.File(s.path, data, publish.Options{Mode: 0o600}); err != nil {
		return fmt.Errorf("write checkpoint %s: %w", s.path, err)
	}
	s.mu.Lock()
	s.lastSaved = data
	s.mu.Unlock()
	return nil
}

// Mark says a batch carried a file's data up to Offset.
type Mark struct {
	Pos    *Position
	Offset int64
}

// Tracker commits batch completions in batch order: batch n's marks apply
// only when batches 0..n-1 are complete, so a position never passes a
// document that is still in flight. Safe for concurrent use.
type Tracker struct {
	mu      sync.Mutex
	next    uint64
	pending map[uint64]done
	store   *Store
}

type done struct {
	marks []Mark
	out   *OutputMark
}

// NewTracker returns a tracker whose first batch is number 0. With a store,
// each batch's marks (and output mark) are applied under the store's lock,
// so a saved checkpoint never holds half a batch.
func NewTracker(store ...*Store) *Tracker {
	t := &Tracker{pending: map[uint64]done{}}
	if len(store) > 0 {
		t.store = store[0]
	}
	return t
}

// Done records that batch seq is fully acknowledged (or dead-lettered) and
// applies every mark that is now in order. It returns how many batches were
// applied.
func (t *Tracker) Done(seq uint64, marks []Mark) int { return t.DoneAt(seq, marks, nil) }

// DoneAt is Done for a sink that writes a file: out is the file's end after
// the batch, saved with the positions.
func (t *Tracker) DoneAt(seq uint64, marks []Mark, out *OutputMark) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending[seq] = done{marks, out}
	n := 0
	if t.store != nil {
		t.store.mu.Lock()
		defer t.store.mu.Unlock()
	}
	for {
		d, ok := t.pending[t.next]
		if !ok {
			return n
		}
		delete(t.pending, t.next)
		for _, mk := range d.marks {
			mk.Pos.Advance(mk.Offset)
		}
		if d.out != nil && t.store != nil {
			t.store.output = d.out
		}
		t.next++
		n++
	}
}

// Waiting returns how many completed batches wait for an earlier one.
func (t *Tracker) Waiting() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}
