package fault

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestAbortPercentage(t *testing.T) {
	f, err := New(Config{Abort: &Abort{HTTPStatus: 503, Percent: 30}})
	if err != nil {
		t.Fatal(err)
	}
	var flags []string
	f.OnInject = func(_ *http.Request, flag string) { flags = append(flags, flag) }
	h := f.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("app")) }))
	aborted := 0
	for range 10000 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		if w.Code == 503 {
			if w.Body.String() != "fault filter abort" {
				t.Fatal(w.Body.String())
			}
			aborted++
		}
	}
	if aborted < 2700 || aborted > 3300 || len(flags) != aborted || flags[0] != "FI" {
		t.Fatalf("30%% abort gave %d/10000 (flags %d)", aborted, len(flags))
	}
}

func TestDelay(t *testing.T) {
	f, _ := New(Config{Delay: &Delay{Fixed: 30 * time.Millisecond, Percent: 100}, Abort: &Abort{HTTPStatus: 500, Percent: 0}})
	var flags []string
	f.OnInject = func(_ *http.Request, flag string) { flags = append(flags, flag) }
	h := f.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("app")) }))
	start := time.Now()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	if w.Code != 200 || time.Since(start) < 30*time.Millisecond || len(flags) != 1 || flags[0] != "DI" {
		t.Fatalf("delay: %d after %v flags %v", w.Code, time.Since(start), flags)
	}
}

func TestValidate(t *testing.T) {
	err := (&Config{Delay: &Delay{Percent: 120}, Abort: &Abort{HTTPStatus: 42, Percent: -1}}).Validate()
	for _, want := range []string{"fixed_delay", `delay.percentage "120"`, `http_status "42"`, `abort.percentage "-1"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}
