package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func body(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminEnvoyEndpoints(t *testing.T) {
	app, _ := startEcho(t, "app")
	up, _ := startEcho(t, "up")
	p := startProxy(t, "", "--app", app, "--upstream", "http://"+up)
	admin := httptest.NewServer(p.rt.Admin)
	defer admin.Close()

	if code, b := body(t, "GET", admin.URL+"/ready"); code != 200 || strings.TrimSpace(b) != "LIVE" {
		t.Errorf("/ready = %d %q", code, b)
	}
	body(t, "GET", p.url("outbound")+"/count-me")
	if code, b := body(t, "GET", admin.URL+"/stats"); code != 200 || !strings.Contains(b, `sidecarkit_proxy_requests_total{cluster="upstream",code_class="2xx",listener="outbound",route="default"}: 1`) {
		t.Errorf("/stats = %d\n%s", code, b)
	}
	if code, b := body(t, "GET", admin.URL+"/stats?filter=bytes_total&format=json"); code != 200 || !strings.Contains(b, `"stats"`) || strings.Contains(b, "requests_total") {
		t.Errorf("/stats filter json = %d %s", code, b)
	}
	if code, b := body(t, "GET", "http://"+p.addrs["prometheus"].String()+"/stats/prometheus"); code != 200 || !strings.Contains(b, "# TYPE sidecarkit_proxy_requests_total counter") {
		t.Errorf("15090 /stats/prometheus = %d", code)
	}
	code, b := body(t, "GET", admin.URL+"/config_dump")
	var dump map[string]any
	if code != 200 || json.Unmarshal([]byte(b), &dump) != nil || dump["listeners"] == nil || dump["clusters"] == nil {
		t.Errorf("/config_dump = %d %s", code, b)
	}

	body(t, "POST", admin.URL+"/healthcheck/fail")
	if code, _ := body(t, "GET", admin.URL+"/ready"); code != 503 {
		t.Errorf("/ready after healthcheck/fail = %d", code)
	}
	if code, _ := body(t, "GET", admin.URL+"/readyz"); code != 503 {
		t.Errorf("/readyz after healthcheck/fail = %d", code)
	}
	body(t, "POST", admin.URL+"/healthcheck/ok")
	if code, _ := body(t, "GET", admin.URL+"/ready"); code != 200 {
		t.Errorf("/ready after healthcheck/ok = %d", code)
	}

	// drain_listeners?inboundonly: inbound stops accepting, outbound serves on.
	http.DefaultClient.CloseIdleConnections()
	if code, _ := body(t, "POST", admin.URL+"/drain_listeners?inboundonly"); code != 200 {
		t.Fatalf("drain_listeners = %d", code)
	}
	waitFor(t, func() bool {
		c, err := net.DialTimeout("tcp", p.addrs["inbound"].String(), time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	if code, _ := body(t, "GET", p.url("outbound")+"/still"); code != 200 {
		t.Errorf("outbound after inbound drain = %d", code)
	}
}

func TestConfigDumpRedactsTokens(t *testing.T) {
	dump := redact(map[string]any{"consul": map[string]any{"service": "web", "token": "s3cret"}, "list": []any{map[string]any{"password": "pw"}}})
	b, _ := json.Marshal(dump)
	if strings.Contains(string(b), "s3cret") || strings.Contains(string(b), `"pw"`) {
		t.Fatalf("secret in dump: %s", b)
	}
}

func TestReloadUnderLoad(t *testing.T) {
	a, _ := startEcho(t, "a")
	b, _ := startEcho(t, "b")
	conf := func(target string) string {
		return fmt.Sprintf(`
routes:
  - name: main
    match: {path: {prefix: /}}
    cluster: %s
clusters:
  - name: a
    endpoints: [{address: %s}]
  - name: b
    endpoints: [{address: %s}]
`, target, a, b)
	}
	p := startProxy(t, conf("a"))
	var ok, failed atomic.Int64
	var seen sync.Map
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(p.url("outbound") + "/load")
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					continue
				}
				seen.Store(resp.Header.Get("X-Backend"), true)
				ok.Add(1)
			}
		}()
	}
	write := func(s string) {
		tmp := p.path + ".tmp"
		os.WriteFile(tmp, []byte(s), 0o644)
		os.Rename(tmp, p.path) // atomic, as a ConfigMap update
	}
	admin := httptest.NewServer(p.rt.Admin)
	defer admin.Close()
	reloads := func(result string) float64 {
		_, b := body(t, "GET", admin.URL+"/stats?filter=config_reloads_total")
		var v float64
		for _, l := range strings.Split(b, "\n") {
			if strings.Contains(l, `result="`+result+`"`) {
				fmt.Sscanf(l[strings.LastIndex(l, " ")+1:], "%g", &v)
			}
		}
		return v
	}
	for i, target := range []string{"b", "a", "b"} {
		write(conf(target))
		waitFor(t, func() bool { return reloads("ok") >= float64(i+1) })
		time.Sleep(100 * time.Millisecond)
	}
	// A bad file is refused and the running config kept.
	write("routes: [{name: main, cluster: nope}]\nbogus_key: 1\n")
	waitFor(t, func() bool { return reloads("rejected") >= 1 })
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during reloads", failed.Load(), ok.Load()+failed.Load())
	}
	if _, okA := seen.Load("a"); !okA {
		t.Error("never reached a")
	}
	if _, okB := seen.Load("b"); !okB {
		t.Error("never reached b after reload")
	}
	resp, err := http.Get(p.url("outbound") + "/after")
	if err == nil {
		resp.Body.Close()
	}
	if err != nil || resp.Header.Get("X-Backend") != "b" {
		t.Errorf("after the bad reload the last good config (b) should serve: %v %v", resp, err)
	}
	if !strings.Contains(p.log.String(), "config reload rejected") || !strings.Contains(p.log.String(), "bogus_key") {
		t.Errorf("rejected reload not logged with the problem")
	}
	t.Logf("%d requests, 0 failed, across 3 reloads and 1 rejected", ok.Load())
}

