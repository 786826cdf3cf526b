package adapter_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// These tests run the built adapter binary as a child process against a
// real VictoriaLogs (its Elasticsearch bulk endpoint) and count documents
// back with LogsQL.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func adapterBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "adapter-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "adapter")
		out, err := exec.Command("go", "build", "-o", binPath, "./cmd/adapter").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type adapterProc struct {
	*testenv.Process
	admin string
}

// startAdapter runs the adapter shipping paths to vl.
func startAdapter(t *testing.T, vl *testenv.VictoriaLogs, dir string, extra ...string) *adapterProc {
	t.Helper()
	bin := adapterBinary(t)
	port := testenv.FreePort(t)
	admin := fmt.Sprintf("127.0.0.1:%d", port)
	args := []string{bin, "run",
		"--admin-addr", admin,
		"--es-url", vl.URL + "/insert/elasticsearch",
		"--es-header", "VL-Time-Field: @timestamp", "--es-header", "VL-Msg-Field: message",
		"--checkpoint-file", filepath.Join(dir, "state", "checkpoint.json"),
		"--dead-letter-file", filepath.Join(dir, "state", "dead.ndjson"),
		"--scan-interval", "200ms", "--poll-interval", "50ms", "--flush-interval", "200ms",
		"--retry-initial", "100ms", "--retry-max", "1s", "--rotate-wait", "1s",
		"--log-level", "debug",
	}
	args = append(args, extra...)
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

func (a *adapterProc) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + a.admin + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, name+" ") {
			v, _ := strconv.ParseFloat(strings.TrimSpace(l[len(name):]), 64)
			return v
		}
	}
	return 0
}

func startVL(t *testing.T) *testenv.VictoriaLogs {
	t.Helper()
	return testenv.StartVictoriaLogs(t)
}

// uniq returns (total, distinct seq) for the run.
func counts(t *testing.T, vl *testenv.VictoriaLogs, run string) (total, distinct int) {
	t.Helper()
	lines := vl.Query(t, fmt.Sprintf(`run:%s | stats count() n, count_uniq(seq) u`, run))
	if len(lines) == 0 {
		return 0, 0
	}
	var r struct{ N, U string }
	if err := json.Unmarshal([]byte(lines[0]), &r); err != nil {
		t.Fatalf("stats answer %q: %v", lines[0], err)
	}
	total, _ = strconv.Atoi(r.N)
	distinct, _ = strconv.Atoi(r.U)
	return total, distinct
}

// waitCount waits (bounded) until the run's distinct count reaches want and
// stays put; it returns the final counts.
func waitCount(t *testing.T, vl *testenv.VictoriaLogs, run string, want int, limit time.Duration) (total, distinct int) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		total, distinct = counts(t, vl, run)
		if distinct >= want {
			time.Sleep(1500 * time.Millisecond) // let stragglers (duplicates) arrive
			return counts(t, vl, run)
		}
		time.Sleep(300 * time.Millisecond)
	}
	return total, distinct
}

func legacyLine(run string, seq int) string {
	return fmt.Sprintf("%s INFO run=%s seq=%d order_id=ORD-%d status=FULFILLED note=\"some text\"\n",
		time.Now().UTC().Format("2006-01-02 15:04:05.000"), run, seq, seq)
}

func runID(t *testing.T) string {
	return fmt.Sprintf("r%d", time.Now().UnixNano())
}

