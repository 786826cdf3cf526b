// Package tail follows log files: it discovers them by globs (and exclude
// globs) on an interval and on fsnotify events, polls for growth where
// events do not arrive, and survives every way files rotate:
//
//   - rename+create: the old file is identified by device+inode, read to its
//     end and held open until everything read from it is shipped; the new
//     file is read from its head. A file renamed within the globs
//     (app.log.1 → app.log.2) keeps its identity and offset.
//   - copytruncate: a shrinking size (or a changed fingerprint) means the
//     file was truncated; reading restarts at 0. The copy (in the globs or
//     next to the file under a rotated name) is recognised by its
//     fingerprint and read from where the original stopped — never from 0
//     because it is shorter.
//   - symlinks (Kubernetes /var/log/containers) are followed.
//   - deletion: a deleted file is read to its end, then closed.
//
// A file's identity is device+inode plus a fingerprint of its first line
// (at most FingerprintBytes), so a reused inode never resumes at a stale
// offset. A file missing from one directory listing (renamed between the
// listing and the stat) is not taken as gone: the open descriptor says
// where it is. Open files are capped (MaxOpenFiles): idle files are closed
// and reopened by identity when they grow. Lines longer than MaxLineBytes
// are cut, marked and counted.
package tail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
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
	// MaxOpenFiles caps the files held open (0: half the process's
	// RLIMIT_NOFILE). Files read to their end are closed when more are
	// needed and reopened by identity when they grow.
	MaxOpenFiles int
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

	fd         *os.File // nil while parked (closed, kept by identity)
	dev, ino   uint64
	buf        []byte // unconsumed bytes: buf[0] is at file offset consumed
	consumed   int64  // bytes handed out as lines (or skipped)
	readOff    int64  // file offset of the next read
	fpReady    bool
	opened     bool // Opened was called for the current identity
	gone       bool
	goneAt     time.Time
	growth     time.Time // last time data was read
	waitSince  time.Time // copy of another live file: waiting
	startOff   int64     // where reading started (a copy may still be shorter)
	lastTry    time.Time // last attempt to settle the identity
	atEOF      bool      // the last read met the end: check identity before reading on
	long       []byte    // head of an overlong line being skipped
	longStart  int64
	skipping   bool
	size       int64
	lastSeen   time.Time // last scan that listed it
	parkedSize int64     // size when parked: reopened when it differs
	rotated    bool      // counted in Rotations (once per identity)
}

// Consumed returns the offset up to which lines were handed out.
func (f *File) Consumed() int64 { return f.consumed }

// Stats are counters the tailer keeps (read them with Tailer.Stats).
type Stats struct {
	BytesRead      int64
	LinesTruncated int64
	Rotations      int64 // followed files renamed away from the name they were found at, or deleted
	Truncations    int64 // followed files truncated (copytruncate)
	FilesOpen      int64 // descriptors held now
	FilesParked    int64 // files closed while idle, kept by identity
	GlobErrors     int64 // directory listings that failed (EMFILE, EACCES ...)
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
	open      int
	truncated map[fpKey]truncRec
	initial   bool
	wake      chan struct{}
	warned    map[string]time.Time // rate limit of repeated warnings

	mu    sync.Mutex
	stats Stats
	snap  []fileRef
	known map[devIno]bool // the files followed, as of the last scan (for the holder)
	held  map[devIno]heldFD
}

// heldFD is a file the holder opened while the main loop was busy (blocked
// by the output's backpressure): holding it open keeps its data readable
// even if logrotate deletes it before the main loop gets to it.
type heldFD struct {
	fd   *os.File
	path string
}

type truncRec struct {
	off  int64
	at   time.Time
	di   devIno // the truncated file itself (its new content is not its copy)
	path string
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
	if cfg.MaxOpenFiles <= 0 {
		cfg.MaxOpenFiles = DefaultMaxOpenFiles()
	}
	return &Tailer{cfg: cfg, store: store, h: h, log: log, files: map[devIno]*File{}, truncated: map[fpKey]truncRec{},
		initial: true, wake: make(chan struct{}, 1), warned: map[string]time.Time{}, known: map[devIno]bool{}, held: map[devIno]heldFD{}}
}

