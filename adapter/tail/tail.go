// Package tail follows log files: it discovers them by globs (and exclude
// globs) on an interval and on fsnotify events, polls for growth where
// events do not arrive, and survives every way files rotate:
//
//   - rename+create: the old file is identified by device+inode, read to its
//     end and held open until everything read from it is shipped; the new
//     file is read from its head.
//   - copytruncate: a shrinking size (or a changed fingerprint) means the
//     file was truncated; reading restarts at 0. If the copy matches the
//     globs it is recognised by its fingerprint and read from where the
//     original stopped, so nothing is read twice or lost.
//   - symlinks (Kubernetes /var/log/containers) are followed.
//   - deletion: a deleted file is read to its end, then closed.
//
// A file's identity is device+inode plus a fingerprint of its first line
// (at most FingerprintBytes), so a reused inode never resumes at a stale
// offset. Lines longer than MaxLineBytes are cut, marked and counted.
package tail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/sidecarkit/sidecarkit/adapter/checkpoint"
)

// Config says what to follow and how.
type Config struct {
	Include          []string
	Exclude          []string
	ReadFromHead     bool          // files found at start without a checkpoint: from the head (else from the end)
	PollInterval     time.Duration // growth check when no event arrives
	ScanInterval     time.Duration // glob rescan
	RotateWait       time.Duration // a rotated/deleted file read to its end is closed after this long without growth
	MaxLineBytes     int
	ReadBufferBytes  int
	FingerprintBytes int
	Watch            bool // use fsnotify (polling always runs too)
}

// TruncatedMarker ends a line cut at MaxLineBytes.
const TruncatedMarker = "…[truncated]"

// Handler receives what the tailer reads. All calls come from the tailer's
// goroutine. Line may block (that is the backpressure).
type Handler interface {
	// Opened: f has a (new) identity and will get lines.
	Opened(f *File)
	// Line: one line (without newline) spanning [start, end) of f.
	Line(f *File, line []byte, start, end int64, truncated bool) error
	// Closing: no more lines will come for f's current identity (flush any
	// held multiline record now).
	Closing(f *File) error
	// Tick: called at every turn of the loop.
	Tick(now time.Time) error
}

// File is one followed file.
type File struct {
	Path  string // path it was found at (current path once rotated away)
	Key   checkpoint.Key
	Pos   *checkpoint.Position
	State any // the handler's per-file state

	fd        *os.File
	dev, ino  uint64
	buf       []byte // unconsumed bytes: buf[0] is at file offset consumed
	consumed  int64  // bytes handed out as lines (or skipped)
	readOff   int64  // file offset of the next read
	fpReady   bool
	opened    bool // Opened was called for the current identity
	gone      bool
	goneAt    time.Time
	growth    time.Time // last time data was read
	waitSince time.Time // copy of another live file: waiting
	startOff  int64     // where reading started (a copy may still be shorter)
	lastTry   time.Time // last attempt to settle the identity
	atEOF     bool      // the last read met the end: check identity before reading on
	long      []byte    // head of an overlong line being skipped
	longStart int64
	skipping  bool
	size      int64
}

// Consumed returns the offset up to which lines were handed out.
func (f *File) Consumed() int64 { return f.consumed }

// Stats are counters the tailer keeps (read them with Tailer.Stats).
type Stats struct {
	BytesRead      int64
	LinesTruncated int64
	Rotations      int64
	Truncations    int64
}

// FileStat is one file's progress, for the bytes-behind metric.
type FileStat struct {
	Path      string
	Size      int64
	Committed int64
}

type fileRef struct {
	path string
	fd   *os.File
	pos  *checkpoint.Position
}

type fpKey struct {
	fp  uint64
	len int
}

type devIno struct{ dev, ino uint64 }

// Tailer follows files. Create with New, run with Run.
type Tailer struct {
	cfg   Config
	store *checkpoint.Store
	h     Handler
	log   *slog.Logger

	files     map[devIno]*File
	order     []*File
	truncated map[fpKey]truncRec
	initial   bool
	wake      chan struct{}

	mu    sync.Mutex
	stats Stats
	snap  []fileRef
}

type truncRec struct {
	off int64
	at  time.Time
	di  devIno // the truncated file itself (its new content is not its copy)
}

