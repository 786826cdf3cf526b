package adapter_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// Real programs that log stack traces — python3 (logging.exception with
// chained, grouped and custom exceptions, multi-line messages), java 17
// (nested causes, suppressed, inner and message-less classes, multi-line
// messages, an uncaught exception, and the same program with CRLF line
// ends) and go (a panic in deep recursion re-panicking in a defer with
// GOTRACEBACK=system, and the runtime's deadlock fatal error) — write their
// log files; each records the exact text of every record it wrote. The
// built adapter ships the files with the language's multiline preset into
// the file output, and every document must be exactly one record.

// startAdapterOut runs the built adapter into the file output.
func startAdapterOut(t *testing.T, dir, out string, extra ...string) *adapterProc {
	t.Helper()
	bin := adapterBinary(t)
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	args := append([]string{bin, "run", "--admin-addr", admin, "--output", "file", "--output-file", out,
		"--checkpoint-file", filepath.Join(dir, "checkpoint.json"),
		"--scan-interval", "200ms", "--poll-interval", "50ms", "--flush-interval", "200ms", "--multiline-timeout", "500ms"}, extra...)
	p := testenv.NewProcess(t, "adapter", args, nil, func() error {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz %d", resp.StatusCode)
		}
		return nil
	})
	p.Start()
	return &adapterProc{Process: p, admin: admin}
}

// readRecords decodes a program's record file (base64 per line).
func readRecords(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		r, err := base64.StdEncoding.DecodeString(l)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, string(r))
	}
	return out
}

// expectFile returns the records of a log file: those the program
// recorded, then (when the runtime wrote more after them, an uncaught
// exception or a panic) the rest of the file as one record.
func expectFile(t *testing.T, logPath string, recorded []string, nl string) []string {
	t.Helper()
	b, _ := os.ReadFile(logPath)
	text := string(b)
	var want []string
	for _, r := range recorded {
		if !strings.HasPrefix(text, r+nl) {
			t.Fatalf("%s does not hold the recorded record %.80q next (holds %.80q)", logPath, r, text)
		}
		text = text[len(r)+len(nl):]
		want = append(want, r)
	}
	if rest := strings.TrimRight(text, "\r\n"); rest != "" {
		want = append(want, rest)
	}
	return want
}

type mlDoc struct {
	Message string `json:"message"`
	Path    string `json:"log.file.path"`
	Offset  int64  `json:"log.offset"`
}

// docsByFile reads the output file: each file's documents in offset order.
func docsByFile(t *testing.T, out string) map[string][]mlDoc {
	b, _ := os.ReadFile(out)
	m := map[string][]mlDoc{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 4<<20), 4<<20)
	for sc.Scan() {
		var raw map[string]any
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			t.Fatalf("output holds invalid JSON: %v: %.200s", err, sc.Bytes())
		}
		d := mlDoc{}
		d.Message, _ = raw["message"].(string)
		if l, ok := raw["log"].(map[string]any); ok {
			if f, ok := l["file"].(map[string]any); ok {
				d.Path, _ = f["path"].(string)
			}
			if o, ok := l["offset"].(float64); ok {
				d.Offset = int64(o)
			}
		}
		m[d.Path] = append(m[d.Path], d)
	}
	for _, ds := range m {
		sort.Slice(ds, func(i, j int) bool { return ds[i].Offset < ds[j].Offset })
	}
	return m
}

