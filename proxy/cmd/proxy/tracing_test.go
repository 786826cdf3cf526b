package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// TestTraceThroughTwoProxiesInJaeger: client → outbound proxy → inbound
// proxy → app produces one trace in a real Jaeger: the outbound proxy's
// CLIENT span "egress" is the child of the client's traceparent, the
// inbound proxy's SERVER span "ingress" is the child of egress, and the app
// sees ingress as its parent. Outbound exports over OTLP/HTTP, inbound over
// OTLP/gRPC.
func TestTraceThroughTwoProxiesInJaeger(t *testing.T) {
	j := testenv.StartJaeger(t)
	seen := make(chan string, 1)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case seen <- r.Header.Get("Traceparent"):
		default:
		}
		io.WriteString(w, "ok")
	}))
	defer app.Close()
	in := startBinary(t, nil, "--app", app.Listener.Addr().String(), "--tracing-base-endpoint", j.OTLPGRPC,
		"--tracing-protocol", "grpc", "--tracing-service-name", "inbound-proxy")
	out := startBinary(t, nil, "--upstream", "http://"+in.inbound, "--tracing-base-endpoint", j.OTLPHTTP,
		"--tracing-service-name", "outbound-proxy")

	const tid, client = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	req, _ := http.NewRequest("GET", "http://"+out.outbound+"/hello", nil)
	req.Header.Set("Traceparent", "00-"+tid+"-"+client+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	appParent := <-seen

	type span struct {
		TraceID, SpanID, OperationName string
		References                     []struct{ RefType, SpanID string }
		Tags                           []struct {
			Key   string
			Value any
		}
		ProcessID string
	}
	var got []span
	var procs map[string]struct{ ServiceName string }
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		r, err := http.Get(j.Query + "/api/traces/" + tid)
		if err == nil {
			var body struct {
				Data []struct {
					Spans     []span
					Processes map[string]struct{ ServiceName string }
				}
			}
			json.NewDecoder(r.Body).Decode(&body)
			r.Body.Close()
			if len(body.Data) == 1 && len(body.Data[0].Spans) >= 2 {
				got, procs = body.Data[0].Spans, body.Data[0].Processes
				break
			}
		}
		time.Sleep(200 * time.Millisecond) // spans are exported in batches each second
	}
	if len(got) != 2 {
		t.Fatalf("jaeger has %d spans for trace %s, want 2", len(got), tid)
	}
	by := map[string]span{}
	for _, s := range got {
		by[s.OperationName] = s
	}
	eg, ig := by["egress"], by["ingress"]
	parent := func(s span) string {
		for _, r := range s.References {
			if r.RefType == "CHILD_OF" {
				return r.SpanID
			}
		}
		return ""
	}
	if eg.SpanID == "" || ig.SpanID == "" {
		t.Fatalf("want egress and ingress spans, got %+v", got)
	}
	if parent(eg) != client || parent(ig) != eg.SpanID {
		t.Fatalf("parents: egress→%s (want client %s), ingress→%s (want egress %s)", parent(eg), client, parent(ig), eg.SpanID)
	}
	if want := "00-" + tid + "-" + ig.SpanID + "-01"; appParent != want {
		t.Errorf("app got traceparent %q, want %q", appParent, want)
	}
	if procs[eg.ProcessID].ServiceName != "outbound-proxy" || procs[ig.ProcessID].ServiceName != "inbound-proxy" {
		t.Errorf("services: %+v", procs)
	}
	tags := func(s span) map[string]any {
		m := map[string]any{}
		for _, tg := range s.Tags {
			m[tg.Key] = tg.Value
		}
		return m
	}
	et, it := tags(eg), tags(ig)
	if et["span.kind"] != "client" || it["span.kind"] != "server" || et["upstream_cluster"] != "upstream" ||
		it["upstream_cluster"] != "app" || et["response_flags"] != "-" || et["guid:x-request-id"] == nil ||
		et["guid:x-request-id"] != it["guid:x-request-id"] {
		t.Errorf("tags: egress %v\ningress %v", et, it)
	}
}