// DefaultMaxOpenFiles is half the process's open-file limit (at least 16):
// the other half stays for the output's connections, the checkpoint and
// the admin server.
func DefaultMaxOpenFiles() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 512
	}
	n := rl.Cur / 2
	if n > 1<<20 {
		n = 1 << 20
	}
	return max(16, int(n))
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

// warnEvery logs a warning for key at most once a minute (the first time,
// then with the number of repeats).
func (t *Tailer) warnEvery(key, msg string, args ...any) {
	now := time.Now()
	if last, ok := t.warned[key]; ok && now.Sub(last) < time.Minute {
		return
	}
	t.warned[key] = now
	if len(t.warned) > 10000 { // keep the map bounded
		for k, at := range t.warned {
			if now.Sub(at) >= time.Minute {
				delete(t.warned, k)
			}
		}
	}
	t.log.Warn(msg, append(args, "repeats", "at most once a minute")...)
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
	holderStop := make(chan struct{})
	holderDone := make(chan struct{})
	go t.holder(holderStop, holderDone)
	defer func() { close(holderStop); <-holderDone }()
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

// holder lists the globs on its own, every ScanInterval, and opens the
// files the main loop does not follow yet, so that a file created and
// rotated away (or deleted) while the main loop is blocked on a slow
// output is still held open, and read when the loop comes to it.
func (t *Tailer) holder(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	defer func() {
		t.mu.Lock()
		for di, h := range t.held {
			h.fd.Close()
			delete(t.held, di)
		}
		t.mu.Unlock()
	}()
	tk := time.NewTicker(t.cfg.ScanInterval)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
		}
		var paths []string
		for _, p := range t.cfg.Include {
			m, _ := Glob(p)
			paths = append(paths, m...)
		}
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
			t.mu.Lock()
			skip := t.known[di] || t.held[di].fd != nil || int(t.stats.FilesOpen)+len(t.held) >= t.cfg.MaxOpenFiles || len(t.held) >= 256
			t.mu.Unlock()
			if skip {
				continue
			}
			fd, err := os.Open(path)
			if err != nil {
				continue
			}
			if fst, err := fd.Stat(); err != nil || !os.SameFile(st, fst) {
				fd.Close()
				continue
			}
			t.mu.Lock()
			t.held[di] = heldFD{fd, path}
			t.mu.Unlock()
		}
	}
}

// takeHeld returns the files the holder opened (and forgets them).
func (t *Tailer) takeHeld() map[devIno]heldFD {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.held) == 0 {
		return nil
	}
	h := t.held
	t.held = map[devIno]heldFD{}
	return h
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

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

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

// Glob is filepath.Glob that reports why a directory could not be listed
// (EMFILE, EACCES ...) instead of returning fewer matches: "no files" and
// "could not look" must not be confused. A directory that does not exist
// is no match, not an error.
func Glob(pattern string) ([]string, error) {
	if _, err := filepath.Match(pattern, ""); err != nil {
		return nil, err
	}
	if !hasMeta(pattern) {
		if _, err := os.Lstat(pattern); err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return nil, nil
			}
			return nil, err
		}
		return []string{pattern}, nil
	}
	dir, file := filepath.Split(pattern)
	dir = cleanGlobPath(dir)
	if !hasMeta(dir) {
		return globDir(dir, file, nil)
	}
	if dir == pattern { // no progress: avoid looping
		return nil, filepath.ErrBadPattern
	}
	dirs, err := Glob(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range dirs {
		if out, err = globDir(d, file, out); err != nil {
			return out, err
		}
	}
	return out, nil
}

func cleanGlobPath(path string) string {
	switch path {
	case "":
		return "."
	case string(filepath.Separator):
		return path
	default:
		return path[:len(path)-1]
	}
}

func globDir(dir, pattern string, out []string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return out, nil
		}
		return out, fmt.Errorf("list %s: %w", dir, err)
	}
	defer d.Close()
	if st, err := d.Stat(); err == nil && !st.IsDir() {
		return out, nil
	}
	names, err := d.Readdirnames(-1)
	if err != nil {
		return out, fmt.Errorf("list %s: %w", dir, err)
	}
	sort.Strings(names)
	for _, n := range names {
		if ok, _ := filepath.Match(pattern, n); ok {
			out = append(out, filepath.Join(dir, n))
		}
	}
	return out, nil
}

