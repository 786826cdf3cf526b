package configsync_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// BenchmarkOneChangeAt10kKeys measures what one changed key costs when the
// tree holds 10,000 keys: the time from the PUT until the new version is
// published, the bytes configsync wrote (write(2) bytes, /proc/PID/io wchar)
// and what the versions directory holds on disk afterwards (du, which counts
// a hard-linked file once). Real Consul, the built binary, files on the
// test's temp dir.
//
//	go test -run '^$' -bench OneChangeAt10kKeys -benchtime 5x
//	BENCH_TMPFS=1 go test ... (as root: the files on a tmpfs)
func BenchmarkOneChangeAt10kKeys(b *testing.B) {
	c := testenv.StartConsul(b)
	cl, err := api.NewClient(&api.Config{Address: c.Addr})
	if err != nil {
		b.Fatal(err)
	}
	const keys = 10000
	value := strings.Repeat("v", 200)
	for i := 0; i < keys; i += 64 {
		var ops api.KVTxnOps
		for j := i; j < i+64 && j < keys; j++ {
			ops = append(ops, &api.KVTxnOp{Verb: api.KVSet, Key: fmt.Sprintf("big/d%02d/key%05d", j%100, j), Value: []byte(value)})
		}
		if ok, _, _, err := cl.KV().Txn(ops, nil); err != nil || !ok {
			b.Fatalf("txn: %v %v", ok, err)
		}
	}
	dir := b.TempDir()
	bin := buildBinary(b, dir)
	if os.Getenv("BENCH_TMPFS") != "" { // as an emptyDir with medium: Memory
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1g", "tmpfs", dir).CombinedOutput(); err != nil {
			b.Fatalf("mount tmpfs (needs root): %v %s", err, out)
		}
		b.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
		bin = buildBinary(b, dir)
	}
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
	link := filepath.Join(dir, "cfg")
	logf, _ := os.Create(filepath.Join(dir, "log"))
	cmd := exec.Command(bin, "--tree", "big="+link, "--trim-memory=false")
	cmd.Env = []string{"CONSUL_HTTP_ADDR=" + c.Addr, "CONFIGSYNC_ADMIN_ADDR=" + admin}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	waitFor(b, "first tree", 120*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(link, "d99/key09999"))
		return err == nil
	})
	time.Sleep(time.Second)
	var total time.Duration
	var wrote int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		before, _ := os.Readlink(link)
		w0 := wchar(b, cmd.Process.Pid)
		want := fmt.Sprintf("changed-%d", i)
		start := time.Now()
		if _, err := cl.KV().Put(&api.KVPair{Key: "big/d07/key00007", Value: []byte(want)}, nil); err != nil {
			b.Fatal(err)
		}
		waitFor(b, "changed tree", 120*time.Second, func() bool {
			cur, _ := os.Readlink(link)
			if cur == before {
				return false
			}
			got, _ := os.ReadFile(filepath.Join(link, "d07/key00007"))
			return string(got) == want
		})
		total += time.Since(start)
		time.Sleep(200 * time.Millisecond) // let the publish finish (prune, dir sync)
		wrote += wchar(b, cmd.Process.Pid) - w0
	}
	b.StopTimer()
	b.ReportMetric(total.Seconds()/float64(b.N), "s/change")
	b.ReportMetric(float64(wrote)/float64(b.N), "written-B/change")
	out, err := exec.Command("du", "-s", "-B1", filepath.Join(dir, ".cfg.versions")).Output()
	if err != nil {
		b.Fatal(err)
	}
	disk, _ := strconv.ParseFloat(strings.Fields(string(out))[0], 64)
	b.ReportMetric(disk, "disk-B")
}

func buildBinary(t testing.TB, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "configsync")
	build := exec.Command("go", "build", "-o", bin, "./cmd/configsync")
	build.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func wchar(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no wchar in /proc/PID/io")
	return 0
}

func waitFor(t testing.TB, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
