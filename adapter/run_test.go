package adapter

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/shared/app"
	"github.com/sidecarkit/sidecarkit/shared/config"
)

func openFDs() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents)
}

// TestRunShipsDrainsAndLeavesNothingBehind runs the adapter in process into
// the file output, stops it as SIGTERM would, and checks the checkpoint,
// goroutines and open files.
func TestRunShipsDrainsAndLeavesNothingBehind(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "app.log")
	var lines strings.Builder
	for i := 0; i < 1000; i++ {
		lines.WriteString("2024-01-15 14:32:01 INFO order_id=ORD-" + string(rune('a'+i%26)) + " status=FULFILLED\n")
	}
	os.WriteFile(logPath, []byte(lines.String()), 0o644)
	out := filepath.Join(dir, "out.ndjson")
	cp := filepath.Join(dir, "state", "cp.json")

	goroutines, fds := runtime.NumGoroutine(), openFDs()
	l := config.NewLoader("adapter")
	var c Config
	Bind(l, &c)
	if _, err := l.Parse([]string{"--paths", logPath, "--output", "file", "--output-file", out, "--checkpoint-file", cp,
		"--flush-interval", "50ms", "--poll-interval", "20ms"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := Validate(l, &c); err != nil {
		t.Fatal(err)
	}
	rt := app.NewRuntime("adapter", nil)
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), rt, &c) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(out)
		if bytes.Count(b, []byte("\n")) >= 1000 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ready, _ := rt.Health.Check(); !ready {
		t.Error("not ready while tailing")
	}
	rt.Stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	b, _ := os.ReadFile(out)
	if n := bytes.Count(b, []byte("\n")); n != 1000 {
		t.Fatalf("output holds %d documents, want 1000", n)
	}
	var f struct{ Files []struct{ Offset int64 } }
	data, _ := os.ReadFile(cp)
	if err := json.Unmarshal(data, &f); err != nil || len(f.Files) != 1 || f.Files[0].Offset != int64(lines.Len()) {
		t.Fatalf("checkpoint %s, want offset %d", data, lines.Len())
	}
	for time.Now().Before(deadline) && (runtime.NumGoroutine() > goroutines || openFDs() > fds) {
		time.Sleep(20 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > goroutines {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines left behind (before %d):\n%s", g, goroutines, buf[:runtime.Stack(buf, true)])
	}
	if n := openFDs(); n > fds {
		t.Errorf("%d open files after stopping (before %d)", n, fds)
	}
}

// TestSecretsNeverInLogsOrMetrics runs the adapter against a server that
// refuses the credentials and checks that neither the logs nor /metrics
// show the password, the API key or URL credentials.
func TestSecretsNeverInLogsOrMetrics(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(401)
		io.WriteString(w, `{"error":{"type":"security_exception","reason":"unable to authenticate user"},"status":401}`)
	}))
	defer srv.Close()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "app.log")
	os.WriteFile(logPath, []byte("2024-01-15 14:32:01 INFO a=b\n"), 0o644)
	for _, auth := range [][]string{
		{"--es-username", "elastic", "--es-password", "hunter2-topsecret"},
		{"--es-api-key", "QVBJLUtFWS1zZWNyZXQ="},
		{"--es-url", strings.Replace(srv.URL, "http://", "http://elastic:url-secret-pw@", 1)},
	} {
		var logs bytes.Buffer
		l := config.NewLoader("adapter")
		var c Config
		Bind(l, &c)
		args := append([]string{"--paths", logPath, "--es-url", srv.URL, "--checkpoint-file", "", "--dead-letter-file", filepath.Join(dir, "dead"),
			"--flush-interval", "20ms", "--retry-initial", "10ms", "--retry-max", "20ms"}, auth...)
		if _, err := l.Parse(args, nil); err != nil {
			t.Fatal(err)
		}
		if err := Validate(l, &c); err != nil {
			t.Fatal(err)
		}
		rt := app.NewRuntime("adapter", slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Run(ctx, rt, &c) }()
		time.Sleep(500 * time.Millisecond) // several refused requests
		rec := httptest.NewRecorder()
		rt.Admin.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		rt.Stop()
		cancel()
		<-done
		all := logs.String() + rec.Body.String()
		if !strings.Contains(logs.String(), "request failed") {
			t.Errorf("no refused request was logged:\n%s", logs.String())
		}
		for _, secret := range []string{"hunter2-topsecret", "QVBJLUtFWS1zZWNyZXQ=", "url-secret-pw"} {
			if strings.Contains(all, secret) {
				t.Fatalf("secret %q appears in logs or metrics:\n%s", secret, all)
			}
		}
	}
}