type pending struct {
	path string
	di   devIno
}

// scan discovers new files, notices rotated, deleted and truncated ones,
// and settles the identity of files whose first line is complete.
func (t *Tailer) scan(now time.Time) error {
	var paths []string
	for _, p := range t.cfg.Include {
		m, err := Glob(p)
		if err != nil {
			t.mu.Lock()
			t.stats.GlobErrors++
			t.mu.Unlock()
			t.warnEvery("glob "+p, "tail: cannot list the files of a glob; the files already followed are kept", "glob", p, "err", err)
		}
		paths = append(paths, m...)
	}
	sort.Strings(paths)
	seen := map[devIno]bool{}
	var fresh []pending
	var grown []*File
	for _, path := range paths {
		if !Match(t.cfg.Include, t.cfg.Exclude, path) {
			continue
		}
		st, err := os.Stat(path)
		if err != nil || !st.Mode().IsRegular() {
			continue // renamed or removed since the listing: the next scan sees it
		}
		sys := st.Sys().(*syscall.Stat_t)
		di := devIno{uint64(sys.Dev), sys.Ino}
		if seen[di] {
			continue
		}
		seen[di] = true
		if f := t.files[di]; f != nil {
			f.lastSeen = now
			f.gone = false
			if f.Path != path {
				t.moved(f, path)
			}
			if f.fd == nil && st.Size() != f.parkedSize {
				grown = append(grown, f)
			}
			continue
		}
		fresh = append(fresh, pending{path, di})
	}
	// a followed file missing from the listing was renamed (perhaps only
	// between the listing and the stat: logrotate's .N → .N+1) or deleted;
	// its descriptor says which
	for _, f := range append([]*File(nil), t.order...) {
		if seen[devIno{f.dev, f.ino}] {
			continue
		}
		if f.fd != nil {
			if !f.gone {
				t.locate(f, now)
			}
		} else if now.Sub(f.lastSeen) > t.forgetAfter() {
			t.lostParked(f, now)
		}
	}
	// files the holder opened while this loop was busy: adopt them (they
	// may be gone from every listing by now)
	for di, h := range t.takeHeld() {
		if t.files[di] != nil {
			h.fd.Close()
			continue
		}
		t.adopt(h.fd, h.path, di, now)
		for i, p := range fresh {
			if p.di == di {
				fresh = append(fresh[:i], fresh[i+1:]...)
				break
			}
		}
	}
	for _, f := range grown {
		if !t.makeRoom() {
			break
		}
		t.reopen(f, now)
	}
	waiting := 0
	for _, p := range fresh {
		if !t.makeRoom() {
			waiting++
			continue
		}
		t.openNew(p.path, p.di, now)
	}
	if waiting > 0 {
		t.warnEvery("max-open-files", "tail: --max-open-files reached; files wait until others are read to their end",
			"max_open_files", t.cfg.MaxOpenFiles, "waiting", waiting)
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

func (t *Tailer) forgetAfter() time.Duration {
	return max(time.Minute, 10*t.cfg.ScanInterval, 2*t.cfg.RotateWait)
}

// moved records that f is now at path (renamed within the globs).
func (t *Tailer) moved(f *File, path string) {
	t.log.Debug("tail: file renamed", "from", f.Path, "to", path)
	f.Path = path
	if f.Pos != nil {
		t.store.SetPath(f.Pos, path)
	}
	t.countRotation(f)
}

func (t *Tailer) countRotation(f *File) {
	if f.rotated {
		return
	}
	f.rotated = true
	t.mu.Lock()
	t.stats.Rotations++
	t.mu.Unlock()
}

// locate finds where an open file went that the listing did not show.
func (t *Tailer) locate(f *File, now time.Time) {
	if st, err := os.Stat(f.Path); err == nil {
		if sys := st.Sys().(*syscall.Stat_t); uint64(sys.Dev) == f.dev && sys.Ino == f.ino {
			return // still there: the listing raced with a rename
		}
	}
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.fd.Fd())))
	if err != nil {
		return // cannot tell: keep it as it is; nlink tells deletion
	}
	if strings.HasSuffix(p, " (deleted)") {
		t.markGone(f, now, "deleted", "")
		return
	}
	if Match(t.cfg.Include, t.cfg.Exclude, p) {
		t.moved(f, p) // renamed between the listing and the stat
		return
	}
	t.markGone(f, now, "renamed out of the globs", p)
}