func TestShipAndCountBackWithGarbageBinaryAndHugeLines(t *testing.T) {
	vl := startVL(t)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "app.log")
	run := runID(t)
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	const n = 20000
	for i := 0; i < n; i++ {
		w.WriteString(legacyLine(run, i))
		switch i {
		case 100:
			w.WriteString("this is not the legacy format at all " + run + "\n")
		case 200:
			w.Write([]byte("\x00\x01\x02\xff\xfe binary " + run + " \x1b[31m\n"))
		case 300: // 1 MiB: cut at --max-line-bytes
			w.WriteString("2024-01-15 14:32:01 INFO huge=" + run + " pad=" + strings.Repeat("x", 1<<20) + "\n")
		case 400: // just under the limit: shipped whole
			w.WriteString("2024-01-15 14:32:01 INFO big=" + run + " pad=" + strings.Repeat("y", 50<<10) + "\n")
		}
	}
	w.Flush()
	f.Close()
	// VictoriaLogs skips (silently) lines over its -insert.maxLineSizeBytes
	// (256 KiB by default; a key=value line becomes a document of about twice
	// its size): cut lines well below that.
	a := startAdapter(t, vl, dir, "--paths", filepath.Join(dir, "*.log"), "--parser", "legacy", "--max-line-bytes", "100000")

	total, distinct := waitCount(t, vl, run, n, 60*time.Second)
	if total != n || distinct != n {
		t.Fatalf("VictoriaLogs holds %d documents (%d distinct seq) of run %s; want exactly %d", total, distinct, run, n)
	}
	// the odd lines are there too: raw with a parse-failure tag, cut with a marker
	if c := vl.Count(t, fmt.Sprintf(`"not the legacy format" %s tags:_parsefailure`, run)); c != 1 {
		t.Errorf("garbage line: found %d documents tagged _parsefailure, want 1", c)
	}
	if c := vl.Count(t, fmt.Sprintf(`binary %s`, run)); c != 1 {
		t.Errorf("binary line: found %d documents, want 1", c)
	}
	if c := vl.Count(t, fmt.Sprintf(`huge:%s`, run)); c != 1 {
		t.Errorf("1 MiB line: found %d documents, want 1 (cut)", c)
	}
	if c := vl.Count(t, fmt.Sprintf(`big:%s`, run)); c != 1 {
		t.Errorf("50 KiB line: found %d documents, want 1", c)
	}
	if v := a.metric(t, "sidecarkit_adapter_lines_truncated_total"); v != 1 {
		t.Errorf("lines_truncated_total = %v, want 1", v)
	}
	if v := a.metric(t, "sidecarkit_adapter_parse_failures_total"); v != 2 {
		t.Errorf("parse_failures_total = %v, want 2", v)
	}
	got := vl.Query(t, fmt.Sprintf(`run:%s seq:7 | fields @timestamp, level, message, order_id, status, note, log.file.path, log.offset, host.name`, run))
	if len(got) != 1 || !strings.Contains(got[0], `"order_id":"ORD-7"`) || !strings.Contains(got[0], `"log.file.path":"`+logPath+`"`) || !strings.Contains(got[0], `"note":"some text"`) {
		t.Errorf("document for seq 7 = %v", got)
	}
}

