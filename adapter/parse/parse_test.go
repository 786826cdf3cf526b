package parse

import (
	"strings"
	"testing"
	"time"
)

func fields(r *Record) map[string]string {
	m := map[string]string{}
	for _, f := range r.Fields {
		m[string(f.Key)] = string(f.Value)
	}
	return m
}

func mustParse(t *testing.T, p Parser, line string) *Record {
	t.Helper()
	var r Record
	if err := p.Parse([]byte(line), &r); err != nil {
		t.Fatalf("%T.Parse(%q): %v", p, line, err)
	}
	return &r
}

func TestLegacy(t *testing.T) {
	r := mustParse(t, Legacy{}, "2024-01-15 14:32:01 INFO order_id=ORD-9921 status=FULFILLED")
	if string(r.Time) != "2024-01-15 14:32:01" || string(r.Level) != "INFO" || string(r.Message) != "order_id=ORD-9921 status=FULFILLED" {
		t.Errorf("got time %q level %q message %q", r.Time, r.Level, r.Message)
	}
	if f := fields(r); f["order_id"] != "ORD-9921" || f["status"] != "FULFILLED" || len(f) != 2 {
		t.Errorf("fields %v", f)
	}
	r = mustParse(t, Legacy{}, `2024-01-15 14:32:01,123 [WARN] payment failed msg="card \"declined\"" code=51`)
	if string(r.Time) != "2024-01-15 14:32:01,123" || string(r.Level) != "WARN" || string(r.Message) != `card \"declined\"` || r.MsgKind != Quoted {
		t.Errorf("got time %q level %q message %q", r.Time, r.Level, r.Message)
	}
	for _, bad := range []string{"", "hello world", "2024-01-15 14:32:01", "2024-01-15T14:3x:01 INFO a=b"} {
		var r Record
		if err := (Legacy{}).Parse([]byte(bad), &r); err == nil {
			t.Errorf("Legacy accepted %q", bad)
		}
	}
}

func TestLogfmt(t *testing.T) {
	r := mustParse(t, Logfmt{}, `time=2024-01-15T14:32:01Z level=error msg="db down" retry=3 retry=4 host=db1 empty=`)
	if string(r.Time) != "2024-01-15T14:32:01Z" || string(r.Level) != "error" || string(r.Message) != "db down" {
		t.Errorf("slots %q %q %q", r.Time, r.Level, r.Message)
	}
	if f := fields(r); f["retry"] != "3" || f["host"] != "db1" || len(r.Fields) != 3 {
		t.Errorf("fields %v (duplicates must keep the first)", r.Fields)
	}
	var x Record
	if err := (Logfmt{}).Parse([]byte("just words"), &x); err != nil || string(x.Message) != "just words" {
		// bare words are a message
		t.Errorf("bare words: %v %q", err, x.Message)
	}
}

func TestJSON(t *testing.T) {
	r := mustParse(t, JSON{}, `{"ts":1705329121.5,"level":"warn","msg":"hi \"x\"","n":1,"obj":{"a":[1,2]},"k\u00e9y":true}`)
	if string(r.Time) != "1705329121.5" || string(r.Level) != "warn" || string(r.Message) != `hi \"x\"` || r.MsgKind != Quoted {
		t.Errorf("slots %q %q %q", r.Time, r.Level, r.Message)
	}
	if f := fields(r); f["n"] != "1" || f["obj"] != `{"a":[1,2]}` || len(r.Fields) != 3 {
		t.Errorf("fields %v", f)
	}
	for _, bad := range []string{`{"a":`, `[1]`, `{"a":1}}`, "not json"} {
		var r Record
		if err := (JSON{}).Parse([]byte(bad), &r); err == nil {
			t.Errorf("JSON accepted %q", bad)
		}
	}
}

func TestSyslog(t *testing.T) {
	r := mustParse(t, Syslog{}, `<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed for lonvick on /dev/pts/8`)
	f := fields(r)
	if string(r.Time) != "Oct 11 22:14:15" || string(r.Level) != "CRIT" || f["syslog.hostname"] != "mymachine" || f["syslog.appname"] != "su" || f["syslog.procid"] != "123" || f["syslog.facility"] != "auth" {
		t.Errorf("3164: %q %q %v", r.Time, r.Level, f)
	}
	if string(r.Message) != "'su root' failed for lonvick on /dev/pts/8" {
		t.Errorf("3164 message %q", r.Message)
	}
	r = mustParse(t, Syslog{}, `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application"] An application event`)
	f = fields(r)
	if string(r.Time) != "2003-10-11T22:14:15.003Z" || f["syslog.appname"] != "evntslog" || f["syslog.msgid"] != "ID47" || f["syslog.procid"] != "" ||
		!strings.HasPrefix(f["syslog.structured_data"], "[exampleSDID@32473") || string(r.Message) != "An application event" || string(r.Level) != "NOTICE" {
		t.Errorf("5424: %q %q %v %q", r.Time, r.Level, f, r.Message)
	}
	r = mustParse(t, Syslog{}, `2024-01-15T14:32:01.123456+00:00 web01 nginx: started`)
	if string(r.Time) != "2024-01-15T14:32:01.123456+00:00" || string(r.Message) != "started" {
		t.Errorf("rsyslog file format: %q %q", r.Time, r.Message)
	}
	var x Record
	if err := (Syslog{Only: 5424}).Parse([]byte(`<34>Oct 11 22:14:15 host x: y`), &x); err == nil {
		t.Error("syslog5424 accepted a 3164 line")
	}
}

