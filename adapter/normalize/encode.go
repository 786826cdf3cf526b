// Package normalize turns a parsed Record into the JSON document the adapter
// ships: @timestamp (RFC 3339 UTC), level, message, the parsed fields,
// log.file.path, log.offset, host, Kubernetes pod/namespace/container and
// static fields. It appends straight into the caller's buffer; the output
// is always valid JSON whatever the input bytes.
package normalize

import (
	"bytes"
	"strconv"
	"strings"
	"time"

	"github.com/sidecarkit/sidecarkit/adapter/parse"
)

// Options are the document-wide settings.
type Options struct {
	Location     *time.Location // zone of timestamps that carry none (nil: UTC)
	DefaultLevel string         // level of lines that carry none
	Host         string
	Pod          string
	Namespace    string
	Container    string
	Static       [][2]string // extra top-level fields, in order
	// Layout is a Go time layout tried first (--timestamp-layout; see
	// Layout to convert yy/MM/dd-style patterns).
	Layout string
}

// Encoder writes documents. It caches the last timestamp it parsed, so it
// is per goroutine.
type Encoder struct {
	layout   string
	loc      *time.Location
	defLevel []byte
	fixed    []byte   // `,"host":...}` — closes the document
	static   []string // top-level names of static fields (reserved too)

	lastRaw []byte
	lastOut []byte
	lastOK  bool
	nowSec  int64
	nowOut  []byte
}

// Tags put on documents.
const (
	TagParseFailure = "_parsefailure"
	TagTimeFailure  = "_timestampfailure"
)

