package adapter_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// 2,000 matched files with `ulimit -n 1024`: filepath.Glob used to return
// nothing on EMFILE, every file looked gone and was re-read from its head
// every few seconds. Now every line is shipped exactly once, the open
// files stay under the cap, and new lines appended later are read too.
func TestTwoThousandFilesUnderUlimit1024AreReadExactlyOnce(t *testing.T) {
	sh := testenv.Tool(t, "sh", "dash")
	bin := adapterBinary(t)
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	os.MkdirAll(logs, 0o755)
	const files, lines = 2000, 5
	for i := 0; i < files; i++ {
		var b strings.Builder
		for k := 0; k < lines; k++ {
			fmt.Fprintf(&b, "2024-01-15 14:32:01 INFO file=%d line=%d\n", i, k)
		}
		os.WriteFile(filepath.Join(logs, fmt.Sprintf("app-%04d.log", i)), []byte(b.String()), 0o644)
	}
	out := filepath.Join(dir, "out.ndjson")
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	p := testenv.NewProcess(t, "adapter", []string{sh, "-c", `ulimit -n 1024 && exec "$@"`, "sh", bin, "run",
		"--admin-addr", admin, "--paths", filepath.Join(logs, "*.log"), "--output", "file", "--output-file", out,
		"--checkpoint-file", filepath.Join(dir, "cp.json"), "--scan-interval", "200ms", "--poll-interval", "50ms", "--flush-interval", "200ms"}, nil,
		func() error {
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
	a := &adapterProc{Process: p, admin: admin}
	re := regexp.MustCompile(`file=(\d+) line=(\d+)`)
	count := func() (total int, dup int, perFile map[string]int) {
		b, _ := os.ReadFile(out)
		if i := bytes.LastIndexByte(b, '\n'); i >= 0 { // the last line may be half written
			b = b[:i+1]
		} else {
			b = nil
		}
		seen := map[string]int{}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if !json.Valid(sc.Bytes()) {
				t.Fatalf("invalid JSON in the output: %.200s", sc.Bytes())
			}
			if m := re.FindSubmatch(sc.Bytes()); m != nil {
				seen[string(m[0])]++
				total++
			}
		}
		for _, n := range seen {
			dup += n - 1
		}
		return total, dup, seen
	}
	wait := func(want int) (int, int) {
		deadline := time.Now().Add(90 * time.Second)
		for time.Now().Before(deadline) {
			if n, _, _ := count(); n >= want {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(3 * time.Second) // re-reads, if any, would show now
		n, d, _ := count()
		return n, d
	}
	n, d := wait(files * lines)
	if n != files*lines || d != 0 {
		t.Fatalf("%d documents (%d doubled) of %d lines in %d files", n, d, files*lines, files)
	}
	if open := a.metric(t, "sidecarkit_adapter_files_open"); open > 512 {
		t.Errorf("files_open = %v, over half the 1024 limit", open)
	}
	// lines appended now to files closed while idle: reopened by identity
	for i := 0; i < files; i += 100 {
		f, _ := os.OpenFile(filepath.Join(logs, fmt.Sprintf("app-%04d.log", i)), os.O_WRONLY|os.O_APPEND, 0)
		fmt.Fprintf(f, "2024-01-15 14:32:02 INFO file=%d line=%d\n", i, lines)
		f.Close()
	}
	n, d = wait(files*lines + files/100)
	if n != files*lines+files/100 || d != 0 {
		t.Fatalf("after appending: %d documents (%d doubled), want %d", n, d, files*lines+files/100)
	}
	if strings.Contains(a.Log(), "too many open files") {
		t.Errorf("the adapter hit EMFILE:\n%s", tail(a.Log(), 2000))
	}
}

// --output stdout: the documents own stdout, every log line goes to stderr.
func TestStdoutOutputKeepsLogsOnStderr(t *testing.T) {
	bin := adapterBinary(t)
	dir := t.TempDir()
	logp := filepath.Join(dir, "app.log")
	os.WriteFile(logp, []byte("2024-01-15 14:32:01 INFO a=1\n2024-01-15 14:32:02 WARN a=2\n"), 0o644)
	cmd := exec.Command(bin, "run", "--admin-addr", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), "--paths", logp,
		"--output", "stdout", "--checkpoint-file", "", "--flush-interval", "100ms", "--poll-interval", "50ms")
	stdoutF, _ := os.Create(filepath.Join(dir, "stdout"))
	stderrF, _ := os.Create(filepath.Join(dir, "stderr"))
	defer stdoutF.Close()
	defer stderrF.Close()
	cmd.Stdout, cmd.Stderr = stdoutF, stderrF
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string { b, _ := os.ReadFile(filepath.Join(dir, name)); return string(b) }
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && strings.Count(read("stdout"), "\n") < 2 {
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	stdout, stderr := read("stdout"), read("stderr")
	outLines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(outLines) != 2 {
		t.Fatalf("stdout holds %d lines, want the 2 documents:\n%s", len(outLines), stdout)
	}
	for _, l := range outLines {
		var d map[string]any
		if json.Unmarshal([]byte(l), &d) != nil || d["message"] == nil {
			t.Errorf("stdout line is not a document: %s", l)
		}
	}
	if !strings.Contains(stderr, `"msg":"starting"`) {
		t.Errorf("the adapter's own logs are not on stderr:\n%s", stderr)
	}
}
