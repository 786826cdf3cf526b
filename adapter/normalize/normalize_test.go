package normalize

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // as the adapter binary embeds it
	"unicode/utf8"

	"github.com/sidecarkit/sidecarkit/adapter/parse"
)

func TestParseTimeLayouts(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		loc  *time.Location
		want string
	}{
		{"2024-01-15 14:32:01", time.UTC, "2024-01-15T14:32:01Z"},
		{"2024-01-15 14:32:01", berlin, "2024-01-15T13:32:01Z"},
		{"2024-01-15T14:32:01.123+02:00", time.UTC, "2024-01-15T12:32:01.123Z"},
		{"2024-01-15 14:32:01,500", time.UTC, "2024-01-15T14:32:01.5Z"},
		{"2024-01-15T14:32:01.123456789Z", berlin, "2024-01-15T14:32:01.123456789Z"},
		{"2024-01-15 14:32:01 +0100", time.UTC, "2024-01-15T13:32:01Z"},
		{"10/Oct/2000:13:55:36 -0700", time.UTC, "2000-10-10T20:55:36Z"},
		{"Feb 29 23:59:59", time.UTC, "2024-02-29T23:59:59Z"},
		{"Dec 31 23:00:00", time.UTC, "2023-12-31T23:00:00Z"}, // no year, in the future: last year
		{"1705329121", time.UTC, "2024-01-15T14:32:01Z"},
		{"1705329121.25", time.UTC, "2024-01-15T14:32:01.25Z"},
		{"1705329121250", time.UTC, "2024-01-15T14:32:01.25Z"},
		{"2024/01/15 14:32:01", time.UTC, "2024-01-15T14:32:01Z"},
		{"Mon Jan 15 14:32:01 2024", time.UTC, "2024-01-15T14:32:01Z"},
		{"Mon, 15 Jan 2024 14:32:01 +0000", time.UTC, "2024-01-15T14:32:01Z"},
	} {
		got, ok := ParseTime([]byte(c.in), c.loc, now)
		if !ok || string(AppendTime(nil, got)) != c.want {
			t.Errorf("ParseTime(%q, %v) = %s %v, want %s", c.in, c.loc, AppendTime(nil, got), ok, c.want)
		}
	}
	for _, bad := range []string{"", "yesterday", "2024-02-30 10:00:00", "2024-13-01 10:00:00", "2024-01-15 25:00:00x"} {
		if _, ok := ParseTime([]byte(bad), time.UTC, now); ok {
			t.Errorf("ParseTime(%q) accepted", bad)
		}
	}
}

func TestEncodeDocument(t *testing.T) {
	e := NewEncoder(Options{DefaultLevel: "info", Host: "node-1", Pod: "web-0", Namespace: "shop", Container: "app", Static: [][2]string{{"env", "prod"}, {"host", "ignored: reserved"}}})
	var r parse.Record
	line := []byte("2024-01-15 14:32:01 INFO order_id=ORD-9921 status=FULFILLED message=dup host=x")
	if err := (parse.Legacy{}).Parse(line, &r); err != nil {
		t.Fatal(err)
	}
	doc := e.Append(nil, &r, line, nil, FileMeta("/var/log/app.log"), 120, time.Now())
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	want := map[string]any{"@timestamp": "2024-01-15T14:32:01Z", "level": "INFO", "order_id": "ORD-9921", "status": "FULFILLED",
		"message": "dup", "fields.host": "x", "env": "prod",
		"log":  map[string]any{"file": map[string]any{"path": "/var/log/app.log"}, "offset": 120.0},
		"host": map[string]any{"name": "node-1"}, "kubernetes": map[string]any{"pod": map[string]any{"name": "web-0"}, "namespace": "shop", "container": map[string]any{"name": "app"}}}
	for k, v := range want {
		if gb, _ := json.Marshal(m[k]); string(gb) != mustJSON(v) {
			t.Errorf("%s = %s, want %s", k, gb, mustJSON(v))
		}
	}
	// a failed parse: raw line, read time, default level, error and tag
	now := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)
	r.Reset()
	bad := []byte("not \xff legacy")
	perr := (parse.Legacy{}).Parse(bad, &r)
	doc = e.Append(nil, &r, bad, perr, FileMeta("/x"), 0, now)
	if !json.Valid(doc) || !strings.Contains(string(doc), `"tags":["_parsefailure"]`) || !strings.Contains(string(doc), `"@timestamp":"2024-05-01T00:00:00Z"`) ||
		!strings.Contains(string(doc), `"level":"INFO"`) || !strings.Contains(string(doc), `"message":"not \ufffd legacy"`) {
		t.Errorf("failure document: %s", doc)
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestLevels(t *testing.T) {
	for in, want := range map[string]string{"info": `"INFO"`, "Warning": `"WARN"`, "err": `"ERROR"`, "crit": `"CRITICAL"`, "DEBUG": `"DEBUG"`, "notice": `"NOTICE"`} {
		if got := string(appendLevel(nil, []byte(in), parse.String)); got != want {
			t.Errorf("level %q → %s, want %s", in, got, want)
		}
	}
}

// FuzzAppendString checks the SWAR fast path against encoding/json: the
// result is valid JSON and decodes to the input (invalid UTF-8 → U+FFFD).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain ascii text of some length", "quote\" back\\slash", "ctl\x00\x1f\x7f", "é漢字😀", "\xff\xfe", "abcdefg\"hijklmno\\p"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out := AppendString(nil, b)
		var s string
		if err := json.Unmarshal(out, &s); err != nil {
			t.Fatalf("AppendString(%q) = %s: %v", b, out, err)
		}
		if want := strings.ToValidUTF8(string(b), "\uFFFD"); utf8.Valid(b) && s != want {
			t.Fatalf("round trip %q → %q", b, s)
		}
	})
}

