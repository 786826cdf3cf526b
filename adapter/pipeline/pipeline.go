// Package pipeline wires the adapter together: the tailer's lines go
// through the per-file joiners (CRI partial lines, multiline), the parser
// chosen for the file's path and the encoder into bulk batches; a bounded
// queue carries the batches to the sink's senders; completed batches move
// the checkpoint. When the sink stalls the queue fills, the tailer blocks
// and stops reading: the files are the buffer and memory stays flat.
package pipeline

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/sidecarkit/sidecarkit/adapter/bulk"
	"github.com/sidecarkit/sidecarkit/adapter/checkpoint"
	"github.com/sidecarkit/sidecarkit/adapter/normalize"
	"github.com/sidecarkit/sidecarkit/adapter/parse"
	"github.com/sidecarkit/sidecarkit/adapter/tail"
	"github.com/sidecarkit/sidecarkit/shared/backoff"
)

// Sink takes batches. Write returns once every document of the batch is
// stored or set aside for good; an error means the batch must be offered
// again (it is retried with backoff).
type Sink interface {
	Write(ctx context.Context, b *bulk.Batch) error
	Close() error
}

// Rule chooses the parser (and joiners) for the paths matching Glob.
type Rule struct {
	Glob      string // matched against the path and its base name; "" matches all
	Parser    parse.Parser
	CRI       bool // join CRI partial lines first
	Multiline *parse.Multiline
}

// Config is the pipeline's configuration.
type Config struct {
	Rules            []Rule // first match wins
	MultilineTimeout time.Duration
	Encoder          normalize.Options
	Index            string // index name, with %Y %m %d (from @timestamp) — or the data stream name
	DataStream       bool   // op_type create
	BatchDocs        int
	BatchBytes       int
	FlushInterval    time.Duration
	QueueBatches     int
	Senders          int
	Retry            backoff.Policy
	MaxLineBytes     int
	// Layouts: per-path timestamp layouts (Go layouts), first match wins;
	// "" Glob matches every path.
	Layouts []Layout
}

// Layout is a timestamp layout for the paths matching Glob.
type Layout struct {
	Glob   string
	Layout string
}

// Pipeline is the running adapter core.
type Pipeline struct {
	cfg     Config
	log     *slog.Logger
	sink    Sink
	store   *checkpoint.Store
	tracker *checkpoint.Tracker
	m       *Metrics
	enc     *normalize.Encoder
	rec     parse.Record
	doc     []byte

	cur     *bulk.Batch
	seq     uint64
	queue   chan *bulk.Batch
	free    chan *bulk.Batch
	held    []*fileState
	ctx     context.Context
	lastDay []byte
	action  []byte

	// per-turn counters, pushed to the metrics on Tick
	nLines, nFail, nTrunc int
}

type fileState struct {
	f       *tail.File
	parser  parse.Parser
	joiner  parse.Joiner
	meta    []byte
	idPfx   []byte
	emitFn  parse.Emit
	holding bool
	enc     *normalize.Encoder // this path's own encoder (a --timestamp-layout), else nil
}

// New builds a pipeline.
func New(cfg Config, sink Sink, store *checkpoint.Store, m *Metrics, log *slog.Logger) *Pipeline {
	if cfg.BatchDocs <= 0 {
		cfg.BatchDocs = 5000
	}
	if cfg.BatchBytes <= 0 {
		cfg.BatchBytes = 4 << 20
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = time.Second
	}
	if cfg.QueueBatches <= 0 {
		cfg.QueueBatches = 2
	}
	if cfg.Senders <= 0 {
		cfg.Senders = 1
	}
	if cfg.MultilineTimeout <= 0 {
		cfg.MultilineTimeout = time.Second
	}
	p := &Pipeline{cfg: cfg, log: log, sink: sink, store: store, tracker: checkpoint.NewTracker(store), m: m,
		enc:   normalize.NewEncoder(cfg.Encoder),
		queue: make(chan *bulk.Batch, cfg.QueueBatches),
		free:  make(chan *bulk.Batch, cfg.QueueBatches+cfg.Senders+1),
	}
	p.cur = p.newBatch()
	return p
}

func (p *Pipeline) newBatch() *bulk.Batch {
	select {
	case b := <-p.free:
		return b
	default:
		return &bulk.Batch{Buf: make([]byte, 0, p.cfg.BatchBytes+64<<10)}
	}
}

// Run tails with tcfg until stop closes, then ships what was read and
// returns; ctx ending cuts everything short (what was not acknowledged is
// read again at the next start).
func (p *Pipeline) Run(ctx context.Context, stop <-chan struct{}, tcfg tail.Config, ready func()) error {
	p.ctx = ctx
	t := tail.New(tcfg, p.store, p, p.log)
	p.m.attachTailer(t, p)
	var wg sync.WaitGroup
	for i := 0; i < p.cfg.Senders; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); p.sender(ctx) }()
	}
	saveDone := make(chan struct{})
	saveStop := make(chan struct{})
	go func() { defer close(saveDone); p.saver(saveStop) }()
	if ready != nil {
		ready()
	}
	err := t.Run(ctx, stop)
	if err == nil {
		err = p.dispatch()
	}
	close(p.queue)
	wg.Wait()
	close(saveStop)
	<-saveDone
	if serr := p.store.Save(); serr != nil && err == nil {
		err = serr
	}
	if cerr := p.sink.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err == context.Canceled {
		return nil
	}
	return err
}