// TestAccessLogSampling: with --access-log-sample 0 only requests with a
// response flag are logged; --access-log=false logs none.
func TestAccessLogSampling(t *testing.T) {
	up, _ := startEcho(t, "up")
	p := startProxy(t, "", "--upstream", "http://"+up, "--access-log-sample", "0")
	for i := 0; i < 20; i++ {
		body(t, "GET", p.url("outbound")+"/ok")
	}
	dead := deadAddr(t)
	q := startProxy(t, "", "--app", dead, "--upstream", "http://"+up, "--access-log-sample", "0")
	body(t, "GET", q.url("inbound")+"/fails")
	waitFor(t, func() bool { return len(q.log.Lines("access")) == 1 })
	if n := len(p.log.Lines("access")); n != 0 {
		t.Errorf("%d flag-less requests logged at sample 0", n)
	}
	r := startProxy(t, "", "--upstream", "http://"+up, "--access-log=false")
	body(t, "GET", r.url("outbound")+"/ok")
	time.Sleep(100 * time.Millisecond)
	if n := len(r.log.Lines("access")); n != 0 {
		t.Errorf("%d lines logged with the access log off", n)
	}
}

// TestReloadAddsAndRemovesListeners: a reload opens a new listener and
// drains a removed one; the listeners that did not change keep serving.
func TestReloadAddsAndRemovesListeners(t *testing.T) {
	up, _ := startEcho(t, "up")
	base := fmt.Sprintf(`
listeners:
  - {name: outbound, address: "127.0.0.1:0", direction: outbound, cluster: up}
%%s
clusters:
  - name: up
    endpoints: [{address: %s}]
`, up)
	p := startProxy(t, fmt.Sprintf(base, ""))
	extra := deadAddr(t)
	write := func(s string) {
		os.WriteFile(p.path+".tmp", []byte(s), 0o644)
		os.Rename(p.path+".tmp", p.path)
	}
	write(fmt.Sprintf(base, "  - {name: extra, address: \""+extra+"\", direction: outbound, cluster: up}"))
	waitFor(t, func() bool {
		resp, err := http.Get("http://" + extra + "/new")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	http.DefaultClient.CloseIdleConnections()
	write(fmt.Sprintf(base, ""))
	waitFor(t, func() bool {
		c, err := net.DialTimeout("tcp", extra, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	if code, _ := body(t, "GET", p.url("outbound")+"/still"); code != 200 {
		t.Errorf("the unchanged listener stopped serving: %d", code)
	}
}
