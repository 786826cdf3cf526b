package parse

import (
	"fmt"
	"regexp"
	"time"
)

// Emit receives one logical record: its bytes (valid only during the call)
// and the byte range [start, end) of the file it came from.
type Emit func(rec []byte, start, end int64)

// Joiner groups physical lines into logical records. It is per file and not
// safe for concurrent use.
type Joiner interface {
	// Feed takes one line (without its newline) spanning [start, end).
	Feed(line []byte, start, end int64, emit Emit)
	// Flush emits whatever is held.
	Flush(emit Emit)
	// Since reports when the held record was last extended (zero if none).
	Since() time.Time
}

// CRIJoiner joins CRI partial (P) lines with the final (F) line into one
// CRI line: the first line's header followed by every part's message.
type CRIJoiner struct {
	buf      []byte
	start    int64
	end      int64
	held     bool
	last     time.Time
	MaxBytes int // cap on a joined record (0: unlimited)
	now      func() time.Time
}

// NewCRIJoiner returns a joiner; maxBytes caps a joined record.
func NewCRIJoiner(maxBytes int, now func() time.Time) *CRIJoiner {
	return &CRIJoiner{MaxBytes: maxBytes, now: now}
}

// Feed implements Joiner.
func (j *CRIJoiner) Feed(line []byte, start, end int64, emit Emit) {
	ts, stream, partial, msg, ok := SplitCRI(trimCR(line))
	if !ok {
		j.Flush(emit)
		emit(line, start, end)
		return
	}
	if !j.held {
		if !partial {
			emit(line, start, end)
			return
		}
		// rewrite the header with tag F so the parser sees a full line
		j.buf = append(j.buf[:0], ts...)
		j.buf = append(j.buf, ' ')
		j.buf = append(j.buf, stream...)
		j.buf = append(j.buf, " F "...)
		j.buf = append(j.buf, msg...)
		j.held, j.start = true, start
	} else if j.MaxBytes <= 0 || len(j.buf)+len(msg) <= j.MaxBytes {
		j.buf = append(j.buf, msg...)
	}
	j.end = end
	j.last = j.now()
	if !partial {
		j.Flush(emit)
	}
}

// Flush implements Joiner.
func (j *CRIJoiner) Flush(emit Emit) {
	if !j.held {
		return
	}
	j.held = false
	emit(j.buf, j.start, j.end)
	j.buf = j.buf[:0]
	if cap(j.buf) > 1<<20 {
		j.buf = nil
	}
}

// Since implements Joiner.
func (j *CRIJoiner) Since() time.Time {
	if !j.held {
		return time.Time{}
	}
	return j.last
}

// Multiline describes how lines group into records: a line starts a new
// record when it matches Start and does not match Continue (either may be
// nil: nil Start means every line may start one; nil Continue means no line
// is forced to continue).
type Multiline struct {
	Start    *regexp.Regexp
	Continue *regexp.Regexp
	MaxLines int // a record is cut after this many lines (0: 500)
	MaxBytes int // ... or this many bytes (0: unlimited)
}

// recordStart matches the prefix a log record starts with: a timestamp in
// the common layouts (ISO 8601, Go's log, syslog, Java's SimpleFormatter,
// Spark's yy/MM/dd, HDFS's yyMMdd HHmmss, klog, epoch) or a level
// (INFO:, [WARN], ERROR ...). Every other line — stack frames, exception
// lines of any class name, multi-line messages, blank lines — belongs to the
// record before it: grouping follows what starts a record instead of
// guessing every shape a continuation can take.
const recordStart = `^(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}[T ]\d{1,2}:\d{2}` +
	`|\d{2}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}` +
	`|\d{6} \d{6}\b` +
	`|[IWEF]\d{4} \d{2}:\d{2}:\d{2}` +
	`|(Mon|Tue|Wed|Thu|Fri|Sat|Sun),? (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ` +
	`|(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]?\d,? (\d{4} )?\d{1,2}:\d{2}:\d{2}` +
	`|\d{1,2}[-/ ](Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[-/ ]\d{4}` +
	`|\[\d{4}-\d{2}-\d{2}` +
	`|\d{10}(\.\d+)?\s` +
	`|\{"` +
	`|\[?(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|SEVERE|CRITICAL|FATAL)(\]|:|\s)` +
	`)`

// Presets: the record start, plus the lines a language's runtime writes
// itself at the start of its own records (an uncaught exception, a panic).
var presets = map[string][2]string{
	"java":   {recordStart[:len(recordStart)-1] + `|Exception in thread "[^"]*" )`, ``},
	"python": {recordStart, ``},
	"go":     {recordStart[:len(recordStart)-1] + `|panic: |fatal error: |SIGQUIT: |SIGABRT: |unexpected fault address )`, ``},
}

// NewMultiline builds a Multiline from a preset name (java, python, go) or
// a start pattern; cont optionally overrides the continuation pattern.
func NewMultiline(preset, start, cont string, maxLines, maxBytes int) (*Multiline, error) {
	m := &Multiline{MaxLines: maxLines, MaxBytes: maxBytes}
	if preset != "" {
		p, ok := presets[preset]
		if !ok {
			return nil, fmt.Errorf("unknown multiline preset %q (want java, python or go)", preset)
		}
		if start == "" {
			start = p[0]
		}
		if cont == "" {
			cont = p[1]
		}
	}
	var err error
	if start != "" {
		if m.Start, err = regexp.Compile(start); err != nil {
			return nil, fmt.Errorf("multiline start pattern %q: %v", start, err)
		}
	}
	if cont != "" {
		if m.Continue, err = regexp.Compile(cont); err != nil {
			return nil, fmt.Errorf("multiline continue pattern %q: %v", cont, err)
		}
	}
	if m.Start == nil && m.Continue == nil {
		return nil, fmt.Errorf("multiline needs a preset, a start pattern or a continue pattern")
	}
	if m.MaxLines <= 0 {
		m.MaxLines = 500
	}
	return m, nil
}

// Starts reports whether line begins a new record.
func (m *Multiline) Starts(line []byte) bool {
	if m.Continue != nil && m.Continue.Match(line) {
		return false
	}
	return m.Start == nil || m.Start.Match(line)
}

// Group is one file's multiline state.
type Group struct {
	m     *Multiline
	buf   []byte
	lines int
	start int64
	end   int64
	last  time.Time
	now   func() time.Time
}

// NewGroup returns a Joiner grouping lines by m.
func NewGroup(m *Multiline, now func() time.Time) *Group { return &Group{m: m, now: now} }

// Feed implements Joiner.
func (g *Group) Feed(line []byte, start, end int64, emit Emit) {
	line = trimCR(line)
	if g.lines > 0 && !g.m.Starts(line) && g.lines < g.m.MaxLines && (g.m.MaxBytes <= 0 || len(g.buf)+1+len(line) <= g.m.MaxBytes) {
		g.buf = append(g.buf, '\n')
		g.buf = append(g.buf, line...)
		g.lines++
		g.end = end
		g.last = g.now()
		return
	}
	g.Flush(emit)
	g.buf = append(g.buf[:0], line...)
	g.lines, g.start, g.end = 1, start, end
	g.last = g.now()
}

// Flush implements Joiner.
func (g *Group) Flush(emit Emit) {
	if g.lines == 0 {
		return
	}
	g.lines = 0
	emit(g.buf, g.start, g.end)
	g.buf = g.buf[:0]
	if cap(g.buf) > 1<<20 {
		g.buf = nil
	}
}

// Since implements Joiner.
func (g *Group) Since() time.Time {
	if g.lines == 0 {
		return time.Time{}
	}
	return g.last
}
