package ambassador_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/ambassador"
	"github.com/sidecarkit/sidecarkit/integration/testenv"
	"github.com/sidecarkit/sidecarkit/shared/app"
)

// syncBuffer is a log sink safe for the helper's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// The whole helper in this process (app.Run, as main does): ready after the
// first render, SIGTERM → exit 0, and no goroutine left behind.
func TestInProcessShutdownLeavesNothingBehind(t *testing.T) {
	v := testenv.StartVault(t)
	cli(t, v, "kv", "put", "secret/app", "a=b")
	dir := t.TempDir()
	tokenFile := writeFile(t, filepath.Join(dir, "token"), v.Token)
	admin := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	proxy := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}

	before := runtime.NumGoroutine()
	sigs := make(chan os.Signal, 1)
	var out syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- app.Run(context.Background(), ambassador.Helper(), []string{"--admin-addr", admin, "--proxy-addr", proxy, "--drain-delay", "0",
			"--token-file", tokenFile, "--secret", dir + "/a=secret/app#a"}, []string{"VAULT_ADDR=" + v.Addr}, &out, &out, sigs)
	}()
	eventually(t, 60*time.Second, "ready", func() error {
		resp, err := client.Get("http://" + admin + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	})
	resp, err := client.Get("http://" + proxy + "/v1/secret/data/app")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("proxy: %v %v", err, resp)
	}
	resp.Body.Close()
	sigs <- syscall.SIGTERM
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d; log:\n%s", code, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("did not stop after SIGTERM")
	}
	os.WriteFile(filepath.Join(s.logDir, "inprocess.log"), []byte(out.String()), 0o644)
	eventually(t, 10*time.Second, "goroutines back to the baseline", func() error {
		if n := runtime.NumGoroutine(); n > before+2 {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			return fmt.Errorf("%d goroutines, %d before:\n%s", n, before, stacksNotTest(string(buf)))
		}
		return nil
	})
}

func stacksNotTest(all string) string {
	var keep []string
	for _, g := range strings.Split(all, "\n\n") {
		if !strings.Contains(g, "testing.") {
			keep = append(keep, g)
		}
	}
	return strings.Join(keep, "\n\n")
}
