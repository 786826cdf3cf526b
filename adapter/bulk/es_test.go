package bulk

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sidecarkit/sidecarkit/shared/backoff"
)

// fakeElasticsearch is an in-process stand-in for Elasticsearch's bulk API
// (no real Elasticsearch can run here). It answers with the response shapes
// Elasticsearch documents for POST /_bulk: {"took","errors","items":[{action:
// {"_index","_id","status","result"|"error":{"type","reason"}}}]}, stores
// documents by index and _id (index overwrites, create conflicts with 409
// version_conflict_engine_exception), and misbehaves on request:
//   - a document containing "bad-mapping" gets a per-item 400 mapper_parsing_exception;
//   - a document containing "throttle" gets a per-item 429 es_rejected_execution_exception
//     until it has been refused throttleTimes times;
//   - the first failRequests requests get a whole-request 503;
//   - bodies larger than maxBody get a whole-request 413.
type fakeElasticsearch struct {
	*httptest.Server
	mu            sync.Mutex
	docs          map[string]string // index/_id → source
	throttled     map[string]int
	throttleTimes int
	failRequests  int
	maxBody       int
	requests      []fakeRequest
	wantAuth      string
}

type fakeRequest struct {
	header http.Header
	ids    []string
	stored []string // ids stored by this request
}

func newFakeElasticsearch(t *testing.T) *fakeElasticsearch {
	f := &fakeElasticsearch{docs: map[string]string{}, throttled: map[string]int{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeElasticsearch) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method != "POST" || r.URL.Path != "/_bulk" {
		http.Error(w, `{"error":{"type":"illegal_argument_exception","reason":"no handler"},"status":400}`, 400)
		return
	}
	if f.wantAuth != "" && r.Header.Get("Authorization") != f.wantAuth {
		w.WriteHeader(401)
		io.WriteString(w, `{"error":{"type":"security_exception","reason":"missing authentication credentials"},"status":401}`)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	}
	raw, _ := io.ReadAll(body)
	req := fakeRequest{header: r.Header.Clone()}
	if f.failRequests > 0 {
		f.failRequests--
		f.requests = append(f.requests, req)
		w.WriteHeader(503)
		io.WriteString(w, `{"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"},"status":503}`)
		return
	}
	if f.maxBody > 0 && len(raw) > f.maxBody {
		f.requests = append(f.requests, req)
		w.WriteHeader(413)
		io.WriteString(w, `{"error":{"type":"content_too_long_exception","reason":"request body is too large"},"status":413}`)
		return
	}
	type item map[string]map[string]any
	var items []item
	errorsSeen := false
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var action map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &action); err != nil || len(action) != 1 {
			w.WriteHeader(400)
			fmt.Fprintf(w, `{"error":{"type":"illegal_argument_exception","reason":"Malformed action/metadata line"},"status":400}`)
			return
		}
		if !sc.Scan() {
			w.WriteHeader(400)
			io.WriteString(w, `{"error":{"type":"illegal_argument_exception","reason":"The bulk request must be terminated by a newline"},"status":400}`)
			return
		}
		doc := sc.Text()
		for op, a := range action {
			key := a.Index + "/" + a.ID
			req.ids = append(req.ids, a.ID)
			res := map[string]any{"_index": a.Index, "_id": a.ID}
			switch {
			case !json.Valid([]byte(doc)):
				res["status"] = 400
				res["error"] = map[string]any{"type": "document_parsing_exception", "reason": "failed to parse"}
			case strings.Contains(doc, "bad-mapping"):
				res["status"] = 400
				res["error"] = map[string]any{"type": "mapper_parsing_exception", "reason": "failed to parse field [amount] of type [long]"}
			case strings.Contains(doc, "throttle") && f.throttled[key] < f.throttleTimes:
				f.throttled[key]++
				res["status"] = 429
				res["error"] = map[string]any{"type": "es_rejected_execution_exception", "reason": "rejected execution of coordinating operation"}
			case op == "create" && f.docs[key] != "":
				res["status"] = 409
				res["error"] = map[string]any{"type": "version_conflict_engine_exception", "reason": "[" + a.ID + "]: version conflict, document already exists"}
			default:
				if f.docs[key] != "" {
					res["status"], res["result"] = 200, "updated"
				} else {
					res["status"], res["result"] = 201, "created"
				}
				f.docs[key] = doc
				req.stored = append(req.stored, a.ID)
			}
			if res["status"].(int) >= 300 {
				errorsSeen = true
			}
			items = append(items, item{op: res})
		}
	}
	f.requests = append(f.requests, req)
	json.NewEncoder(w).Encode(map[string]any{"took": 3, "errors": errorsSeen, "items": items})
}

func (f *fakeElasticsearch) count() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.docs) }

func makeBatch(op, index string, docs ...string) *Batch {
	b := &Batch{}
	for i, d := range docs {
		it := Item{Start: len(b.Buf)}
		b.Buf = fmt.Appendf(b.Buf, `{%q:{"_index":%q,"_id":"id-%d"}}`+"\n", op, index, i)
		it.Doc = len(b.Buf)
		b.Buf = append(b.Buf, d...)
		b.Buf = append(b.Buf, '\n')
		it.End = len(b.Buf)
		b.Items = append(b.Items, it)
	}
	return b
}