// FuzzAppendQuoted: any escaped input gives valid JSON.
func FuzzAppendQuoted(f *testing.F) {
	for _, s := range []string{`a\"b`, `\u00e9\ud83d\ude00`, `\ud800`, `\`, `\x`, `\u12`, "\xff\\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if out := AppendQuoted(nil, b); !json.Valid(out) {
			t.Fatalf("AppendQuoted(%q) = %s", b, out)
		}
	})
}

// FuzzParseTime: never panics; the ISO fast path agrees with the general one.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2024-01-15 14:32:01", "2024-02-29T00:00:00.000000001Z", "2023-02-29 00:00:00", "10/Oct/2000:13:55:36 -0700", "1705329121.5", "Jan  5 01:02:03"} {
		f.Add([]byte(s))
	}
	now := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, b []byte) {
		tm, ok := ParseTime(b, time.UTC, now)
		if fast, fok := isoUTC(nil, b); fok {
			if !ok || string(AppendTime(nil, tm)) != string(fast) {
				t.Fatalf("%q: fast path %s, general %s %v", b, fast, AppendTime(nil, tm), ok)
			}
		}
	})
}

func TestQuotedLevelsAreNormalisedToo(t *testing.T) {
	// JSON and logfmt strings arrive as Quoted
	for in, want := range map[string]string{"warning": `"WARN"`, "err": `"ERROR"`, "Information": `"INFO"`, "a\\\"b": `"a\"b"`} {
		if got := string(appendLevel(nil, []byte(in), parse.Quoted)); got != want {
			t.Errorf("quoted level %q → %s, want %s", in, got, want)
		}
	}
}

func TestSparkAndHDFSTimestampsAndLayouts(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]string{
		"17/06/09 20:10:40": "2017-06-09T20:10:40Z", // Spark
		"081109 203615":     "2008-11-09T20:36:15Z", // HDFS
	} {
		ts, ok := ParseTime([]byte(in), time.UTC, now)
		if !ok || ts.Format(time.RFC3339) != want {
			t.Errorf("ParseTime(%q) = %v %v, want %s", in, ts, ok, want)
		}
	}
	for pat, want := range map[string]string{
		"yy/MM/dd HH:mm:ss":       "06/01/02 15:04:05",
		"yyMMdd HHmmss":           "060102 150405",
		"yyyy-MM-dd HH:mm:ss.SSS": "2006-01-02 15:04:05.000",
		"2006-01-02 15:04":        "2006-01-02 15:04",
	} {
		if got, err := Layout(pat); err != nil || got != want {
			t.Errorf("Layout(%q) = %q, %v; want %q", pat, got, err, want)
		}
	}
	if _, err := Layout("qq"); err == nil {
		t.Error("Layout accepted a pattern without fields")
	}
	// a layout given for a path wins over the guesses: dd/MM/yy is not yy/MM/dd
	l, _ := Layout("dd/MM/yy HH:mm:ss")
	e := NewEncoder(Options{Location: time.UTC, Layout: l})
	var r parse.Record
	r.Time, r.Message = []byte("09/06/17 20:10:40"), []byte("x")
	doc := string(e.Append(nil, &r, []byte("x"), nil, FileMeta("/a"), 0, now))
	if !strings.Contains(doc, `"@timestamp":"2017-06-09T20:10:40Z"`) {
		t.Errorf("with --timestamp-layout dd/MM/yy: %s", doc)
	}
}
