package bulk

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

var jsonMarshal = json.Marshal

// deadLetter appends the items idx of b with their results to the
// dead-letter file, one JSON line each:
//
//	{"time":"...","status":400,"error":{...},"action":{...},"document":{...}}
//
// and fsyncs it before the items count as handled.
func (e *ES) deadLetter(b *Batch, idx []int, res []ItemResult) error {
	e.deadMu.Lock()
	defer e.deadMu.Unlock()
	if e.dead == nil {
		if e.cfg.DeadLetter == "" {
			return fmt.Errorf("no dead-letter file configured")
		}
		if err := os.MkdirAll(filepath.Dir(e.cfg.DeadLetter), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(e.cfg.DeadLetter, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		e.dead = f
	}
	var out []byte
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for j, i := range idx {
		r := res[0]
		if len(res) == len(idx) {
			r = res[j]
		}
		out = append(out, `{"time":"`...)
		out = append(out, now...)
		out = append(out, `","status":`...)
		out = strconv.AppendInt(out, int64(r.Status), 10)
		out = append(out, `,"error":`...)
		if len(r.Error) > 0 && json.Valid(r.Error) {
			out = append(out, r.Error...)
		} else {
			out = append(out, "null"...)
		}
		out = append(out, `,"action":`...)
		out = append(out, b.Action(i)...)
		out = append(out, `,"document":`...)
		out = append(out, b.Doc(i)...)
		out = append(out, "}\n"...)
	}
	if _, err := e.dead.Write(out); err != nil {
		return err
	}
	if err := e.dead.Sync(); err != nil {
		return err
	}
	if e.m.Dead != nil {
		e.m.Dead.Add(float64(len(idx)))
	}
	e.log.Warn("bulk: documents rejected; written to the dead-letter file", "count", len(idx), "status", res[0].Status, "type", res[0].ErrType, "file", e.cfg.DeadLetter)
	return nil
}
