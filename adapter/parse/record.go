// Package parse turns one logical log line into a Record: timestamp text,
// level, message and fields, as slices into the line (no copies, no
// allocations on the common paths). It also holds the stateful line joiners
// that run before parsing: CRI partial-line joining and multiline grouping.
//
// Parsers never drop a line: on failure they return an error and the caller
// ships the raw line with an error tag.
package parse

import (
	"errors"
	"fmt"
)

// Kind says how a field's value is to be written as JSON.
type Kind uint8

const (
	// String is plain text, escaped on output.
	String Kind = iota
	// Quoted is a logfmt/Go double-quoted string without its quotes; escapes
	// (\" \\ \n \t \r) are resolved on output.
	Quoted
	// Raw is a complete JSON value, copied verbatim (from JSON lines).
	Raw
)

// Field is one parsed key/value.
type Field struct {
	Key   []byte
	Value []byte
	Kind  Kind
}

// Record is the parsed form of one logical line. Its slices point into the
// line given to Parse and are valid only as long as that line.
type Record struct {
	Time      []byte // timestamp text as found; empty when the line has none
	TimeKind  Kind   // Quoted when Time came from a quoted value
	Level     []byte
	LevelKind Kind
	Message   []byte
	MsgKind   Kind
	Fields    []Field
}

// Reset empties r, keeping its field storage.
func (r *Record) Reset() {
	r.Time, r.Level, r.Message = nil, nil, nil
	r.TimeKind, r.LevelKind, r.MsgKind = String, String, String
	r.Fields = r.Fields[:0]
}

// Add appends a field.
func (r *Record) Add(k, v []byte, kind Kind) {
	r.Fields = append(r.Fields, Field{Key: k, Value: v, Kind: kind})
}

// Parser parses one logical line into r (already Reset). A non-nil error
// means the line does not have the parser's format; r may then hold partial
// results that the caller ignores.
type Parser interface {
	Parse(line []byte, r *Record) error
}

// ErrFormat is wrapped by every parse failure.
var ErrFormat = errors.New("line does not match format")

func fail(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrFormat}, args...)...)
}

// New returns the parser called name: json, logfmt, legacy, syslog,
// syslog3164, syslog5424, combined (nginx/apache), cri, none, or regex
// (which needs pattern).
func New(name, pattern string) (Parser, error) {
	switch name {
	case "json":
		return JSON{}, nil
	case "logfmt":
		return Logfmt{}, nil
	case "legacy":
		return Legacy{}, nil
	case "syslog":
		return Syslog{}, nil
	case "syslog3164":
		return Syslog{Only: 3164}, nil
	case "syslog5424":
		return Syslog{Only: 5424}, nil
	case "combined", "nginx", "apache":
		return Combined{}, nil
	case "cri":
		return CRI{}, nil
	case "none", "raw":
		return None{}, nil
	case "regex":
		return NewRegex(pattern)
	}
	return nil, fmt.Errorf("unknown parser %q (want json, logfmt, legacy, regex, syslog, syslog3164, syslog5424, combined, cri or none)", name)
}

// None keeps the line as the message.
type None struct{}

// Parse implements Parser.
func (None) Parse(line []byte, r *Record) error { r.Message = trimCR(line); return nil }

// assign routes well-known keys to the record's top-level slots; it reports
// whether key was one of them.
func assign(r *Record, k, v []byte, kind Kind) bool {
	switch string(k) {
	case "time", "ts", "timestamp", "@timestamp", "datetime", "date", "t":
		if r.Time == nil {
			r.Time, r.TimeKind = v, kind
			return true
		}
	case "level", "lvl", "severity", "loglevel", "log_level", "levelname", "log.level":
		if r.Level == nil {
			r.Level, r.LevelKind = v, kind
			return true
		}
	case "msg", "message", "log":
		if r.Message == nil {
			r.Message, r.MsgKind = v, kind
			return true
		}
	}
	return false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (isSpace(b[0]) || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (isSpace(b[len(b)-1]) || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