type testMetrics struct {
	sent, retried, dead prometheus.Counter
}

func newSink(t *testing.T, cfg Config, log *slog.Logger) (*ES, testMetrics) {
	t.Helper()
	tm := testMetrics{
		sent:    prometheus.NewCounter(prometheus.CounterOpts{Name: "s"}),
		retried: prometheus.NewCounter(prometheus.CounterOpts{Name: "r"}),
		dead:    prometheus.NewCounter(prometheus.CounterOpts{Name: "d"}),
	}
	if cfg.DeadLetter == "" {
		cfg.DeadLetter = filepath.Join(t.TempDir(), "dead.ndjson")
	}
	cfg.Backoff = backoff.Policy{Initial: time.Millisecond, Max: 5 * time.Millisecond}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	es, err := NewES(cfg, log, Metrics{Sent: tm.sent, Retried: tm.retried, Dead: tm.dead})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { es.Close() })
	return es, tm
}

func TestFakeElasticsearchPerItem400IsDeadLetteredAnd429Retried(t *testing.T) {
	fake := newFakeElasticsearch(t)
	fake.throttleTimes = 2
	dead := filepath.Join(t.TempDir(), "dlq", "dead.ndjson")
	es, m := newSink(t, Config{URLs: []string{fake.URL}, Gzip: true, DeadLetter: dead}, nil)
	b := makeBatch("index", "app-logs-2024.01.15",
		`{"message":"ok 0"}`, `{"message":"bad-mapping","amount":"abc"}`, `{"message":"ok 2"}`, `{"message":"throttle me"}`, `{"message":"ok 4"}`)
	if err := es.Write(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if got := fake.count(); got != 4 {
		t.Fatalf("stored %d documents, want 4 (all but the bad one)", got)
	}
	// one bad document did not hold back the others: the first request stored every good one
	if first := fake.requests[0].stored; strings.Join(first, ",") != "id-0,id-2,id-4" {
		t.Errorf("first request stored %v, want id-0,id-2,id-4", first)
	}
	// the throttled document alone was re-sent, twice refused, then stored
	if len(fake.requests) != 3 || strings.Join(fake.requests[1].ids, ",") != "id-3" || strings.Join(fake.requests[2].stored, ",") != "id-3" {
		t.Errorf("requests = %+v, want the 429 item alone re-sent until stored", fake.requests)
	}
	if v := testutil.ToFloat64(m.retried); v != 2 {
		t.Errorf("retried = %v, want 2", v)
	}
	if v := testutil.ToFloat64(m.dead); v != 1 {
		t.Errorf("dead-lettered = %v, want 1", v)
	}
	if v := testutil.ToFloat64(m.sent); v != 4 {
		t.Errorf("sent = %v, want 4", v)
	}
	data, err := os.ReadFile(dead)
	if err != nil {
		t.Fatal(err)
	}
	var dl struct {
		Status   int
		Error    struct{ Type string }
		Action   map[string]map[string]string
		Document map[string]string
	}
	if err := json.Unmarshal(bytes.TrimSpace(data), &dl); err != nil {
		t.Fatalf("dead-letter line %q: %v", data, err)
	}
	if dl.Status != 400 || dl.Error.Type != "mapper_parsing_exception" || dl.Document["amount"] != "abc" || dl.Action["index"]["_id"] != "id-1" {
		t.Errorf("dead-letter entry = %+v", dl)
	}
	if fake.requests[0].header.Get("Content-Encoding") != "gzip" {
		t.Errorf("request not gzipped")
	}
}

func TestFakeElasticsearchResentBatchOverwritesByID(t *testing.T) {
	fake := newFakeElasticsearch(t)
	es, _ := newSink(t, Config{URLs: []string{fake.URL}}, nil)
	b := makeBatch("index", "app-logs", `{"message":"a"}`, `{"message":"b"}`, `{"message":"c"}`)
	for i := 0; i < 3; i++ { // as after a crash before the checkpoint moved
		if err := es.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	if got := fake.count(); got != 3 {
		t.Fatalf("after sending the same batch 3 times the index holds %d documents, want 3", got)
	}
}

func TestFakeElasticsearchDataStreamCreateConflictIsNotADuplicate(t *testing.T) {
	fake := newFakeElasticsearch(t)
	es, m := newSink(t, Config{URLs: []string{fake.URL}}, nil)
	b := makeBatch("create", "logs-app-default", `{"message":"a"}`, `{"message":"b"}`)
	for i := 0; i < 2; i++ {
		if err := es.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	if got := fake.count(); got != 2 {
		t.Fatalf("data stream holds %d documents, want 2", got)
	}
	if v := testutil.ToFloat64(m.dead); v != 0 {
		t.Errorf("409 on re-sent create was dead-lettered (%v); it means already stored", v)
	}
}

func TestFakeElasticsearchWholeRequest503RetriedAnd413Split(t *testing.T) {
	fake := newFakeElasticsearch(t)
	fake.failRequests = 2
	fake.maxBody = 200
	es, _ := newSink(t, Config{URLs: []string{fake.URL}}, nil)
	var docs []string
	for i := 0; i < 8; i++ {
		docs = append(docs, fmt.Sprintf(`{"message":"document number %d"}`, i))
	}
	if err := es.Write(context.Background(), makeBatch("index", "x", docs...)); err != nil {
		t.Fatal(err)
	}
	if got := fake.count(); got != 8 {
		t.Fatalf("stored %d, want 8", got)
	}
}

func TestFakeElasticsearchAuthHeadersAndNoSecretInLogs(t *testing.T) {
	fake := newFakeElasticsearch(t)
	fake.wantAuth = "ApiKey c2VjcmV0LWtleQ=="
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	hdr := http.Header{}
	hdr.Set("VL-Time-Field", "@timestamp")
	hdr.Set("VL-Msg-Field", "message")
	es, _ := newSink(t, Config{URLs: []string{fake.URL}, APIKey: "c2VjcmV0LWtleQ==", Headers: hdr}, log)
	if err := es.Write(context.Background(), makeBatch("index", "x", `{"message":"a"}`)); err != nil {
		t.Fatal(err)
	}
	if h := fake.requests[0].header; h.Get("VL-Time-Field") != "@timestamp" || h.Get("VL-Msg-Field") != "message" {
		t.Errorf("extra headers not sent: %v", h)
	}

	// basic auth with a wrong password: retried (401 is not the document's
	// fault), and the password never appears in the logs
	fake2 := newFakeElasticsearch(t)
	fake2.wantAuth = "Basic dTpyaWdodA==" // u:right
	es2, _ := newSink(t, Config{URLs: []string{fake2.URL}, Username: "u", Password: "hunter2-secret"}, log)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := es2.Write(ctx, makeBatch("index", "x", `{"message":"a"}`)); err == nil {
		t.Fatal("write with a wrong password succeeded")
	}
	if strings.Contains(logs.String(), "hunter2-secret") || strings.Contains(logs.String(), "c2VjcmV0LWtleQ") {
		t.Fatalf("a secret appears in the logs:\n%s", logs.String())
	}
	if fake2.count() != 0 {
		t.Fatal("stored with wrong credentials")
	}
}

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		status int
		typ    string
		want   Outcome
	}{
		{200, "", Done}, {201, "", Done}, {409, "version_conflict_engine_exception", Done},
		{409, "other", Dead}, {400, "mapper_parsing_exception", Dead}, {404, "index_not_found_exception", Dead},
		{429, "es_rejected_execution_exception", Retry}, {500, "", Retry}, {503, "", Retry}, {0, "", Retry},
	} {
		if got := Classify(c.status, c.typ); got != c.want {
			t.Errorf("Classify(%d, %q) = %v, want %v", c.status, c.typ, got, c.want)
		}
	}
}

func TestParseResponseItemCountMismatch(t *testing.T) {
	if _, _, err := ParseResponse([]byte(`{"errors":true,"items":[{"index":{"status":201}}]}`), 2); err == nil {
		t.Fatal("want an error for 1 item answering 2 documents")
	}
	if ok, _, err := ParseResponse([]byte(`{"took":1,"errors":false,"items":[]}`), 2); err != nil || !ok {
		t.Fatalf("errors:false → ok, got %v %v", ok, err)
	}
	if _, _, err := ParseResponse([]byte(`<html>`), 1); err == nil {
		t.Fatal("want an error for a non-JSON answer")
	}
}

func TestFakeElasticsearchOverTLSWithCAFile(t *testing.T) {
	fake := &fakeElasticsearch{docs: map[string]string{}, throttled: map[string]int{}}
	fake.Server = httptest.NewTLSServer(http.HandlerFunc(fake.serve))
	t.Cleanup(fake.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	var pemBuf bytes.Buffer
	pemEncode(&pemBuf, fake.Certificate().Raw)
	os.WriteFile(ca, pemBuf.Bytes(), 0o600)

	// without the CA the server is not trusted: the batch is retried, not stored
	es, _ := newSink(t, Config{URLs: []string{fake.URL}}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := es.Write(ctx, makeBatch("index", "x", `{"message":"a"}`)); err == nil {
		t.Fatal("an untrusted server was accepted")
	}
	es2, _ := newSink(t, Config{URLs: []string{fake.URL}, CAFile: ca}, nil)
	if err := es2.Write(context.Background(), makeBatch("index", "x", `{"message":"a"}`)); err != nil {
		t.Fatal(err)
	}
	if fake.count() != 1 {
		t.Fatal("not stored over TLS")
	}
	if _, err := NewES(Config{URLs: []string{fake.URL}, CAFile: filepath.Join(t.TempDir(), "missing.pem")}, slog.New(slog.DiscardHandler), Metrics{}); err == nil {
		t.Error("a missing CA file was accepted")
	}
}

func pemEncode(w io.Writer, der []byte) {
	pem.Encode(w, &pem.Block{Type: "CERTIFICATE", Bytes: der})
}