func (p *Pipeline) saver(stop <-chan struct{}) {
	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
			if err := p.store.Save(); err != nil {
				p.log.Error("checkpoint: cannot save", "err", err)
			}
		}
	}
}

func (p *Pipeline) sender(ctx context.Context) {
	bo := backoff.Backoff{Policy: p.cfg.Retry}
	for b := range p.queue {
		if len(b.Items) > 0 {
			for {
				err := p.sink.Write(ctx, b)
				if err == nil {
					bo.Reset()
					break
				}
				if ctx.Err() != nil {
					return
				}
				d := bo.Next()
				p.log.Warn("output failed; retrying the batch", "err", err, "retry_in", d.String())
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
		}
		marks := append([]checkpoint.Mark(nil), b.Marks...)
		if p.tracker.DoneAt(b.Seq, marks, b.Out) > 0 && len(b.Items) > 0 {
			// save at once: a crash between the store's acknowledgement and
			// the next periodic save would send the batch again, and stores
			// that ignore _id (VictoriaLogs) would hold it twice
			if err := p.store.Save(); err != nil {
				p.log.Error("checkpoint: cannot save", "err", err)
			}
		}
		b.Reset()
		select {
		case p.free <- b:
		default:
		}
	}
}

// dispatch hands the current batch to the senders (blocking while the
// queue is full: backpressure).
func (p *Pipeline) dispatch() error {
	b := p.cur
	if len(b.Items) == 0 && len(b.Marks) == 0 {
		return nil
	}
	b.Seq = p.seq
	p.seq++
	select {
	case p.queue <- b:
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
	p.cur = p.newBatch()
	return nil
}

// Opened implements tail.Handler.
func (p *Pipeline) Opened(f *tail.File) {
	st, _ := f.State.(*fileState)
	if st == nil {
		st = &fileState{f: f}
		r := p.rule(f.Path)
		st.parser = r.Parser
		now := time.Now
		switch {
		case r.CRI && r.Multiline != nil:
			st.joiner = &chain{a: parse.NewCRIJoiner(p.cfg.MaxLineBytes, now), b: parse.NewGroup(r.Multiline, now)}
		case r.CRI:
			st.joiner = parse.NewCRIJoiner(p.cfg.MaxLineBytes, now)
		case r.Multiline != nil:
			st.joiner = parse.NewGroup(r.Multiline, now)
		}
		st.emitFn = func(rec []byte, start, end int64) { p.emit(st, rec, start, end) }
		for _, l := range p.cfg.Layouts {
			if l.Glob == "" || matchPath(l.Glob, f.Path) {
				o := p.cfg.Encoder
				o.Layout = l.Layout
				st.enc = normalize.NewEncoder(o)
				break
			}
		}
		f.State = st
	}
	st.meta = normalize.FileMeta(f.Path)
	h := fnv.New64a()
	fmt.Fprintf(h, "%d/%d/%x/%d", f.Key.Dev, f.Key.Ino, f.Key.FP, f.Key.FPLen)
	st.idPfx = strconv.AppendUint(st.idPfx[:0], h.Sum64(), 16)
	st.idPfx = append(st.idPfx, '-')
}

func matchPath(glob, path string) bool {
	if ok, _ := filepath.Match(glob, path); ok {
		return true
	}
	ok, _ := filepath.Match(glob, filepath.Base(path))
	return ok
}

func (p *Pipeline) rule(path string) Rule {
	for _, r := range p.cfg.Rules {
		if r.Glob == "" {
			return r
		}
		if ok, _ := filepath.Match(r.Glob, path); ok {
			return r
		}
		if ok, _ := filepath.Match(r.Glob, filepath.Base(path)); ok {
			return r
		}
	}
	return Rule{Parser: parse.None{}}
}

// Line implements tail.Handler.
func (p *Pipeline) Line(f *tail.File, line []byte, start, end int64, truncated bool) error {
	st := f.State.(*fileState)
	p.nLines++
	if truncated {
		p.nTrunc++
	}
	if st.joiner != nil {
		if !st.holding {
			st.holding = true
			p.held = append(p.held, st)
		}
		st.joiner.Feed(line, start, end, st.emitFn)
	} else {
		p.emit(st, line, start, end)
	}
	if p.ctx.Err() != nil {
		return p.ctx.Err()
	}
	return nil
}

// Closing implements tail.Handler.
func (p *Pipeline) Closing(f *tail.File) error {
	st, _ := f.State.(*fileState)
	if st == nil {
		return nil
	}
	if st.joiner != nil {
		st.joiner.Flush(st.emitFn)
	}
	return p.ctx.Err()
}

// Tick implements tail.Handler: multiline timeouts, batch age, counters.
func (p *Pipeline) Tick(now time.Time) error {
	if len(p.held) > 0 {
		keep := p.held[:0]
		for _, st := range p.held {
			if s := st.joiner.Since(); !s.IsZero() && now.Sub(s) >= p.cfg.MultilineTimeout {
				st.joiner.Flush(st.emitFn)
			}
			if st.joiner.Since().IsZero() {
				st.holding = false
			} else {
				keep = append(keep, st)
			}
		}
		p.held = keep
	}
	if !p.cur.Created.IsZero() && now.Sub(p.cur.Created) >= p.cfg.FlushInterval {
		if err := p.dispatch(); err != nil {
			return err
		}
	}
	p.pushCounters()
	return p.ctx.Err()
}

func (p *Pipeline) pushCounters() {
	if p.nLines > 0 {
		p.m.Lines.Add(float64(p.nLines))
		p.nLines = 0
	}
	if p.nFail > 0 {
		p.m.ParseFailures.Add(float64(p.nFail))
		p.nFail = 0
	}
	if p.nTrunc > 0 {
		p.m.Truncated.Add(float64(p.nTrunc))
		p.nTrunc = 0
	}
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// emit turns one logical record into a document in the current batch.
func (p *Pipeline) emit(st *fileState, raw []byte, start, end int64) {
	b := p.cur
	if b.Created.IsZero() {
		b.Created = time.Now()
	}
	if isBlank(raw) {
		b.Mark(st.f.Pos, end) // nothing to ship, but the offset moves on
		return
	}
	p.rec.Reset()
	perr := st.parser.Parse(raw, &p.rec)
	if perr != nil {
		p.nFail++
	} else if p.rec.Message == nil {
		p.rec.Message = raw
	}
	enc := p.enc
	if st.enc != nil {
		enc = st.enc
	}
	p.doc = enc.Append(p.doc[:0], &p.rec, raw, perr, st.meta, start, b.Created)
	it := bulk.Item{Start: len(b.Buf)}
	b.Buf = p.appendAction(b.Buf, p.doc, st.idPfx, start)
	it.Doc = len(b.Buf)
	b.Buf = append(b.Buf, p.doc...)
	b.Buf = append(b.Buf, '\n')
	it.End = len(b.Buf)
	b.Items = append(b.Items, it)
	b.Lines++
	b.Mark(st.f.Pos, end)
	if len(b.Items) >= p.cfg.BatchDocs || len(b.Buf) >= p.cfg.BatchBytes {
		p.pushCounters()
		p.dispatch() // an error here is ctx ending: Line reports it
	}
}

// appendAction writes the bulk action line for doc:
// {"index":{"_index":"...","_id":"..."}} (or "create" for data streams).
func (p *Pipeline) appendAction(dst, doc, idPfx []byte, off int64) []byte {
	// doc starts with {"@timestamp":"YYYY-MM-DD
	day := doc[15:25]
	if string(day) != string(p.lastDay) {
		p.lastDay = append(p.lastDay[:0], day...)
		if p.cfg.DataStream {
			p.action = append(p.action[:0], `{"create":{"_index":`...)
		} else {
			p.action = append(p.action[:0], `{"index":{"_index":`...)
		}
		p.action = normalize.AppendString(p.action, []byte(IndexName(p.cfg.Index, day)))
		p.action = append(p.action, `,"_id":"`...)
	}
	dst = append(dst, p.action...)
	dst = append(dst, idPfx...)
	dst = strconv.AppendInt(dst, off, 16)
	return append(dst, "\"}}\n"...)
}

// IndexName expands %Y, %m, %d (and %%) in pattern with day ("YYYY-MM-DD").
func IndexName(pattern string, day []byte) string {
	out := make([]byte, 0, len(pattern)+8)
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		if c != '%' || i+1 >= len(pattern) {
			out = append(out, c)
			continue
		}
		i++
		switch pattern[i] {
		case 'Y':
			out = append(out, day[0:4]...)
		case 'm':
			out = append(out, day[5:7]...)
		case 'd':
			out = append(out, day[8:10]...)
		case 'y':
			out = append(out, day[2:4]...)
		case '%':
			out = append(out, '%')
		default:
			out = append(out, '%', pattern[i])
		}
	}
	return string(out)
}

// chain runs two joiners one after the other (CRI, then multiline).
type chain struct {
	a, b parse.Joiner
}

func (c *chain) Feed(line []byte, start, end int64, emit parse.Emit) {
	c.a.Feed(line, start, end, func(rec []byte, s, e int64) { c.b.Feed(rec, s, e, emit) })
}

func (c *chain) Flush(emit parse.Emit) {
	c.a.Flush(func(rec []byte, s, e int64) { c.b.Feed(rec, s, e, emit) })
	c.b.Flush(emit)
}

func (c *chain) Since() time.Time {
	a, b := c.a.Since(), c.b.Since()
	if a.IsZero() || (!b.IsZero() && b.After(a)) {
		return b
	}
	return a
}