func (t *Tailer) markGone(f *File, now time.Time, why, path string) {
	f.gone, f.goneAt = true, now
	if path != "" && path != f.Path {
		f.Path = path
		if f.Pos != nil {
			t.store.SetPath(f.Pos, path)
		}
	}
	t.countRotation(f)
	t.log.Info("tail: file rotated or removed; reading it to its end", "path", f.Path, "why", why)
}

// makeRoom reports whether one more file may be opened, parking the file
// idle for longest (read to its end) when the cap is reached.
func (t *Tailer) makeRoom() bool {
	if t.open < t.cfg.MaxOpenFiles {
		return true
	}
	var victim *File
	for _, f := range t.order {
		if f.fd == nil || f.gone || f.skipping {
			continue
		}
		if f.fpReady && !f.atEOF {
			continue
		}
		if !f.fpReady && f.consumed > 0 {
			continue
		}
		if victim == nil || f.growth.Before(victim.growth) {
			victim = f
		}
	}
	if victim == nil {
		return false
	}
	if victim.fpReady {
		t.park(victim)
	} else {
		t.drop(victim) // no identity yet: found again as new by a later scan
	}
	return t.open < t.cfg.MaxOpenFiles
}

// park closes f, keeping its identity and offset (in the checkpoint too):
// it is reopened when it grows.
func (t *Tailer) park(f *File) {
	if f.opened {
		if err := t.h.Closing(f); err != nil {
			t.log.Debug("tail: closing parked file", "err", err)
		}
	}
	if f.Pos != nil {
		t.store.Park(f.Pos, f.consumed)
	}
	f.fd.Close()
	f.fd = nil
	t.open--
	f.parkedSize = f.size
	f.buf = nil
	f.readOff = f.consumed
	f.atEOF = false
	t.log.Debug("tail: parked idle file", "path", f.Path, "offset", f.consumed)
}

func (t *Tailer) drop(f *File) {
	f.fd.Close()
	t.open--
	t.remove(f)
}

func (t *Tailer) remove(f *File) {
	delete(t.files, devIno{f.dev, f.ino})
	for i, g := range t.order {
		if g == f {
			t.order = append(t.order[:i], t.order[i+1:]...)
			break
		}
	}
}

// reopen opens a parked file again (it grew, or changed).
func (t *Tailer) reopen(f *File, now time.Time) {
	fd, err := os.Open(f.Path)
	if err != nil {
		t.warnEvery("open "+f.Path, "tail: cannot open file", "path", f.Path, "err", err)
		return
	}
	st, err := fd.Stat()
	if err != nil || st.Sys().(*syscall.Stat_t).Ino != f.ino {
		fd.Close()
		return
	}
	f.fd = fd
	t.open++
	f.growth, f.lastSeen = now, now
	f.Pos = t.store.Track(f.Key, f.Path, f.consumed)
	if fp, n, ok := t.fingerprint(f, f.Key.FPLen); ok && (fp != f.Key.FP || n != f.Key.FPLen) {
		if err := t.truncate(f, now); err != nil {
			t.log.Debug("tail: truncated parked file", "err", err)
		}
	}
}

// lostParked handles a parked file no listing showed for a while: found
// by identity next to its last path it is read to its end if it grew,
// otherwise forgotten.
func (t *Tailer) lostParked(f *File, now time.Time) {
	path, fd := t.findFile(f.Key, f.Path)
	if fd != nil {
		st, err := fd.Stat()
		if err == nil && st.Size() > f.parkedSize {
			f.fd, f.Path = fd, path
			t.open++
			f.Pos = t.store.Track(f.Key, path, f.consumed)
			t.markGone(f, now, "found by identity after it left the globs", path)
			return
		}
		fd.Close()
	}
	if f.Pos != nil {
		t.store.Forget(f.Pos)
	}
	t.remove(f)
}

