package ratelimit

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	l, err := New(Config{MaxTokens: 3, TokensPerFill: 1, FillInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		ok, rem, _ := l.Take(t0)
		if !ok || rem != 2-i {
			t.Fatalf("token %d: ok=%v remaining=%d", i, ok, rem)
		}
	}
	ok, rem, reset := l.Take(t0)
	if ok || rem != 0 || reset != time.Second {
		t.Fatalf("empty bucket: ok=%v remaining=%d reset=%v", ok, rem, reset)
	}
	if ok, _, _ := l.Take(t0.Add(time.Second)); !ok {
		t.Fatal("no token after one fill interval")
	}
}

func TestMiddleware429(t *testing.T) {
	l, _ := New(Config{MaxTokens: 2, FillInterval: time.Hour})
	now := time.Unix(5000, 0)
	l.now = func() time.Time { return now }
	h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	codes := []int{}
	var last *httptest.ResponseRecorder
	for range 3 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		codes = append(codes, w.Code)
		last = w
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 {
		t.Fatalf("codes %v", codes)
	}
	if last.Header().Get("x-ratelimit-remaining") != "0" || last.Header().Get("x-ratelimit-limit") != "2, 2;w=3600" || last.Header().Get("x-ratelimit-reset") != "1800" {
		t.Fatalf("headers %v", last.Header())
	}
}

func TestValidate(t *testing.T) {
	err := (&Config{MaxTokens: 0, TokensPerFill: -1, FillInterval: 0}).Validate()
	for _, want := range []string{`max_tokens "0"`, `tokens_per_fill "-1"`, `fill_interval "0s"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}

func TestReuseKeepsTokens(t *testing.T) {
	cfg := Config{MaxTokens: 2, FillInterval: time.Hour}
	l, _ := New(cfg)
	now := time.Now()
	l.Take(now)
	l.Take(now)
	same, err := Reuse(l, Config{MaxTokens: 2, FillInterval: time.Hour})
	if err != nil || same != l {
		t.Fatalf("unchanged config: new bucket (%v)", err)
	}
	if ok, _, _ := same.Take(now); ok {
		t.Fatal("reused bucket was refilled")
	}
	changed, _ := Reuse(l, Config{MaxTokens: 3, FillInterval: time.Hour})
	if changed == l {
		t.Fatal("changed config kept the old bucket")
	}
	if fresh, _ := Reuse(nil, cfg); fresh == nil {
		t.Fatal("no bucket")
	}
}
