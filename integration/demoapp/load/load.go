// Package load drives steady HTTP load the way a client behind a Kubernetes
// Service sees a pod: it sends requests from a fixed number of workers until
// the pod's readiness URL stops answering 200 (the endpoint is removed), then
// lets the requests in flight finish and reports every outcome. A drain that
// works gives zero failed requests.
package load

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a run.
type Options struct {
	URL         string        // requested by every worker
	ReadyURL    string        // polled; the first non-200 ends the run ("" = never)
	Concurrency int           // workers (default 4)
	Duration    time.Duration // upper bound of the run (default 30s)
	Interval    time.Duration // readiness poll interval (default 100ms)
	Pace        time.Duration // pause between a worker's requests (default 0)
	Client      *http.Client  // default: 10s timeout, keep-alive
}

// Result is what happened.
type Result struct {
	Sent     int            `json:"sent"`
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	Statuses map[string]int `json:"statuses"`
	Errors   []string       `json:"errors,omitempty"` // the first 20 failures
	Unready  bool           `json:"stopped_by_unready"`
	// AfterUnready counts requests that finished after the readiness URL
	// failed: the ones in flight while the pod started draining.
	AfterUnready int    `json:"finished_after_unready"`
	UnreadyErr   string `json:"unready_reason,omitempty"`
	Elapsed      string `json:"elapsed"`
}

// Run sends load until ctx ends, Duration passes or ReadyURL is not ready.
// started (optional) is closed after the first successful response.
func Run(ctx context.Context, o Options, started chan<- struct{}) Result {
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.Duration <= 0 {
		o.Duration = 30 * time.Second
	}
	if o.Interval <= 0 {
		o.Interval = 100 * time.Millisecond
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: o.Concurrency}}
	}
	begin := time.Now()
	runCtx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()

	var stop atomic.Bool
	var res Result
	res.Statuses = map[string]int{}
	var mu sync.Mutex
	var once sync.Once
	record := func(status int, err error) {
		mu.Lock()
		defer mu.Unlock()
		res.Sent++
		if stop.Load() {
			res.AfterUnready++
		}
		key := fmt.Sprint(status)
		if err != nil {
			key = "error"
		}
		res.Statuses[key]++
		if err == nil && status/100 == 2 {
			res.OK++
			if started != nil {
				once.Do(func() { close(started) })
			}
			return
		}
		res.Failed++
		if len(res.Errors) < 20 {
			if err != nil {
				res.Errors = append(res.Errors, err.Error())
			} else {
				res.Errors = append(res.Errors, fmt.Sprintf("HTTP %d", status))
			}
		}
	}

	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		if o.ReadyURL == "" {
			<-runCtx.Done()
			return
		}
		t := time.NewTicker(o.Interval)
		defer t.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
			if err := ready(runCtx, o.Client, o.ReadyURL); err != nil && runCtx.Err() == nil {
				mu.Lock()
				res.Unready, res.UnreadyErr = true, err.Error()
				mu.Unlock()
				stop.Store(true)
				return
			}
		}
	}()

	var wg sync.WaitGroup
	for i := 0; i < o.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() && runCtx.Err() == nil {
				// A request already sent is never cancelled: it must finish.
				req, err := http.NewRequestWithContext(context.WithoutCancel(runCtx), http.MethodGet, o.URL, nil)
				if err != nil {
					record(0, err)
					return
				}
				resp, err := o.Client.Do(req)
				status := 0
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				record(status, err)
				if o.Pace > 0 {
					select {
					case <-time.After(o.Pace):
					case <-runCtx.Done():
					}
				}
			}
		}()
	}
	wg.Wait()
	cancel()
	<-pollDone
	res.Elapsed = time.Since(begin).Round(time.Millisecond).String()
	sort.Strings(res.Errors)
	return res
}

func ready(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	return nil
}