// writer appends legacy lines at a steady rate and rotates the file every
// `every` lines, by rename or copytruncate.
func writeRotating(t *testing.T, path, run string, total, perSec, every int, mode string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rot := 0
	var buf []byte
	for i := 0; i < total; i++ {
		buf = append(buf, legacyLine(run, i)...)
		if (i+1)%200 == 0 || i == total-1 {
			if _, err := f.Write(buf); err != nil {
				t.Fatal(err)
			}
			buf = buf[:0]
			// pace: i lines should have taken i/perSec seconds
			if d := time.Duration(float64(i+1)/float64(perSec)*float64(time.Second)) - time.Since(start); d > 0 {
				time.Sleep(d)
			}
		}
		if (i+1)%every == 0 && i != total-1 {
			rot++
			switch mode {
			case "rename":
				f.Close()
				if err := os.Rename(path, fmt.Sprintf("%s.%d", path, rot)); err != nil {
					t.Fatal(err)
				}
				if f, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
					t.Fatal(err)
				}
			case "copytruncate":
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(fmt.Sprintf("%s.%d", path, rot), data, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := f.Truncate(0); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	f.Close()
}

func TestRotationNothingLostNothingDoubled(t *testing.T) {
	vl := startVL(t)
	for _, tc := range []struct {
		mode string
		glob string
	}{
		{"rename", "app.log"},        // the rotated file leaves the glob: read to its end by inode
		{"rename", "app.log*"},       // the rotated file stays in the glob: same inode, same position
		{"copytruncate", "app.log*"}, // the copy is recognised by its fingerprint
	} {
		t.Run(tc.mode+" "+tc.glob, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "app.log")
			run := runID(t)
			os.WriteFile(path, nil, 0o644)
			a := startAdapter(t, vl, dir, "--paths", filepath.Join(dir, tc.glob), "--parser", "legacy")
			const total = 60000 // 3 s at 20k lines/s, rotated every 10k lines
			writeRotating(t, path, run, total, 20000, 10000, tc.mode)
			got, distinct := waitCount(t, vl, run, total, 60*time.Second)
			if distinct != total || got != total {
				t.Fatalf("%s: VictoriaLogs holds %d documents, %d distinct, of %d written: lost %d, doubled %d\nadapter log:\n%s",
					tc.mode, got, distinct, total, total-distinct, got-distinct, tail(a.Log(), 3000))
			}
		})
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func TestSIGKILLMidStreamThenRestartLosesNothing(t *testing.T) {
	vl := startVL(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	run := runID(t)
	os.WriteFile(path, nil, 0o644)
	a := startAdapter(t, vl, dir, "--paths", path, "--parser", "legacy")
	const total = 60000
	done := make(chan struct{})
	go func() { defer close(done); writeRotating(t, path, run, total, 30000, total, "none") }()
	// kill it while it is shipping
	for a.metric(t, "sidecarkit_adapter_documents_sent_total") < 5000 {
		time.Sleep(20 * time.Millisecond)
	}
	a.Kill()
	<-done
	a.Start() // same flags, same checkpoint
	_, distinct := waitCount(t, vl, run, total, 60*time.Second)
	if distinct != total {
		t.Fatalf("after SIGKILL and restart VictoriaLogs holds %d distinct of %d lines: lost %d", distinct, total, total-distinct)
	}
}

func rssKiB(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			v, _ := strconv.Atoi(strings.Fields(l)[1])
			return v
		}
	}
	return -1
}

func TestStoreDown30sLosesNothingAndMemoryStaysFlat(t *testing.T) {
	vl := startVL(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	run := runID(t)
	os.WriteFile(path, nil, 0o644)
	a := startAdapter(t, vl, dir, "--paths", path, "--parser", "legacy")
	// 200k lines (~25 MB) over ~40 s, the store away for 30 s of it
	const total = 200000
	done := make(chan struct{})
	go func() { defer close(done); writeRotating(t, path, run, total, 5000, total, "none") }()
	time.Sleep(3 * time.Second)
	vl.Stop()
	time.Sleep(5 * time.Second)
	before := rssKiB(t, a.Pid())
	time.Sleep(25 * time.Second)
	after := rssKiB(t, a.Pid())
	if v := a.metric(t, "sidecarkit_adapter_output_failing"); v != 1 {
		t.Errorf("output_failing = %v while the store is down, want 1", v)
	}
	behind := a.metric(t, `sidecarkit_adapter_file_bytes_behind{path="`+path+`"}`)
	vl.Start()
	<-done
	_, distinct := waitCount(t, vl, run, total, 90*time.Second)
	if distinct != total {
		t.Fatalf("after a 30 s outage VictoriaLogs holds %d distinct of %d lines: lost %d", distinct, total, total-distinct)
	}
	t.Logf("RSS 5 s into the outage %d KiB, at its end %d KiB; %v bytes behind", before, after, behind)
	if after > before+16*1024 {
		t.Errorf("memory grew during the outage: %d KiB → %d KiB (the files should be the buffer)", before, after)
	}
	if behind < 1<<20 {
		t.Errorf("file_bytes_behind = %v at the end of the outage, want the ~30 s of lines not shipped (> 1 MiB)", behind)
	}
}

func TestBinaryValidateAndVersion(t *testing.T) {
	bin := adapterBinary(t)
	out, err := exec.Command(bin, "validate", "--parser", "xml", "--read-from", "middle", "--es-password", "pw-not-shown").CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("validate with bad flags: %v, want exit 2\n%s", err, out)
	}
	for _, want := range []string{"paths", `parser "xml"`, `read-from "middle"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("validate output lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "pw-not-shown") {
		t.Errorf("validate printed the password:\n%s", out)
	}
	out, err = exec.Command(bin, "validate", "--paths", "/var/log/*.log").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "valid") {
		t.Errorf("validate good config: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "--version").CombinedOutput(); err != nil || !strings.Contains(string(out), "adapter") {
		t.Errorf("--version: %v %s", err, out)
	}
}