// New prepares a tailer.
func New(cfg Config, store *checkpoint.Store, h Handler, log *slog.Logger) *Tailer {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 250 * time.Millisecond
	}
	if cfg.ScanInterval <= 0 {
		cfg.ScanInterval = time.Second
	}
	if cfg.RotateWait <= 0 {
		cfg.RotateWait = 5 * time.Second
	}
	if cfg.MaxLineBytes <= 0 {
		cfg.MaxLineBytes = 1 << 20
	}
	if cfg.ReadBufferBytes <= 0 {
		cfg.ReadBufferBytes = 256 << 10
	}
	if cfg.FingerprintBytes <= 0 {
		cfg.FingerprintBytes = 256
	}
	return &Tailer{cfg: cfg, store: store, h: h, log: log, files: map[devIno]*File{}, truncated: map[fpKey]truncRec{},
		initial: true, wake: make(chan struct{}, 1)}
}

// Stats returns the counters.
func (t *Tailer) Stats() Stats { t.mu.Lock(); defer t.mu.Unlock(); return t.stats }

// Files returns every open file's progress: its size now and the offset
// acknowledged now (safe to call while the tailer is blocked).
func (t *Tailer) Files() []FileStat {
	t.mu.Lock()
	refs := append([]fileRef(nil), t.snap...)
	t.mu.Unlock()
	out := make([]FileStat, 0, len(refs))
	for _, r := range refs {
		st, err := r.fd.Stat()
		if err != nil { // closed meanwhile
			continue
		}
		var c int64
		if r.pos != nil {
			c = r.pos.Committed()
		}
		out = append(out, FileStat{Path: r.path, Size: st.Size(), Committed: c})
	}
	return out
}

