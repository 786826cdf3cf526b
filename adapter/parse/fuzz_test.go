package parse_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/adapter/normalize"
	"github.com/sidecarkit/sidecarkit/adapter/parse"
)

// check parses line with p and encodes the result (or the failure): the
// document must always be valid JSON, and every slice of the record must
// lie inside the line.
func check(t *testing.T, p parse.Parser, line []byte) {
	var r parse.Record
	r.Reset()
	orig := append([]byte(nil), line...)
	err := p.Parse(line, &r)
	if !bytes.Equal(orig, line) {
		t.Fatalf("parser modified its input")
	}
	if err == nil {
		for _, s := range append([][]byte{r.Time, r.Level, r.Message}, fieldSlices(&r)...) {
			if len(s) > len(line)+64 { // static strings (levels, keys) are short
				t.Fatalf("slice longer than the line: %q", s)
			}
		}
	}
	enc := normalize.NewEncoder(normalize.Options{Host: "h", DefaultLevel: "info", Static: [][2]string{{"env", "prod"}}})
	doc := enc.Append(nil, &r, line, err, normalize.FileMeta("/var/log/x.log"), 42, time.Unix(1700000000, 0))
	if !json.Valid(doc) {
		t.Fatalf("invalid JSON document for %q (err %v):\n%s", line, err, doc)
	}
	// no duplicate keys at the top level (Elasticsearch rejects them)
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.Token()
	seen := map[string]bool{}
	for dec.More() {
		k, _ := dec.Token()
		ks := k.(string)
		if seen[ks] {
			t.Fatalf("duplicate key %q in %s", ks, doc)
		}
		seen[ks] = true
		var v json.RawMessage
		dec.Decode(&v)
	}
}

func fieldSlices(r *parse.Record) [][]byte {
	var out [][]byte
	for _, f := range r.Fields {
		out = append(out, f.Key, f.Value)
	}
	return out
}

func seeds(f *testing.F, lines ...string) {
	for _, l := range lines {
		f.Add([]byte(l))
	}
	f.Add([]byte{})
	f.Add([]byte("\x00\xff\xfe\"\\"))
}

func FuzzLegacy(f *testing.F) {
	seeds(f, "2024-01-15 14:32:01 INFO order_id=ORD-9921 status=FULFILLED",
		`2024-01-15 14:32:01,5 [WARN] msg="a \"b\" \u00e9" x= y="unterminated`, "2024-01-15 14:32:01 INFO message=x log=y host=z @timestamp=w")
	f.Fuzz(func(t *testing.T, b []byte) { check(t, parse.Legacy{}, b) })
}

func FuzzLogfmt(f *testing.F) {
	seeds(f, `time=2024-01-15T14:32:01Z level=error msg="db down" a=1 a=2`, `"quoted word" k="\ud83d\ude00" z=\`, "a=b=c ==")
	f.Fuzz(func(t *testing.T, b []byte) { check(t, parse.Logfmt{}, b) })
}

func FuzzJSON(f *testing.F) {
	seeds(f, `{"ts":1705329121.5,"level":"warn","msg":"hi","n":[1,{"a":"\u00e9"}]}`, `{"message":{"x":1},"log":"y","host":2,"k\"ey":1}`, `{"a":"\xff"}`, `{"time":"x","time":"y"}`)
	f.Fuzz(func(t *testing.T, b []byte) { check(t, parse.JSON{}, b) })
}

func FuzzSyslog(f *testing.F) {
	seeds(f, `<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed`,
		`<165>1 2003-10-11T22:14:15.003Z host app - ID47 [id@1 a="b\"]"][x] msg`, `<191>1 - - - - - -`, `2024-01-15T14:32:01Z web nginx: x`)
	f.Fuzz(func(t *testing.T, b []byte) {
		check(t, parse.Syslog{}, b)
		check(t, parse.Syslog{Only: 3164}, b)
		check(t, parse.Syslog{Only: 5424}, b)
	})
}

func FuzzCombined(f *testing.F) {
	seeds(f, `1.2.3.4 - u [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 2326 "http://r/" "UA \"x\""`, `::1 - - [x] "-" 400 -`)
	f.Fuzz(func(t *testing.T, b []byte) { check(t, parse.Combined{}, b) })
}

func FuzzRegex(f *testing.F) {
	p, err := parse.NewRegex(`^(?P<time>\S+) \[(?P<level>\w+)\] (?P<message>.*)$`)
	if err != nil {
		f.Fatal(err)
	}
	seeds(f, "2024-01-15T14:32:01Z [DEBUG] hi", "x [y] \xff")
	f.Fuzz(func(t *testing.T, b []byte) { check(t, p, b) })
}

func FuzzCRI(f *testing.F) {
	seeds(f, "2016-10-06T00:17:09.669794202Z stdout P part one, \n2016-10-06T00:17:09.669794202Z stdout F end",
		"2016-10-06T00:17:09.669794202Z stderr F x\nnot cri\n2016-10-06T00:17:09Z stdout P")
	f.Fuzz(func(t *testing.T, b []byte) {
		j := parse.NewCRIJoiner(1024, time.Now)
		var off int64
		var last int64 = -1
		emit := func(rec []byte, s, e int64) {
			if s < last || e < s {
				t.Fatalf("records out of order: [%d,%d) after %d", s, e, last)
			}
			last = e
			check(t, parse.CRI{}, rec)
		}
		for _, l := range bytes.Split(b, []byte("\n")) {
			j.Feed(l, off, off+int64(len(l))+1, emit)
			off += int64(len(l)) + 1
		}
		j.Flush(emit)
	})
}

func FuzzMultiline(f *testing.F) {
	seeds(f, "2024-01-15 ERROR x\n\tat a.b(C.java:1)\nCaused by: y\n2024 next", "Traceback (most recent call last):\n  File x\nKeyError: 1", "panic: x\n\ngoroutine 1 [running]:\nmain.main()\n\t/a.go:1 +0x1")
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, preset := range []string{"java", "python", "go"} {
			m, err := parse.NewMultiline(preset, "", "", 5, 256)
			if err != nil {
				t.Fatal(err)
			}
			g := parse.NewGroup(m, time.Now)
			var off, last int64
			n := 0
			emit := func(rec []byte, s, e int64) {
				if s != last { // records tile the input exactly
					t.Fatalf("%s: record starts at %d, previous ended at %d", preset, s, last)
				}
				last = e
				n++
				check(t, parse.Legacy{}, rec)
			}
			lines := bytes.Split(b, []byte("\n"))
			for _, l := range lines {
				g.Feed(l, off, off+int64(len(l))+1, emit)
				off += int64(len(l)) + 1
			}
			g.Flush(emit)
			if last != off {
				t.Fatalf("%s: records end at %d, input at %d", preset, last, off)
			}
		}
	})
}
