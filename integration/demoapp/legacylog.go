package main

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// legacyLine formats one line of the legacy log format the adapter parses:
//
//	2024-01-15 14:32:01 INFO order_id=ORD-9921 status=FULFILLED
//
// Keys keep their order; a value with whitespace, quotes or '=' is quoted.
func legacyLine(t time.Time, level string, kv ...string) string {
	var b strings.Builder
	b.WriteString(t.UTC().Format("2006-01-02 15:04:05"))
	b.WriteByte(' ')
	b.WriteString(level)
	for i := 0; i+1 < len(kv); i += 2 {
		b.WriteByte(' ')
		b.WriteString(kv[i])
		b.WriteByte('=')
		b.WriteString(quoteValue(kv[i+1]))
	}
	b.WriteByte('\n')
	return b.String()
}

func quoteValue(v string) string {
	if v == "" {
		return `""`
	}
	if strings.ContainsAny(v, " \t\r\n\"=") {
		return fmt.Sprintf("%q", v)
	}
	return v
}

// legacyLog appends legacy lines to a file, one write per line (O_APPEND), so
// a tailing reader never sees two lines interleaved.
type legacyLog struct {
	mu  sync.Mutex
	f   *os.File
	now func() time.Time
}

func openLegacyLog(path string) (*legacyLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log file %s: %w", path, err)
	}
	return &legacyLog{f: f, now: time.Now}, nil
}

func (l *legacyLog) Log(level string, kv ...string) {
	line := legacyLine(l.now(), level, kv...)
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.WriteString(line); err != nil {
		fmt.Fprintf(os.Stderr, "demoapp: write log: %v\n", err)
	}
}

func (l *legacyLog) Close() error { return l.f.Close() }