func TestCombined(t *testing.T) {
	line := `203.0.113.9 - alice [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif?a=\"b\" HTTP/1.0" 503 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"`
	r := mustParse(t, Combined{}, line)
	f := fields(r)
	if string(r.Time) != "10/Oct/2000:13:55:36 -0700" || f["http.request.method"] != "GET" || f["url.original"] != `/apache_pb.gif?a=\"b\"` ||
		f["http.response.status_code"] != "503" || f["http.response.body.bytes"] != "2326" || f["user.name"] != "alice" ||
		f["user_agent.original"] != "Mozilla/4.08 [en] (Win98; I ;Nav)" || string(r.Level) != "ERROR" {
		t.Errorf("combined: %q %v %q", r.Time, f, r.Level)
	}
	mustParse(t, Combined{}, `::1 - - [10/Oct/2000:13:55:36 +0000] "-" 400 0`) // common format, bad request
}

func TestCRIAndJoiner(t *testing.T) {
	var out []string
	var spans [][2]int64
	emit := func(rec []byte, s, e int64) { out = append(out, string(rec)); spans = append(spans, [2]int64{s, e}) }
	j := NewCRIJoiner(0, time.Now)
	j.Feed([]byte("2016-10-06T00:17:09.669794202Z stdout P part one, "), 0, 10, emit)
	j.Feed([]byte("2016-10-06T00:17:09.669794203Z stdout P part two, "), 10, 20, emit)
	j.Feed([]byte("2016-10-06T00:17:09.669794204Z stdout F end"), 20, 30, emit)
	j.Feed([]byte("2016-10-06T00:17:10.000000000Z stderr F whole"), 30, 40, emit)
	if len(out) != 2 || out[0] != "2016-10-06T00:17:09.669794202Z stdout F part one, part two, end" || spans[0] != [2]int64{0, 30} {
		t.Fatalf("joined %q %v", out, spans)
	}
	r := mustParse(t, CRI{}, out[1])
	if string(r.Message) != "whole" || fields(r)["stream"] != "stderr" {
		t.Errorf("cri: %q %v", r.Message, fields(r))
	}
}