func TestMultilinePresetsOnRealProgramTraces(t *testing.T) {
	python := testenv.Tool(t, "python3", "python3")
	java := testenv.Tool(t, "java", "openjdk-17-jdk-headless")
	javac := testenv.Tool(t, "javac", "openjdk-17-jdk-headless")
	goTool := testenv.Tool(t, "go", "golang")
	src, _ := filepath.Abs("testdata/crashers")
	work := t.TempDir()
	run := func(name string, env []string, stdout *os.File, args ...string) {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), env...)
		var eb bytes.Buffer
		cmd.Stderr = &eb
		if stdout != nil {
			cmd.Stderr = stdout
		}
		if err := cmd.Run(); err != nil && stdout == nil {
			t.Fatalf("%s: %v\n%s", name, err, eb.String())
		}
	}
	appendTo := func(path string) *os.File {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	type lang struct {
		name, preset string
		files        map[string][]string // log file → expected records
	}
	var langs []lang

	// python3
	{
		dir := filepath.Join(work, "python")
		os.MkdirAll(dir, 0o755)
		logp := filepath.Join(dir, "app.log")
		run("python3", nil, nil, python, filepath.Join(src, "app.py"), logp, filepath.Join(work, "py.recs"))
		langs = append(langs, lang{"python", "python", map[string][]string{logp: expectFile(t, logp, readRecords(t, filepath.Join(work, "py.recs")), "\n")}})
	}
	// java 17, LF and CRLF
	{
		run("javac", nil, nil, javac, "-d", work, filepath.Join(src, "App.java"))
		dir := filepath.Join(work, "java")
		os.MkdirAll(dir, 0o755)
		files := map[string][]string{}
		for _, v := range []struct{ name, nl string }{{"app.log", "\n"}, {"app-crlf.log", "\r\n"}} {
			logp := filepath.Join(dir, v.name)
			recs := filepath.Join(work, v.name+".recs")
			// the uncaught exception goes to stderr, which is the log too
			run("java", nil, appendTo(logp), java, "-Dline.separator="+v.nl, "-cp", work, "App", logp, recs)
			want := expectFile(t, logp, readRecords(t, recs), v.nl)
			for i := range want {
				want[i] = strings.ReplaceAll(want[i], "\r", "") // the adapter strips CR
			}
			files[logp] = want
		}
		langs = append(langs, lang{"java", "java", files})
	}
	// go, GOTRACEBACK=system: a nested panic, then a fatal error
	{
		gdir := filepath.Join(work, "gosrc")
		os.MkdirAll(gdir, 0o755)
		b, _ := os.ReadFile(filepath.Join(src, "crasher.go"))
		os.WriteFile(filepath.Join(gdir, "main.go"), b, 0o644)
		os.WriteFile(filepath.Join(gdir, "go.mod"), []byte("module crasher\n\ngo 1.22\n"), 0o644)
		bin := filepath.Join(work, "crasher")
		cmd := exec.Command(goTool, "build", "-o", bin, ".")
		cmd.Dir = gdir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build crasher: %v\n%s", err, out)
		}
		dir := filepath.Join(work, "go")
		os.MkdirAll(dir, 0o755)
		logp := filepath.Join(dir, "app.log")
		var want []string
		for _, mode := range []string{"panic", "fatal"} {
			before, _ := os.ReadFile(logp)
			recs := filepath.Join(work, "go-"+mode+".recs")
			run("crasher", []string{"GOTRACEBACK=system"}, appendTo(logp), bin, logp, recs, mode)
			// expected records of this run: compare against the part of the file it wrote
			part := filepath.Join(work, "go-"+mode+".part")
			after, _ := os.ReadFile(logp)
			os.WriteFile(part, after[len(before):], 0o644)
			want = append(want, expectFile(t, part, readRecords(t, recs), "\n")...)
		}
		if !strings.Contains(strings.Join(want, "\n"), "gp=") || !strings.Contains(strings.Join(want, "\n"), "frames elided") {
			t.Errorf("the go traces lack GOTRACEBACK=system goroutine headers or elided frames:\n%s", strings.Join(want, "\n"))
		}
		langs = append(langs, lang{"go", "go", map[string][]string{logp: want}})
	}

	var report strings.Builder
	fmt.Fprintf(&report, "\n%-8s %-14s %8s %10s %8s\n", "language", "file", "records", "documents", "matching")
	for _, l := range langs {
		dir := filepath.Join(work, l.name+"-adapter")
		out := filepath.Join(dir, "out.ndjson")
		var paths []string
		want := 0
		for p, recs := range l.files {
			paths = append(paths, p)
			want += len(recs)
		}
		startAdapterOut(t, dir, out, "--paths", strings.Join(paths, ","), "--parser", "none", "--multiline", l.preset)
		deadline := time.Now().Add(60 * time.Second)
		var got map[string][]mlDoc
		for time.Now().Before(deadline) {
			got = docsByFile(t, out)
			n := 0
			for _, ds := range got {
				n += len(ds)
			}
			if n >= want {
				time.Sleep(time.Second) // and no more
				got = docsByFile(t, out)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		for _, p := range paths {
			recs, docs := l.files[p], got[p]
			match := 0
			for i := range recs {
				if i < len(docs) && docs[i].Message == recs[i] {
					match++
				} else if i < len(docs) {
					t.Errorf("%s %s: document %d is\n%q\nwant the record\n%q", l.name, filepath.Base(p), i, docs[i].Message, recs[i])
				}
			}
			fmt.Fprintf(&report, "%-8s %-14s %8d %10d %8d\n", l.name, filepath.Base(p), len(recs), len(docs), match)
			if len(docs) != len(recs) || match != len(recs) {
				t.Errorf("%s %s: %d records written, %d documents, %d matching", l.name, filepath.Base(p), len(recs), len(docs), match)
			}
		}
	}
	t.Log(report.String())
}
