package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestJSONHasHelperAndFields(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(&buf, "json", "info", "proxy")
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("hidden")
	l.Info("hello", "k", 1)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON line: %q: %v", buf.String(), err)
	}
	for _, k := range []string{"time", "level", "msg", "helper", "k"} {
		if _, ok := rec[k]; !ok {
			t.Errorf("missing field %s in %v", k, rec)
		}
	}
	if rec["helper"] != "proxy" {
		t.Errorf("helper=%v", rec["helper"])
	}
}

func TestBadFormatAndLevelNamed(t *testing.T) {
	if _, err := New(&bytes.Buffer{}, "xml", "info", "x"); err == nil || !strings.Contains(err.Error(), `"xml"`) {
		t.Errorf("format error: %v", err)
	}
	if _, err := New(&bytes.Buffer{}, "json", "loud", "x"); err == nil || !strings.Contains(err.Error(), `"loud"`) {
		t.Errorf("level error: %v", err)
	}
}