func TestMultilinePresets(t *testing.T) {
	java := `2024-01-15 14:32:01 ERROR boom
java.lang.IllegalStateException: bad
	at com.example.Foo.bar(Foo.java:10)
	at com.example.Main.main(Main.java:5)
Caused by: java.io.IOException: disk
	... 2 more
2024-01-15 14:32:02 INFO next`
	python := `2024-01-15 14:32:01 ERROR failed
Traceback (most recent call last):
  File "app.py", line 3, in <module>
    main()
KeyError: 'x'
2024-01-15 14:32:02 INFO next`
	gopanic := `2024-01-15 14:32:01 ERROR crashing
panic: runtime error: index out of range [3] with length 2

goroutine 1 [running]:
main.main()
	/app/main.go:8 +0x1d
exit status 2
2024-01-15 14:32:02 INFO next`
	for name, text := range map[string]string{"java": java, "python": python, "go": gopanic} {
		m, err := NewMultiline(name, "", "", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		g := NewGroup(m, time.Now)
		var recs []string
		emit := func(rec []byte, s, e int64) { recs = append(recs, string(rec)) }
		for i, l := range strings.Split(text, "\n") {
			g.Feed([]byte(l), int64(i), int64(i+1), emit)
		}
		g.Flush(emit)
		if len(recs) < 2 || recs[len(recs)-1] != "2024-01-15 14:32:02 INFO next" {
			t.Errorf("%s: records %q", name, recs)
			continue
		}
		want := 2
		if name == "go" {
			want = 3 // the runtime's panic is a record of its own
		}
		if len(recs) != want {
			t.Errorf("%s: %d records, want %d: %q", name, len(recs), want, recs)
		}
	}
	if _, err := NewMultiline("cobol", "", "", 0, 0); err == nil {
		t.Error("unknown preset accepted")
	}
	m, _ := NewMultiline("", `^\d{4}-`, "", 3, 0)
	g := NewGroup(m, time.Now)
	var recs []string
	emit := func(rec []byte, s, e int64) { recs = append(recs, string(rec)) }
	for i, l := range []string{"2024- a", "x", "y", "z", "2024- b"} {
		g.Feed([]byte(l), int64(i), int64(i+1), emit)
	}
	g.Flush(emit)
	if len(recs) != 3 || recs[0] != "2024- a\nx\ny" {
		t.Errorf("custom start with max 3 lines: %q", recs)
	}
}

func TestRegex(t *testing.T) {
	p, err := NewRegex(`^(?P<time>\S+) \[(?P<level>\w+)\] (?P<component>\w+): (?P<message>.*)$`)
	if err != nil {
		t.Fatal(err)
	}
	r := mustParse(t, p, "2024-01-15T14:32:01Z [DEBUG] cache: warmed up")
	if string(r.Level) != "DEBUG" || string(r.Message) != "warmed up" || fields(r)["component"] != "cache" {
		t.Errorf("regex: %q %q %v", r.Level, r.Message, fields(r))
	}
	if _, err := NewRegex(`no groups`); err == nil {
		t.Error("regex without named groups accepted")
	}
	if _, err := New("nope", ""); err == nil {
		t.Error("unknown parser accepted")
	}
}

func TestCRLFIsStrippedByRegexAndNone(t *testing.T) {
	re, err := NewRegex(`^(?P<time>\S+) (?P<level>\w+) (?P<message>.*)$`)
	if err != nil {
		t.Fatal(err)
	}
	r := mustParse(t, re, "2024-01-15T14:32:01Z INFO served\r")
	if string(r.Message) != "served" {
		t.Errorf("regex message %q", r.Message)
	}
	if r := mustParse(t, None{}, "plain line\r"); string(r.Message) != "plain line" {
		t.Errorf("none message %q", r.Message)
	}
}

func TestJSONECSLogLevel(t *testing.T) {
	r := mustParse(t, JSON{}, `{"@timestamp":"2024-01-15T14:32:01Z","log.level":"warning","message":"m"}`)
	if string(r.Level) != "warning" {
		t.Errorf("log.level not read as the level: %q %v", r.Level, fields(r))
	}
}

func TestCombinedStatusAndBytesAreNumbers(t *testing.T) {
	r := mustParse(t, Combined{}, `127.0.0.1 - - [15/Jan/2024:14:32:01 +0000] "GET / HTTP/1.1" 200 512 "-" "curl"`)
	for _, f := range r.Fields {
		if (string(f.Key) == "http.response.status_code" || string(f.Key) == "http.response.body.bytes") && f.Kind != Raw {
			t.Errorf("%s is %v, want a number (Raw)", f.Key, f.Kind)
		}
	}
	r = mustParse(t, Combined{}, `127.0.0.1 - - [15/Jan/2024:14:32:01 +0000] "GET / HTTP/1.1" 304 - "-" "curl"`)
	if _, ok := fields(r)["http.response.body.bytes"]; ok {
		t.Error("bytes '-' kept")
	}
}

func TestLegacyTakesPairsFromTheFirstLineOnly(t *testing.T) {
	rec := "2024-01-15 14:32:01 ERROR order_id=7 failed\njava.lang.IllegalStateException: state=broken x=1\n\tat a.b(C.java:1)"
	r := mustParse(t, Legacy{}, rec)
	f := fields(r)
	if f["order_id"] != "7" || f["state"] != "" || f["x"] != "" {
		t.Errorf("fields %v: want order_id only", f)
	}
}

func TestMultilineRecordStartsAtTheTimestamp(t *testing.T) {
	m, err := NewMultiline("java", "", "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	text := "2024-01-15 14:32:01.123 ERROR [main] App - failed\r\ncom.shop.App$Ledger$Broken: ledger broken\r\nsecond line of the message\r\n\tat com.shop.App.main(App.java:5)\r\nCaused by: com.shop.App$Oops\r\n\t... 1 more\r\n2024-01-15 14:32:02.000 INFO [main] App - next\r"
	g := NewGroup(m, time.Now)
	var recs []string
	emit := func(rec []byte, s, e int64) { recs = append(recs, string(rec)) }
	for i, l := range strings.Split(text, "\n") {
		g.Feed([]byte(l), int64(i), int64(i+1), emit)
	}
	g.Flush(emit)
	if len(recs) != 2 || strings.Contains(recs[0], "\r") || !strings.HasSuffix(recs[0], "... 1 more") {
		t.Fatalf("records %q", recs)
	}
}