// NewEncoder prepares an encoder.
func NewEncoder(o Options) *Encoder {
	e := &Encoder{layout: o.Layout, loc: o.Location, defLevel: []byte(strings.ToUpper(o.DefaultLevel))}
	if e.loc == nil {
		e.loc = time.UTC
	}
	var b []byte
	b = append(b, `,"host":{"name":`...)
	b = AppendString(b, []byte(o.Host))
	b = append(b, '}')
	if o.Pod != "" || o.Namespace != "" || o.Container != "" {
		b = append(b, `,"kubernetes":{`...)
		sep := ""
		if o.Pod != "" {
			b = append(b, `"pod":{"name":`...)
			b = AppendString(b, []byte(o.Pod))
			b = append(b, '}')
			sep = ","
		}
		if o.Namespace != "" {
			b = append(b, sep...)
			b = append(b, `"namespace":`...)
			b = AppendString(b, []byte(o.Namespace))
			sep = ","
		}
		if o.Container != "" {
			b = append(b, sep...)
			b = append(b, `"container":{"name":`...)
			b = AppendString(b, []byte(o.Container))
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	for _, kv := range o.Static {
		if e.isReserved([]byte(kv[0])) {
			continue
		}
		b = append(b, ',')
		b = AppendString(b, []byte(kv[0]))
		b = append(b, ':')
		b = AppendString(b, []byte(kv[1]))
		top, _, _ := strings.Cut(kv[0], ".")
		e.static = append(e.static, top)
	}
	e.fixed = b
	return e
}

// FileMeta returns the per-file part written before each offset:
// `"log":{"file":{"path":"..."},"offset":`.
func FileMeta(path string) []byte {
	b := append([]byte(nil), `"log":{"file":{"path":`...)
	b = AppendString(b, []byte(path))
	return append(b, `},"offset":`...)
}

// Append writes one document for rec (parsed from raw; perr non-nil when
// parsing failed, then raw is shipped as the message) read at offset of the
// file described by meta, at time now.
func (e *Encoder) Append(dst []byte, rec *parse.Record, raw []byte, perr error, meta []byte, offset int64, now time.Time) []byte {
	dst = append(dst, `{"@timestamp":"`...)
	var tags [2]string
	nt := 0
	var badTime []byte
	var badTimeKind parse.Kind
	if perr == nil && len(rec.Time) > 0 {
		if !e.appendTime(&dst, rec.Time, rec.TimeKind, now) {
			badTime, badTimeKind = rec.Time, rec.TimeKind
			tags[nt] = TagTimeFailure
			nt++
		}
	} else {
		dst = e.appendNow(dst, now)
	}
	dst = append(dst, `","level":`...)
	if perr == nil && len(rec.Level) > 0 {
		dst = appendLevel(dst, rec.Level, rec.LevelKind)
	} else {
		dst = AppendString(dst, e.defLevel)
	}
	dst = append(dst, `,"message":`...)
	if perr != nil {
		dst = AppendString(dst, raw)
		tags[nt] = TagParseFailure
		nt++
	} else {
		dst = appendValue(dst, rec.Message, rec.MsgKind)
		for i := range rec.Fields {
			f := &rec.Fields[i]
			dst = append(dst, ',')
			if e.isReserved(f.Key) {
				dst = e.appendRenamed(dst, rec, f.Key)
			} else {
				dst = AppendString(dst, f.Key)
			}
			dst = append(dst, ':')
			dst = appendValue(dst, f.Value, f.Kind)
		}
	}
	if badTime != nil {
		dst = append(dst, ',')
		dst = e.appendRenamed(dst, rec, []byte("unparsed_timestamp"))
		dst = append(dst, ':')
		dst = appendValue(dst, badTime, badTimeKind)
	}
	dst = append(dst, ',')
	dst = append(dst, meta...)
	dst = strconv.AppendInt(dst, offset, 10)
	dst = append(dst, '}')
	dst = append(dst, e.fixed...)
	if perr != nil {
		dst = append(dst, `,"error":{"type":"parse","message":`...)
		dst = AppendString(dst, []byte(perr.Error()))
		dst = append(dst, '}')
	}
	if nt > 0 {
		dst = append(dst, `,"tags":[`...)
		for i := 0; i < nt; i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendString(dst, []byte(tags[i]))
		}
		dst = append(dst, ']')
	}
	return append(dst, '}')
}

// appendRenamed writes a reserved key as "fields.<key>" (with more
// underscores while that collides with another parsed key).
func (e *Encoder) appendRenamed(dst []byte, rec *parse.Record, k []byte) []byte {
	name := append([]byte("fields."), k...)
	for taken(rec, name) {
		name = append(name, '_')
	}
	return AppendString(dst, name)
}

func taken(rec *parse.Record, name []byte) bool {
	for i := range rec.Fields {
		if bytes.Equal(rec.Fields[i].Key, name) {
			return true
		}
	}
	return false
}

// isReserved reports whether a parsed key would collide with a field the
// encoder writes (such keys are written as "fields.<key>").
func (e *Encoder) isReserved(k []byte) bool {
	for i, c := range k {
		if c == '.' {
			k = k[:i]
			break
		}
	}
	switch string(k) {
	case "@timestamp", "level", "message", "log", "host", "kubernetes", "error", "tags", "fields":
		return true
	}
	for _, s := range e.static {
		if string(k) == s {
			return true
		}
	}
	return false
}

func appendValue(dst, v []byte, k parse.Kind) []byte {
	switch k {
	case parse.Raw:
		return append(dst, v...)
	case parse.Quoted:
		return AppendQuoted(dst, v)
	}
	return AppendString(dst, v)
}

// appendTime writes the RFC 3339 form of raw (without quotes) and reports
// whether it parsed; if not, it writes now.
func (e *Encoder) appendTime(dst *[]byte, raw []byte, kind parse.Kind, now time.Time) bool {
	if e.lastRaw != nil && bytes.Equal(raw, e.lastRaw) {
		if e.lastOK {
			*dst = append(*dst, e.lastOut...)
			return true
		}
		*dst = e.appendNow(*dst, now)
		return false
	}
	src := raw
	if kind == parse.Quoted && bytes.IndexByte(raw, '\\') >= 0 {
		// an escaped timestamp is rare: unescape through AppendQuoted
		q := AppendQuoted(nil, raw)
		src = q[1 : len(q)-1]
	}
	e.lastRaw = append(e.lastRaw[:0], raw...)
	if e.layout != "" {
		if t, ok := parseLayout(e.layout, string(src), e.loc, now); ok {
			e.lastOut, e.lastOK = AppendTime(e.lastOut[:0], t), true
			*dst = append(*dst, e.lastOut...)
			return true
		}
	}
	if e.loc == time.UTC {
		if out, ok := isoUTC(e.lastOut[:0], src); ok {
			e.lastOut, e.lastOK = out, true
			*dst = append(*dst, out...)
			return true
		}
	}
	t, ok := ParseTime(src, e.loc, now)
	e.lastOK = ok
	if !ok {
		*dst = e.appendNow(*dst, now)
		return false
	}
	e.lastOut = AppendTime(e.lastOut[:0], t)
	*dst = append(*dst, e.lastOut...)
	return true
}

// appendNow writes the read time (cached per second... to the nanosecond of
// the first line of that second: documents within a second keep order).
func (e *Encoder) appendNow(dst []byte, now time.Time) []byte {
	return AppendTime(dst, now)
}

var levelAliases = map[string]string{
	"WARNING": "WARN", "ERR": "ERROR", "CRIT": "CRITICAL", "EMERGENCY": "EMERG",
	"FATAL": "FATAL", "PANIC": "FATAL", "DBG": "DEBUG", "INFORMATION": "INFO", "INF": "INFO",
	"WRN": "WARN", "ERRO": "ERROR", "TRC": "TRACE", "EROR": "ERROR",
}

// appendLevel writes the level upper-cased, with common aliases folded
// (warning→WARN, err→ERROR, ...).
func appendLevel(dst, lvl []byte, kind parse.Kind) []byte {
	if kind == parse.Quoted && bytes.IndexByte(lvl, '\\') < 0 {
		kind = parse.String // a JSON or logfmt string without escapes: normalise it too
	}
	if kind != parse.String || len(lvl) > 16 {
		return appendValue(dst, lvl, kind)
	}
	var up [16]byte
	n := 0
	plain := true
	for _, c := range lvl {
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		} else if c >= 0x80 || !safe[c] {
			plain = false
		}
		up[n] = c
		n++
	}
	if !plain {
		return AppendString(dst, lvl)
	}
	u := up[:n]
	if a, ok := levelAliases[string(u)]; ok {
		u = []byte(a)
	}
	dst = append(dst, '"')
	dst = append(dst, u...)
	return append(dst, '"')
}