// openNew starts following a file the listing showed for the first time.
func (t *Tailer) openNew(path string, di devIno, now time.Time) {
	fd, err := os.Open(path)
	if err != nil {
		t.warnEvery("open "+path, "tail: cannot open file", "path", path, "err", err)
		return
	}
	fst, err := fd.Stat()
	if err != nil || fst.Sys().(*syscall.Stat_t).Ino != di.ino {
		fd.Close() // replaced between stat and open: next scan
		return
	}
	t.adopt(fd, path, di, now)
}

// adopt follows an opened file; one that left the globs (or was deleted)
// since it was opened is read to its end as a rotated file.
func (t *Tailer) adopt(fd *os.File, path string, di devIno, now time.Time) {
	f := &File{Path: path, fd: fd, dev: di.dev, ino: di.ino, growth: now, lastSeen: now}
	t.files[di] = f
	t.order = append(t.order, f)
	t.open++
	t.log.Info("tail: following file", "path", path, "inode", di.ino)
	if st, err := os.Stat(path); err != nil || st.Sys().(*syscall.Stat_t).Ino != di.ino {
		t.locate(f, now)
	}
}

// check handles one file's state changes: deletion, truncation, identity.
func (t *Tailer) check(f *File, now time.Time) error {
	if f.fd == nil {
		return nil
	}
	st, err := f.fd.Stat()
	if err != nil {
		return nil
	}
	sys := st.Sys().(*syscall.Stat_t)
	f.size = st.Size()
	if sys.Nlink == 0 && !f.gone {
		t.markGone(f, now, "deleted", "")
	}
	if f.fpReady {
		// shorter than what was read from it: truncated. (A copy that
		// started past its own end, because the original was read further
		// than the copy holds, is not.)
		truncated := f.size < f.readOff && f.readOff > f.startOff
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
	return fingerprintFD(f.fd, t.cfg.FingerprintBytes, want, f.gone)
}

func fingerprintFD(fd *os.File, size, want int, final bool) (fp uint64, n int, ok bool) {
	if want > 0 {
		size = want
	}
	buf := make([]byte, size)
	n, err := fd.ReadAt(buf, 0)
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
		if final && n > 0 { // never getting a full first line: settle for what is there
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
// flushed, the old identity retired, and reading restarts at 0. The copy,
// when it is found next to the file, is read from where the original
// stopped.
func (t *Tailer) truncate(f *File, now time.Time) error {
	t.log.Info("tail: file truncated; reading it again from the start", "path", f.Path, "was_at", f.readOff, "size", f.size)
	if err := t.finish(f); err != nil {
		return err
	}
	fk := fpKey{f.Key.FP, f.Key.FPLen}
	t.truncated[fk] = truncRec{off: f.consumed, at: now, di: devIno{f.dev, f.ino}, path: f.Path}
	t.mu.Lock()
	t.stats.Truncations++
	t.mu.Unlock()
	if err := t.openCopy(f.Key, f.Path, f.consumed, now); err != nil {
		return err
	}
	f.fpReady, f.opened = false, false
	f.Key, f.Pos = checkpoint.Key{}, nil
	f.buf = f.buf[:0]
	f.consumed, f.readOff, f.startOff = 0, 0, 0
	f.long, f.skipping = nil, false
	f.atEOF = false
	f.growth = now
	return nil
}

// openCopy looks next to path for the copy of the file whose identity was
// key (another inode with its first line) and follows it from off: the
// lines the original held past off when it was copied are read from the
// copy, once.
func (t *Tailer) openCopy(key checkpoint.Key, path string, off int64, now time.Time) error {
	cpath, fd := t.findCopy(key, path)
	if fd == nil {
		return nil
	}
	st, err := fd.Stat()
	if err != nil {
		fd.Close()
		return nil
	}
	sys := st.Sys().(*syscall.Stat_t)
	di := devIno{uint64(sys.Dev), sys.Ino}
	ck := checkpoint.Key{Dev: di.dev, Ino: di.ino, FP: key.FP, FPLen: key.FPLen}
	f := &File{Path: cpath, fd: fd, dev: di.dev, ino: di.ino, growth: now, lastSeen: now, rotated: true, size: st.Size()}
	f.Key, f.fpReady, f.opened = ck, true, true
	f.consumed, f.readOff, f.startOff = off, off, off
	f.Pos = t.store.Track(ck, cpath, off)
	f.gone = !Match(t.cfg.Include, t.cfg.Exclude, cpath)
	f.goneAt = now
	t.files[di] = f
	t.order = append(t.order, f)
	t.open++
	delete(t.truncated, fpKey{key.FP, key.FPLen})
	t.h.Opened(f)
	t.log.Info("tail: reading the copy of a truncated file from where the original stopped", "path", cpath, "from", off, "size", st.Size())
	return nil
}

// siblings lists the files next to path that may be its rotated names
// (app.log → app.log.1, app.log-20240115, app.1.log ...), newest names
// first.
func siblings(path string) []string {
	dir, base := filepath.Split(path)
	stem := strings.TrimSuffix(base, filepath.Ext(base))
	if stem == "" {
		stem = base
	}
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	sort.Strings(names)
	var out []string
	for _, n := range names {
		if n == base || !strings.HasPrefix(n, stem) {
			continue
		}
		switch filepath.Ext(n) {
		case ".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip":
			continue // compressed: not readable as lines
		}
		out = append(out, filepath.Join(dir, n))
	}
	return out
}

// findFile finds the file with identity key at last or among its rotated
// names, and opens it.
func (t *Tailer) findFile(key checkpoint.Key, last string) (string, *os.File) {
	for _, p := range append([]string{last}, siblings(last)...) {
		st, err := os.Stat(p)
		if err != nil {
			continue
		}
		sys := st.Sys().(*syscall.Stat_t)
		if uint64(sys.Dev) != key.Dev || sys.Ino != key.Ino {
			continue
		}
		fd, err := os.Open(p)
		if err != nil {
			t.warnEvery("open "+p, "tail: cannot open file", "path", p, "err", err)
			return "", nil
		}
		if fp, n, ok := fingerprintFD(fd, t.cfg.FingerprintBytes, key.FPLen, false); ok && fp == key.FP && n == key.FPLen {
			return p, fd
		}
		fd.Close()
		return "", nil // the inode holds other content now
	}
	return "", nil
}

// findCopy finds, among path's rotated names, a file on another inode whose
// first line is key's: the copy copytruncate made.
func (t *Tailer) findCopy(key checkpoint.Key, path string) (string, *os.File) {
	for _, p := range siblings(path) {
		st, err := os.Stat(p)
		if err != nil || !st.Mode().IsRegular() || st.Size() < int64(key.FPLen) {
			continue
		}
		sys := st.Sys().(*syscall.Stat_t)
		di := devIno{uint64(sys.Dev), sys.Ino}
		if di.ino == key.Ino && di.dev == key.Dev {
			continue
		}
		if g := t.files[di]; g != nil {
			continue // already followed (or waiting to be settled as a copy)
		}
		fd, err := os.Open(p)
		if err != nil {
			continue
		}
		if fp, n, ok := fingerprintFD(fd, t.cfg.FingerprintBytes, key.FPLen, false); ok && fp == key.FP && n == key.FPLen {
			return p, fd
		}
		fd.Close()
	}
	return "", nil
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

// isOriginal reports whether the file a checkpoint record names still holds
// the record's content (then a file with the same first line is not its
// copy).
func (t *Tailer) isOriginal(r checkpoint.Record) bool {
	k, err := r.Key()
	if err != nil {
		return false
	}
	if g := t.files[devIno{k.Dev, k.Ino}]; g != nil && g.fd != nil {
		if g.fpReady {
			return g.Key == k
		}
		fp, n, ok := fingerprintFD(g.fd, t.cfg.FingerprintBytes, k.FPLen, false)
		return ok && fp == k.FP && n == k.FPLen
	}
	_, fd := t.findFile(k, r.Path)
	if fd != nil {
		fd.Close()
		return true
	}
	return false
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
		// same device, inode and first line: the same file, even when it
		// is shorter than the offset (a copy that started past its end
		// because the original was read further than the copy holds)
		off, how = c, "checkpoint"
	} else if r, ok := t.truncated[fk]; ok && r.di != (devIno{f.dev, f.ino}) {
		// the copy of a file that was then truncated: continue where the
		// original stopped (past the copy's end if the original was read
		// further than the copy holds: then there is nothing to read)
		off, how = r.off, "copy of a truncated file"
		f.rotated = true
		delete(t.truncated, fk)
	} else if r, ok := t.store.ClaimCopy(key, t.isOriginal); ok {
		// copytruncate while the adapter was down: the copy carries on
		// from the checkpoint of the original
		off, how = r.Offset, "copy of a file known from the checkpoint"
		f.rotated = true
	} else if g := t.twin(f, fk); g != nil {
		// a copy of a file still being read (copytruncate in progress):
		// wait until the original is truncated or closed, then carry on
		// where it stopped. Taking its position now would read twice what
		// the original still reads up to its truncation; a copy whose
		// original is never truncated holds nothing the original does not.
		if f.waitSince.IsZero() {
			f.waitSince = now
			t.log.Info("tail: file looks like a copy of another; waiting", "path", f.Path, "original", g.Path)
		}
		return nil
	} else if t.initial && !t.cfg.ReadFromHead {
		off, how = f.size, "end"
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
		if g != f && g.fd != nil && g.fpReady && g.Key.FP == k.fp && g.Key.FPLen == k.len {
			return g
		}
	}
	return nil
}

// resumeUnclaimed finds the files the checkpoint knows that no glob
// matched (rotated away while the adapter was down) by identity — at their
// last path or among its rotated names, or as the copy copytruncate made —
// and reads them to their end. What cannot be found is logged.
func (t *Tailer) resumeUnclaimed() {
	// the newest file found under a rotated name: files rotated after it
	// were created and rotated away while the adapter was down
	var newest time.Time
	newestPath := ""
	defer func() {
		if newestPath != "" {
			t.resumeNewer(newestPath, newest)
		}
	}()
	note := func(fd *os.File, path, was string) {
		if path == was {
			return
		}
		if st, err := fd.Stat(); err == nil && st.ModTime().After(newest) {
			newest, newestPath = st.ModTime(), was
		}
	}
	for _, r := range t.store.Unclaimed() {
		key, err := r.Key()
		if err != nil {
			continue
		}
		if t.files[devIno{key.Dev, key.Ino}] != nil && !r.Closed {
			// the inode is followed with other content (truncated while
			// the adapter was down): its rest is in the copy, if any
			if path, fd := t.findCopy(key, r.Path); fd != nil {
				note(fd, path, r.Path)
				t.follow(fd, path, key, r.Offset, "copy of a file truncated while the adapter was down")
				continue
			}
			if r.Offset > 0 {
				t.log.Warn("tail: a file known from the checkpoint was truncated while the adapter was down and no copy of it was found; its unread rest is lost",
					"path", r.Path, "offset", r.Offset)
			}
			continue
		}
		path, fd := t.findFile(key, r.Path)
		how := "rotated away while the adapter was down"
		if fd == nil {
			if path, fd = t.findCopy(key, r.Path); fd != nil {
				how = "copy of a file truncated while the adapter was down"
			}
		}
		if fd == nil {
			if r.Closed {
				t.log.Debug("tail: a file read to its end is gone", "path", r.Path)
			} else {
				t.log.Warn("tail: cannot find a file known from the checkpoint (rotated away and removed while the adapter was down?); its unread rest, if any, is lost",
					"path", r.Path, "offset", r.Offset)
			}
			continue
		}
		note(fd, path, r.Path)
		if st, err := fd.Stat(); err == nil && st.Size() <= r.Offset {
			fd.Close() // nothing left to read
			continue
		}
		t.follow(fd, path, key, r.Offset, how)
	}
}

// resumeNewer reads from their heads the rotated names of live that are
// newer than since and that nothing follows: files the application started
// and logrotate rotated away while the adapter was down.
func (t *Tailer) resumeNewer(live string, since time.Time) {
	for _, p := range siblings(live) {
		st, err := os.Stat(p)
		if err != nil || !st.Mode().IsRegular() || !st.ModTime().After(since) || st.Size() == 0 {
			continue
		}
		sys := st.Sys().(*syscall.Stat_t)
		if t.files[devIno{uint64(sys.Dev), sys.Ino}] != nil {
			continue
		}
		fd, err := os.Open(p)
		if err != nil {
			t.warnEvery("open "+p, "tail: cannot open file", "path", p, "err", err)
			continue
		}
		fp, n, ok := fingerprintFD(fd, t.cfg.FingerprintBytes, 0, true)
		if !ok {
			fd.Close()
			continue
		}
		key := checkpoint.Key{Dev: uint64(sys.Dev), Ino: sys.Ino, FP: fp, FPLen: n}
		off := int64(0)
		if c, ok := t.store.Lookup(key); ok {
			off = c
		}
		t.follow(fd, p, key, off, "created and rotated away while the adapter was down")
	}
}

// follow starts reading an opened file that is out of the globs (or will be
// found by them under its identity) from off, as a rotated file.
func (t *Tailer) follow(fd *os.File, path string, key checkpoint.Key, off int64, how string) {
	st, err := fd.Stat()
	if err != nil {
		fd.Close()
		return
	}
	sys := st.Sys().(*syscall.Stat_t)
	di := devIno{uint64(sys.Dev), sys.Ino}
	if t.files[di] != nil {
		fd.Close()
		return
	}
	key.Dev, key.Ino = di.dev, di.ino
	now := time.Now()
	f := &File{Path: path, fd: fd, dev: di.dev, ino: di.ino, growth: now, lastSeen: now, rotated: true, size: st.Size()}
	f.Key, f.fpReady, f.opened = key, true, true
	f.consumed, f.readOff, f.startOff = off, off, off
	f.Pos = t.store.Track(key, path, off)
	f.gone, f.goneAt = !Match(t.cfg.Include, t.cfg.Exclude, path), now
	t.files[di] = f
	t.order = append(t.order, f)
	t.open++
	t.h.Opened(f)
	t.log.Info("tail: finishing a file known from the checkpoint", "path", path, "from", off, "because", how)
}

// readAll reads a chunk from every file and closes drained rotated files.
func (t *Tailer) readAll(ctx context.Context, stop <-chan struct{}) (progress bool, err error) {
	now := time.Now()
	for i := 0; i < len(t.order); i++ {
		f := t.order[i]
		if f.fd == nil {
			continue // parked
		}
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
	if f.fpReady {
		// a copy of it found later carries on where it stopped
		t.truncated[fpKey{f.Key.FP, f.Key.FPLen}] = truncRec{off: f.consumed, at: time.Now(), di: devIno{f.dev, f.ino}, path: f.Path}
	}
	if f.Pos != nil {
		t.store.Retire(f.Pos, f.consumed)
	}
	if f.fd != nil {
		f.fd.Close()
		f.fd = nil
		t.open--
	}
	t.remove(f)
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
		if n > 0 && f.fpReady && f.Key.FPLen > 0 {
			// copytruncate may have cut and refilled the file while this
			// loop was blocked on the output: bytes read at the old offset
			// would then be another file's. A first line still the same
			// after the read means the read saw the old content.
			if fp, m, ok := t.fingerprint(f, f.Key.FPLen); ok && (fp != f.Key.FP || m != f.Key.FPLen) {
				if err := t.truncate(f, time.Now()); err != nil {
					return total, err
				}
				return total, nil
			}
		}
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
		if f.fd != nil {
			f.fd.Close()
			f.fd = nil
		}
	}
	t.files = map[devIno]*File{}
	t.order = nil
	t.open = 0
	t.publish()
}

func (t *Tailer) publish() {
	snap := make([]fileRef, 0, len(t.order))
	parked := 0
	for _, f := range t.order {
		if f.fd == nil {
			parked++
			continue
		}
		snap = append(snap, fileRef{path: f.Path, fd: f.fd, pos: f.Pos})
	}
	known := make(map[devIno]bool, len(t.files))
	for di := range t.files {
		known[di] = true
	}
	t.mu.Lock()
	t.known = known
	t.snap = snap
	t.stats.FilesOpen = int64(t.open)
	t.stats.FilesParked = int64(parked)
	t.mu.Unlock()
}
