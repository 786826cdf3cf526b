package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// A pod that turns not-ready: the load stops, requests in flight finish, and
// every outcome is counted.
func TestRunStopsWhenUnready(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			if !ready.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		if served.Add(1) == 20 {
			ready.Store(false)
		}
		time.Sleep(20 * time.Millisecond)
	}))
	defer srv.Close()
	started := make(chan struct{})
	res := Run(context.Background(), Options{URL: srv.URL + "/work", ReadyURL: srv.URL + "/readyz", Concurrency: 4, Duration: time.Minute, Interval: 10 * time.Millisecond}, started)
	<-started
	if !res.Unready || res.Failed != 0 || res.OK != res.Sent || res.OK < 20 {
		t.Fatalf("result %+v", res)
	}
}

func TestRunCountsFailures(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer srv.Close()
	res := Run(context.Background(), Options{URL: srv.URL, Concurrency: 2, Duration: 200 * time.Millisecond}, nil)
	if res.Failed == 0 || res.OK != 0 || res.Statuses["502"] != res.Failed || len(res.Errors) == 0 {
		t.Fatalf("result %+v", res)
	}
	srv.Close()
	res = Run(context.Background(), Options{URL: srv.URL, Concurrency: 1, Duration: 100 * time.Millisecond}, nil)
	if res.Failed == 0 || res.Statuses["error"] == 0 {
		t.Fatalf("closed server: %+v", res)
	}
}