// Run follows files until stop closes (or ctx ends, or the handler fails).
// On stop it flushes every held record (Closing) and returns.
func (t *Tailer) Run(ctx context.Context, stop <-chan struct{}) error {
	var events chan fsnotify.Event
	if t.cfg.Watch {
		if w, err := fsnotify.NewWatcher(); err != nil {
			t.log.Warn("tail: fsnotify unavailable; polling only", "err", err)
		} else {
			defer w.Close()
			t.watch(w)
			events = w.Events
			go func() {
				for err := range w.Errors {
					t.log.Warn("tail: fsnotify error; polling continues", "err", err)
				}
			}()
		}
	}
	defer t.closeAll()
	if err := t.scan(time.Now()); err != nil {
		return err
	}
	t.initial = false
	t.resumeUnclaimed()
	nextScan := time.Now().Add(t.cfg.ScanInterval)
	timer := time.NewTimer(t.cfg.PollInterval)
	defer timer.Stop()
	for {
		select {
		case <-stop:
			return t.flushAll()
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		progress, err := t.readAll(ctx, stop)
		if err != nil {
			return err
		}
		now := time.Now()
		if !now.Before(nextScan) {
			if err := t.scan(now); err != nil {
				return err
			}
			nextScan = now.Add(t.cfg.ScanInterval)
		}
		if err := t.h.Tick(now); err != nil {
			return err
		}
		if progress {
			continue
		}
		timer.Reset(t.cfg.PollInterval)
		select {
		case <-stop:
			return t.flushAll()
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-events:
			if !ok {
				events = nil
			} else if ev.Op&(fsnotify.Create|fsnotify.Rename|fsnotify.Remove) != 0 {
				nextScan = time.Time{} // a file came or went: rescan now
			}
		case <-timer.C:
		case <-t.wake:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func (t *Tailer) watch(w *fsnotify.Watcher) {
	seen := map[string]bool{}
	for _, p := range t.cfg.Include {
		dir := filepath.Dir(p)
		for hasMeta(dir) {
			dir = filepath.Dir(dir)
		}
		if seen[dir] {
			continue
		}
		seen[dir] = true
		if err := w.Add(dir); err != nil {
			t.log.Info("tail: cannot watch directory; polling it", "dir", dir, "err", err)
		}
	}
}

func hasMeta(p string) bool { return bytes.ContainsAny([]byte(p), `*?[\`) }

// Match reports whether path is selected by the include and exclude globs.
func Match(include, exclude []string, path string) bool {
	in := false
	for _, p := range include {
		if ok, _ := filepath.Match(p, path); ok {
			in = true
			break
		}
	}
	if !in {
		return false
	}
	base := filepath.Base(path)
	for _, p := range exclude {
		if ok, _ := filepath.Match(p, path); ok {
			return false
		}
		if ok, _ := filepath.Match(p, base); ok {
			return false
		}
	}
	return true
}

// scan discovers new files, notices rotated, deleted and truncated ones,
// and settles the identity of files whose first line is complete.
func (t *Tailer) scan(now time.Time) error {
	seen := map[devIno]bool{}
	var paths []string
	for _, p := range t.cfg.Include {
		m, err := filepath.Glob(p)
		if err != nil {
			return fmt.Errorf("glob %q: %w", p, err)
		}
		paths = append(paths, m...)
	}
	sort.Strings(paths)
	for _, path := range paths {
		if !Match(t.cfg.Include, t.cfg.Exclude, path) {
			continue
		}
		st, err := os.Stat(path)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		sys := st.Sys().(*syscall.Stat_t)
		di := devIno{uint64(sys.Dev), sys.Ino}
		if seen[di] {
			continue
		}
		seen[di] = true
		if f := t.files[di]; f != nil {
			if f.gone {
				f.gone = false
			}
			if f.Path != path {
				f.Path = path
				if f.Pos != nil {
					t.store.SetPath(f.Pos, path)
				}
			}
			continue
		}
		fd, err := os.Open(path)
		if err != nil {
			t.log.Warn("tail: cannot open file", "path", path, "err", err)
			continue
		}
		fst, err := fd.Stat()
		if err != nil || fst.Sys().(*syscall.Stat_t).Ino != sys.Ino {
			fd.Close() // replaced between stat and open: next scan
			continue
		}
		f := &File{Path: path, fd: fd, dev: di.dev, ino: di.ino, growth: now}
		t.files[di] = f
		t.order = append(t.order, f)
		t.log.Info("tail: following file", "path", path, "inode", di.ino)
	}
	for di, f := range t.files {
		if !seen[di] && !f.gone {
			t.markGone(f, now, "no longer at a matched path")
		}
	}
	for _, f := range append([]*File(nil), t.order...) {
		if err := t.check(f, now); err != nil {
			return err
		}
	}
	for k, r := range t.truncated {
		if now.Sub(r.at) > 10*t.cfg.RotateWait+time.Minute {
			delete(t.truncated, k)
		}
	}
	t.publish()
	return nil
}

func (t *Tailer) markGone(f *File, now time.Time, why string) {
	f.gone, f.goneAt = true, now
	if p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.fd.Fd()))); err == nil {
		f.Path = p
		if f.Pos != nil {
			t.store.SetPath(f.Pos, p)
		}
	}
	t.mu.Lock()
	t.stats.Rotations++
	t.mu.Unlock()
	t.log.Info("tail: file rotated or removed; reading it to its end", "path", f.Path, "why", why)
}

// check handles one file's state changes: deletion, truncation, identity.
func (t *Tailer) check(f *File, now time.Time) error {
	st, err := f.fd.Stat()
	if err != nil {
		return nil
	}
	sys := st.Sys().(*syscall.Stat_t)
	f.size = st.Size()
	if sys.Nlink == 0 && !f.gone {
		t.markGone(f, now, "deleted")
	}
	if f.fpReady {
		truncated := f.size < f.readOff && !(f.readOff == f.startOff && now.Sub(f.growth) < t.cfg.RotateWait)
		if !truncated {
			fp, n, ok := t.fingerprint(f, f.Key.FPLen)
			truncated = ok && (fp != f.Key.FP || n != f.Key.FPLen)
		}
		if truncated {
			if err := t.truncate(f, now); err != nil {
				return err
			}
		}
	}
	if !f.fpReady {
		return t.settle(f, now)
	}
	return nil
}

// fingerprint hashes the first line of f (at most FingerprintBytes), or the
// first want bytes when want > 0. ok is false until that much is there.
func (t *Tailer) fingerprint(f *File, want int) (fp uint64, n int, ok bool) {
	size := t.cfg.FingerprintBytes
	if want > 0 {
		size = want
	}
	buf := make([]byte, size)
	n, err := f.fd.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, 0, false
	}
	buf = buf[:n]
	if want > 0 {
		if n < want {
			return 0, n, true // shorter than before: certainly changed
		}
	} else if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		buf = buf[:i+1]
	} else if n < size {
		if f.gone && n > 0 { // never getting a full first line: settle for what is there
			h := fnv.New64a()
			h.Write(buf)
			return h.Sum64(), n, true
		}
		return 0, 0, false
	}
	h := fnv.New64a()
	h.Write(buf)
	return h.Sum64(), len(buf), true
}

// truncate handles a file cut (copytruncate): what is still held is
// flushed, the old identity retired, and reading restarts at 0.
func (t *Tailer) truncate(f *File, now time.Time) error {
	t.log.Info("tail: file truncated; reading it again from the start", "path", f.Path, "was_at", f.readOff, "size", f.size)
	if err := t.finish(f); err != nil {
		return err
	}
	t.truncated[fpKey{f.Key.FP, f.Key.FPLen}] = truncRec{off: f.consumed, at: now, di: devIno{f.dev, f.ino}}
	t.mu.Lock()
	t.stats.Truncations++
	t.mu.Unlock()
	f.fpReady, f.opened = false, false
	f.Key, f.Pos = checkpoint.Key{}, nil
	f.buf = f.buf[:0]
	f.consumed, f.readOff, f.startOff = 0, 0, 0
	f.long, f.skipping = nil, false
	f.atEOF = false
	f.growth = now
	return nil
}

// finish ends f's current identity: a held partial line is emitted (only
// when the file will not grow: gone), held records are flushed, and the
// position is retired at what was consumed.
func (t *Tailer) finish(f *File) error {
	if f.opened {
		if err := t.h.Closing(f); err != nil {
			return err
		}
	}
	if f.Pos != nil {
		t.store.Retire(f.Pos, f.consumed)
	}
	return nil
}

// settle gives a file whose first line is complete its identity and start
// offset.
func (t *Tailer) settle(f *File, now time.Time) error {
	fp, n, ok := t.fingerprint(f, 0)
	if !ok {
		return nil
	}
	key := checkpoint.Key{Dev: f.dev, Ino: f.ino, FP: fp, FPLen: n}
	fk := fpKey{fp, n}
	var off int64
	how := "head"
	if c, ok := t.store.Lookup(key); ok {
		off, how = c, "checkpoint"
	} else if r, ok := t.truncated[fk]; ok && r.di != (devIno{f.dev, f.ino}) {
		// the copy of a file that was then truncated: continue where the
		// original stopped
		off, how = r.off, "copy of a truncated file"
		delete(t.truncated, fk)
	} else if g := t.twin(f, fk); g != nil {
		// a copy of a file still being read (copytruncate in progress?):
		// wait for the original to be truncated, or take its position
		if f.waitSince.IsZero() {
			f.waitSince = now
			t.log.Info("tail: file looks like a copy of another; waiting", "path", f.Path, "original", g.Path)
			return nil
		}
		if now.Sub(f.waitSince) < t.cfg.RotateWait {
			return nil
		}
		off, how = g.consumed, "copy of a live file"
	} else if t.initial && !t.cfg.ReadFromHead {
		off, how = f.size, "end"
	}
	if st, err := f.fd.Stat(); err == nil && off > st.Size() && how == "checkpoint" {
		off, how = 0, "head (checkpoint beyond end)"
	}
	f.Key = key
	f.fpReady = true
	f.waitSince = time.Time{}
	f.consumed, f.readOff, f.startOff = off, off, off
	f.buf = f.buf[:0]
	f.Pos = t.store.Track(key, f.Path, off)
	f.opened = true
	t.h.Opened(f)
	t.log.Info("tail: reading file", "path", f.Path, "from", off, "because", how)
	return nil
}

func (t *Tailer) twin(f *File, k fpKey) *File {
	for _, g := range t.order {
		if g != f && g.fpReady && g.Key.FP == k.fp && g.Key.FPLen == k.len {
			return g
		}
	}
	return nil
}

// resumeUnclaimed reopens files the checkpoint knows that no glob matches
// any more (rotated away while the adapter was down) and reads them to
// their end.
func (t *Tailer) resumeUnclaimed() {
	for _, r := range t.store.Unclaimed() {
		key, err := r.Key()
		if err != nil {
			continue
		}
		fd, err := os.Open(r.Path)
		if err != nil {
			continue
		}
		st, err := fd.Stat()
		sys, _ := st.Sys().(*syscall.Stat_t)
		if err != nil || sys == nil || uint64(sys.Dev) != key.Dev || sys.Ino != key.Ino {
			fd.Close()
			continue
		}
		f := &File{Path: r.Path, fd: fd, dev: key.Dev, ino: key.Ino, growth: time.Now()}
		if fp, n, ok := t.fingerprint(f, key.FPLen); !ok || fp != key.FP || n != key.FPLen {
			fd.Close()
			continue
		}
		di := devIno{key.Dev, key.Ino}
		if t.files[di] != nil {
			fd.Close()
			continue
		}
		f.Key, f.fpReady, f.opened = key, true, true
		f.consumed, f.readOff, f.startOff = r.Offset, r.Offset, r.Offset
		f.Pos = t.store.Track(key, r.Path, r.Offset)
		f.gone, f.goneAt = true, time.Now()
		t.files[di] = f
		t.order = append(t.order, f)
		t.h.Opened(f)
		t.log.Info("tail: finishing a rotated file known from the checkpoint", "path", r.Path, "from", r.Offset)
	}
}

// readAll reads a chunk from every file and closes drained rotated files.
func (t *Tailer) readAll(ctx context.Context, stop <-chan struct{}) (progress bool, err error) {
	now := time.Now()
	for i := 0; i < len(t.order); i++ {
		f := t.order[i]
		if !f.fpReady {
			// a new or truncated file whose first line is not complete yet
			if now.Sub(f.lastTry) >= t.cfg.PollInterval {
				f.lastTry = now
				if err := t.settle(f, now); err != nil {
					return progress, err
				}
			}
			if !f.fpReady {
				if f.gone && now.Sub(f.goneAt) >= t.cfg.RotateWait {
					t.close(f) // gone before it held a single byte
					i--
				}
				continue
			}
		}
		n, err := t.read(f, 4*t.cfg.ReadBufferBytes)
		if err != nil {
			return progress, err
		}
		if n > 0 {
			progress = true
			f.growth = now
		} else if f.gone && now.Sub(f.growth) >= t.cfg.RotateWait {
			if err := t.drainGone(f); err != nil {
				return progress, err
			}
			if f.Pos.Committed() >= f.consumed { // everything read from it is shipped
				t.close(f)
				i--
			}
		}
		select {
		case <-stop:
			return progress, nil
		default:
		}
	}
	return progress, nil
}

// drainGone emits the last, unterminated line of a file that will not grow.
func (t *Tailer) drainGone(f *File) error {
	if f.skipping {
		f.consumed += int64(len(f.buf))
		f.buf = f.buf[:0]
		f.skipping = false
		return t.emitLong(f, f.consumed)
	}
	if len(f.buf) > 0 {
		start := f.consumed
		end := start + int64(len(f.buf))
		line := f.buf
		f.consumed = end
		f.buf = f.buf[:0]
		if len(line) > t.cfg.MaxLineBytes {
			f.long = append(f.long[:0], line[:t.cfg.MaxLineBytes]...)
			f.longStart = start
			if err := t.emitLong(f, end); err != nil {
				return err
			}
		} else if err := t.h.Line(f, line, start, end, false); err != nil {
			return err
		}
	}
	return t.h.Closing(f)
}

func (t *Tailer) close(f *File) {
	if f.opened {
		t.h.Closing(f)
	}
	if f.Pos != nil {
		t.store.Retire(f.Pos, f.consumed)
	}
	f.fd.Close()
	delete(t.files, devIno{f.dev, f.ino})
	for i, g := range t.order {
		if g == f {
			t.order = append(t.order[:i], t.order[i+1:]...)
			break
		}
	}
	t.log.Info("tail: closed rotated file after shipping it", "path", f.Path, "offset", f.consumed)
}

// changed reports whether f was truncated or rewritten since it was last
// read to its end: smaller than what was read, or another first line.
func (t *Tailer) changed(f *File) bool {
	if st, err := f.fd.Stat(); err == nil {
		f.size = st.Size()
		if f.size < f.readOff && f.readOff > f.startOff {
			return true
		}
		if f.size == f.readOff {
			return false // nothing new: nothing to check yet
		}
	}
	fp, n, ok := t.fingerprint(f, f.Key.FPLen)
	return ok && (fp != f.Key.FP || n != f.Key.FPLen)
}

// read reads up to budget bytes from f and hands out its complete lines.
func (t *Tailer) read(f *File, budget int) (int, error) {
	if f.atEOF {
		// new data after a pause: make sure it is the same file first
		// (copytruncate may have refilled it past our offset)
		if t.changed(f) {
			if err := t.truncate(f, time.Now()); err != nil {
				return 0, err
			}
			return 0, nil
		}
		if f.size == f.readOff {
			return 0, nil
		}
		f.atEOF = false
	}
	total := 0
	for total < budget {
		if f.buf == nil {
			f.buf = make([]byte, 0, t.cfg.ReadBufferBytes)
		}
		if len(f.buf) == cap(f.buf) {
			if err := t.full(f); err != nil {
				return total, err
			}
		}
		n, err := f.fd.ReadAt(f.buf[len(f.buf):cap(f.buf)], f.readOff)
		if n < cap(f.buf)-len(f.buf) {
			f.atEOF = true
		}
		if n == 0 {
			if err != nil && !errors.Is(err, io.EOF) {
				t.log.Warn("tail: read failed", "path", f.Path, "err", err)
			}
			break
		}
		f.buf = f.buf[:len(f.buf)+n]
		f.readOff += int64(n)
		total += n
		if err := t.lines(f); err != nil {
			return total, err
		}
	}
	if total > 0 {
		t.mu.Lock()
		t.stats.BytesRead += int64(total)
		t.mu.Unlock()
	}
	return total, nil
}

// lines hands out the complete lines in f.buf and keeps the rest.
func (t *Tailer) lines(f *File) error {
	b := f.buf
	i := 0
	for {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		end := i + j
		start := f.consumed + int64(i)
		off := f.consumed + int64(end+1)
		if f.skipping {
			f.skipping = false
			i = end + 1
			if err := t.emitLong(f, off); err != nil {
				return err
			}
			continue
		}
		if end-i > t.cfg.MaxLineBytes {
			f.long = append(f.long[:0], b[i:i+t.cfg.MaxLineBytes]...)
			f.longStart = start
			i = end + 1
			if err := t.emitLong(f, off); err != nil {
				return err
			}
			continue
		}
		if err := t.h.Line(f, b[i:end], start, off, false); err != nil {
			return err
		}
		i = end + 1
	}
	f.consumed += int64(i)
	rest := copy(b, b[i:])
	f.buf = b[:rest]
	if cap(f.buf) > 2*t.cfg.ReadBufferBytes && rest <= t.cfg.ReadBufferBytes/2 {
		// a long line grew the buffer: give the memory back
		nb := make([]byte, rest, t.cfg.ReadBufferBytes)
		copy(nb, f.buf)
		f.buf = nb
	}
	return nil
}

// full handles a buffer holding no newline: grow it up to MaxLineBytes,
// then cut the line and skip to its end.
func (t *Tailer) full(f *File) error {
	if f.skipping {
		f.consumed += int64(len(f.buf))
		f.buf = f.buf[:0]
		return nil
	}
	if len(f.buf) <= t.cfg.MaxLineBytes {
		nb := make([]byte, len(f.buf), min(2*cap(f.buf), t.cfg.MaxLineBytes+1))
		if cap(nb) <= len(f.buf) {
			nb = make([]byte, len(f.buf), len(f.buf)+1)
		}
		copy(nb, f.buf)
		f.buf = nb
		return nil
	}
	f.long = append(f.long[:0], f.buf[:t.cfg.MaxLineBytes]...)
	f.longStart = f.consumed
	f.consumed += int64(len(f.buf))
	f.buf = make([]byte, 0, t.cfg.ReadBufferBytes) // give the big buffer back
	f.skipping = true
	return nil
}

func (t *Tailer) emitLong(f *File, end int64) error {
	t.mu.Lock()
	t.stats.LinesTruncated++
	t.mu.Unlock()
	line := append(f.long, TruncatedMarker...)
	f.long = nil
	return t.h.Line(f, line, f.longStart, end, true)
}

func (t *Tailer) flushAll() error {
	for _, f := range t.order {
		if f.opened {
			if err := t.h.Closing(f); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *Tailer) closeAll() {
	for _, f := range t.order {
		f.fd.Close()
	}
	t.files = map[devIno]*File{}
	t.order = nil
}

func (t *Tailer) publish() {
	snap := make([]fileRef, 0, len(t.order))
	for _, f := range t.order {
		snap = append(snap, fileRef{path: f.Path, fd: f.fd, pos: f.Pos})
	}
	t.mu.Lock()
	t.snap = snap
	t.mu.Unlock()
}
