package pipeline

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sidecarkit/sidecarkit/adapter/bulk"
	"github.com/sidecarkit/sidecarkit/adapter/checkpoint"
	"github.com/sidecarkit/sidecarkit/adapter/parse"
	"github.com/sidecarkit/sidecarkit/adapter/tail"
	"github.com/sidecarkit/sidecarkit/shared/logging"
)

// gateSink holds every batch until released, recording its lines.
type gateSink struct {
	mu      sync.Mutex
	actions []string
	docs    []string
	got     chan struct{}
	release chan struct{}
}

func (g *gateSink) Write(ctx context.Context, b *bulk.Batch) error {
	g.mu.Lock()
	for i := range b.Items {
		g.actions = append(g.actions, string(b.Action(i)))
		g.docs = append(g.docs, string(b.Doc(i)))
	}
	g.mu.Unlock()
	select {
	case g.got <- struct{}{}:
	default:
	}
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gateSink) Close() error { return nil }

func TestCheckpointMovesOnlyAfterTheSinkAcknowledges(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	content := "2024-01-15 14:32:01 ERROR boom\njava.lang.IllegalStateException: bad\n\tat a.B.c(B.java:1)\n2024-01-15 14:32:02 INFO order_id=ORD-1 status=OK\n"
	os.WriteFile(path, []byte(content), 0o644)
	store, _ := checkpoint.Open(filepath.Join(dir, "cp.json"))
	ml, _ := parse.NewMultiline("java", "", "", 0, 0)
	sink := &gateSink{got: make(chan struct{}, 1), release: make(chan struct{})}
	m := NewMetrics(prometheus.NewRegistry(), "t_")
	p := New(Config{Rules: []Rule{{Parser: parse.Legacy{}, Multiline: ml}}, Index: "app-%Y.%m.%d", FlushInterval: 20 * time.Millisecond,
		MultilineTimeout: 50 * time.Millisecond}, sink, store, m, logging.Discard())
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- p.Run(context.Background(), stop, tail.Config{Include: []string{path}, ReadFromHead: true, PollInterval: 5 * time.Millisecond, ScanInterval: 20 * time.Millisecond}, nil)
	}()
	<-sink.got
	time.Sleep(100 * time.Millisecond)
	store.Save()
	for _, r := range store.Snapshot() {
		if r.Offset != 0 {
			t.Fatalf("checkpoint at %d before the sink acknowledged anything", r.Offset)
		}
	}
	close(sink.release)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if recs := store.Snapshot(); len(recs) == 1 && recs[0].Offset == int64(len(content)) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	recs := store.Snapshot()
	if len(recs) != 1 || recs[0].Offset != int64(len(content)) {
		t.Fatalf("checkpoint %+v, want offset %d", recs, len(content))
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.docs) != 2 {
		t.Fatalf("documents %q, want 2 (the stack trace joined)", sink.docs)
	}
	var d0 map[string]any
	json.Unmarshal([]byte(sink.docs[0]), &d0)
	if !strings.Contains(d0["message"].(string), "\tat a.B.c(B.java:1)") || d0["level"] != "ERROR" {
		t.Errorf("multiline document %v", d0)
	}
	var a0 map[string]map[string]string
	json.Unmarshal([]byte(sink.actions[0]), &a0)
	if a0["index"]["_index"] != "app-2024.01.15" || !strings.HasSuffix(a0["index"]["_id"], "-0") {
		t.Errorf("action %s", sink.actions[0])
	}
	var a1 map[string]map[string]string
	json.Unmarshal([]byte(sink.actions[1]), &a1)
	if a1["index"]["_id"] == a0["index"]["_id"] || !strings.HasPrefix(a1["index"]["_id"], strings.TrimSuffix(a0["index"]["_id"], "0")) {
		t.Errorf("ids %s %s: want one file prefix and different offsets", a0["index"]["_id"], a1["index"]["_id"])
	}
}

func TestIndexName(t *testing.T) {
	for pat, want := range map[string]string{"app-logs-%Y.%m.%d": "app-logs-2024.01.15", "logs": "logs", "x-%y%m-%%-%q": "x-2401-%-%q"} {
		if got := IndexName(pat, []byte("2024-01-15")); got != want {
			t.Errorf("IndexName(%q) = %q, want %q", pat, got, want)
		}
	}
}

func TestParserChosenPerPath(t *testing.T) {
	p := New(Config{Rules: []Rule{
		{Glob: "/var/log/nginx/*.log", Parser: parse.Combined{}},
		{Glob: "*.json", Parser: parse.JSON{}},
		{Parser: parse.Legacy{}},
	}}, &gateSink{}, nil, NewMetrics(prometheus.NewRegistry(), "r_"), logging.Discard())
	for path, want := range map[string]parse.Parser{
		"/var/log/nginx/access.log": parse.Combined{}, "/srv/app/events.json": parse.JSON{}, "/var/log/app.log": parse.Legacy{},
	} {
		if got := p.rule(path).Parser; got != want {
			t.Errorf("%s → %T, want %T", path, got, want)
		}
	}
}

func TestDataStreamActionIsCreateWithID(t *testing.T) {
	p := New(Config{Index: "logs-app-default", DataStream: true}, &gateSink{}, nil, NewMetrics(prometheus.NewRegistry(), "d_"), logging.Discard())
	a := p.appendAction(nil, []byte(`{"@timestamp":"2024-01-15T14:32:01Z"}`), []byte("abc-"), 255)
	if string(a) != `{"create":{"_index":"logs-app-default","_id":"abc-ff"}}`+"\n" {
		t.Fatalf("action %s", a)
	}
}
