package tracing

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	skconfig "github.com/sidecarkit/sidecarkit/shared/config"
)

func parse(t *testing.T, args, env []string) (Config, error) {
	t.Helper()
	l := skconfig.NewLoader("proxy")
	var c Config
	Bind(l, &c)
	if _, err := l.Parse(args, env); err != nil {
		return c, err
	}
	var p skconfig.Problems
	c.Validate(&p)
	return c, p.Err()
}

func TestConfigOTELEnv(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		env      []string
		url      string
		proto    string
		timeout  time.Duration
		ratio    float64
		sampler  string
		svc      string
		disabled bool
	}{
		{name: "off by default", disabled: true, proto: ProtoHTTP, timeout: 10 * time.Second, ratio: 1, sampler: SamplerParentRatio, svc: "sidecarkit-proxy"},
		{name: "base endpoint gets the signal path", env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318/"},
			url: "http://c:4318/v1/traces", proto: ProtoHTTP, timeout: 10 * time.Second, ratio: 1, sampler: SamplerParentRatio, svc: "sidecarkit-proxy"},
		{name: "traces endpoint as is, wins over base", env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://t:9/x"},
			url: "http://t:9/x", proto: ProtoHTTP, timeout: 10 * time.Second, ratio: 1, sampler: SamplerParentRatio, svc: "sidecarkit-proxy"},
		{name: "grpc base endpoint has no path; ms timeout; sampler env",
			env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_TIMEOUT=2500",
				"OTEL_TRACES_SAMPLER=traceidratio", "OTEL_TRACES_SAMPLER_ARG=0.25", "OTEL_SERVICE_NAME=pay"},
			url: "http://c:4317", proto: ProtoGRPC, timeout: 2500 * time.Millisecond, ratio: 0.25, sampler: SamplerRatio, svc: "pay"},
		{name: "signal-specific protocol wins; flag wins over env",
			args: []string{"--tracing-sample-ratio", "0.5"},
			env:  []string{"OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf", "OTEL_TRACES_SAMPLER_ARG=0.1", "PROXY_TRACING_ENDPOINT=https://x:1/v1/traces"},
			url:  "https://x:1/v1/traces", proto: ProtoHTTP, timeout: 10 * time.Second, ratio: 0.5, sampler: SamplerParentRatio, svc: "sidecarkit-proxy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parse(t, tc.args, tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if c.Enabled() == tc.disabled || c.URL() != tc.url || c.Protocol != tc.proto || *c.Timeout.D != tc.timeout ||
				c.SampleRatio != tc.ratio || c.Sampler != tc.sampler || c.ServiceName != tc.svc {
				t.Fatalf("got enabled=%v url=%q proto=%q timeout=%v ratio=%v sampler=%q svc=%q", c.Enabled(), c.URL(), c.Protocol, *c.Timeout.D, c.SampleRatio, c.Sampler, c.ServiceName)
			}
		})
	}
}

func TestConfigErrorsNameTheKeyNotTheSecret(t *testing.T) {
	_, err := parse(t, nil, []string{
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/json", "OTEL_EXPORTER_OTLP_ENDPOINT=collector:4318",
		"OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20s3cr3t,broken", "OTEL_TRACES_SAMPLER=sometimes",
		"OTEL_TRACES_SAMPLER_ARG=2", "PROXY_TRACING_QUEUE_SIZE=0",
	})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{"tracing-protocol", "http/json", "tracing-base-endpoint", "tracing-headers", "entry 2", "tracing-sampler", "tracing-sample-ratio", "tracing-queue-size"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "s3cr3t") {
		t.Errorf("error shows the header value:\n%s", msg)
	}
	if _, err := parse(t, nil, []string{"OTEL_EXPORTER_OTLP_TIMEOUT=soon"}); err == nil || !strings.Contains(err.Error(), "OTEL_EXPORTER_OTLP_TIMEOUT") {
		t.Errorf("bad timeout: %v", err)
	}
}

func memTracer(t *testing.T, c Config) (*Tracer, *tracetest.InMemoryExporter, *prometheus.Registry) {
	t.Helper()
	if c.Sampler == "" {
		c.Sampler, c.SampleRatio = SamplerParentRatio, 1
	}
	exp := tracetest.NewInMemoryExporter()
	reg := prometheus.NewRegistry()
	tr := newTracer(c, exp, reg, nil)
	t.Cleanup(func() { tr.Shutdown(context.Background()) })
	return tr, exp, reg
}

func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, a := range s.Attributes {
		m[a.Key] = a.Value
	}
	return m
}

// TestPropagation: W3C and B3 (multi and single header) in, both out; the
// outgoing parent is the proxy's own span.
func TestPropagation(t *testing.T) {
	const tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for _, tc := range []struct {
		name string
		hdr  map[string]string
	}{
		{"w3c", map[string]string{"Traceparent": "00-" + tid + "-" + sid + "-01", "Tracestate": "vendor=x"}},
		{"b3 multi", map[string]string{"X-B3-Traceid": tid, "X-B3-Spanid": sid, "X-B3-Sampled": "1"}},
		{"b3 single", map[string]string{"B3": tid + "-" + sid + "-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, exp, _ := memTracer(t, Config{})
			r := httptest.NewRequest("GET", "http://svc.local/a?b=c", nil)
			for k, v := range tc.hdr {
				r.Header.Set(k, v)
			}
			sp := tr.Start(r, "outbound", false, "rid-1")
			out := http.Header{}
			if tc.hdr["Tracestate"] != "" {
				out.Set("Tracestate", "stale")
			}
			sp.Inject(out)
			sp.End(Result{Route: "r1", Cluster: "payments", UpstreamHost: "10.0.0.1:80", Status: 503, Flags: "UF"})
			tr.ForceFlush(context.Background())
			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("%d spans", len(spans))
			}
			s := spans[0]
			if s.SpanContext.TraceID().String() != tid || s.Parent.SpanID().String() != sid || s.SpanKind != trace.SpanKindClient || s.Name != "egress" {
				t.Fatalf("span trace=%s parent=%s kind=%v name=%s", s.SpanContext.TraceID(), s.Parent.SpanID(), s.SpanKind, s.Name)
			}
			own := s.SpanContext.SpanID().String()
			if want := "00-" + tid + "-" + own + "-01"; out.Get("Traceparent") != want {
				t.Errorf("traceparent out %q, want %q", out.Get("Traceparent"), want)
			}
			if out.Get("X-B3-Traceid") != tid || out.Get("X-B3-Spanid") != own || out.Get("X-B3-Sampled") != "1" {
				t.Errorf("b3 out: %v", out)
			}
			if tc.hdr["Tracestate"] != "" && out.Get("Tracestate") != "vendor=x" {
				t.Errorf("tracestate out %q", out.Get("Tracestate"))
			}
			a := attrs(s)
			for k, want := range map[attribute.Key]string{"upstream_cluster": "payments", "upstream_address": "10.0.0.1:80",
				"response_flags": "UF", "guid:x-request-id": "rid-1", "http.url": "http://svc.local/a?b=c", "http.method": "GET", "component": "proxy"} {
				if a[k].AsString() != want {
					t.Errorf("%s = %q, want %q", k, a[k].AsString(), want)
				}
			}
			if a["http.status_code"].AsInt64() != 503 || !a["error"].AsBool() || s.Status.Code.String() != "Error" {
				t.Errorf("status attrs %v %v %v", a["http.status_code"], a["error"], s.Status)
			}
		})
	}
}

func TestInboundIsServerSpanAndUnsampledParentIsFollowed(t *testing.T) {
	tr, exp, _ := memTracer(t, Config{})
	r := httptest.NewRequest("GET", "http://app/", nil)
	r.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
	sp := tr.Start(r, "inbound", true, "x")
	out := http.Header{}
	sp.Inject(out)
	sp.End(Result{Status: 200})
	r2 := httptest.NewRequest("GET", "http://app/", nil)
	sp2 := tr.Start(r2, "inbound", true, "y")
	sp2.End(Result{Status: 200})
	tr.ForceFlush(context.Background())
	if !strings.HasSuffix(out.Get("Traceparent"), "-00") || out.Get("X-B3-Sampled") != "0" {
		t.Errorf("unsampled parent: out %v", out)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].SpanKind != trace.SpanKindServer || spans[0].Name != "ingress" || spans[0].Parent.IsValid() {
		t.Fatalf("want only the new root server span, got %+v", spans)
	}
}

// blockingExporter never returns until released: a collector that hangs.
type blockingExporter struct {
	release chan struct{}
	once    sync.Once
}

func (b *blockingExporter) ExportSpans(ctx context.Context, _ []sdktrace.ReadOnlySpan) error {
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return context.DeadlineExceeded
}
func (b *blockingExporter) Shutdown(context.Context) error {
	b.once.Do(func() { close(b.release) })
	return nil
}

// TestHungCollectorDropsAndCounts: with the exporter stuck, requests still
// end their spans at once; the queue holds at most its size and the rest
// are counted as dropped.
func TestHungCollectorDropsAndCounts(t *testing.T) {
	exp := &blockingExporter{release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	tr := newTracer(Config{Sampler: SamplerOn, QueueSize: 8, BatchSize: 2}, exp, reg, nil)
	const n = 1000
	for i := 0; i < n; i++ {
		sp := tr.Start(httptest.NewRequest("GET", "http://a/", nil), "outbound", false, "r")
		sp.End(Result{Status: 200})
	}
	if l := len(tr.queue.ch); l > 8 {
		t.Fatalf("queue holds %d spans, cap 8", l)
	}
	dropped := testutil.ToFloat64(tr.queue.dropped)
	// At most one batch in the stuck export plus a full queue are held.
	if dropped < n-8-2 {
		t.Fatalf("dropped %v of %d with queue 8", dropped, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if got, err := testutil.GatherAndCount(reg, "proxy_tracing_spans_dropped_total"); err != nil || got != 1 {
		t.Fatalf("metric: %d %v", got, err)
	}
}

// TestCollectorDownOverOTLP: a real OTLP HTTP exporter pointed at a closed
// port; requests go on, Shutdown returns within its context.
func TestCollectorDownOverOTLP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	d := 200 * time.Millisecond
	reg := prometheus.NewRegistry()
	tr, err := New(Config{Endpoint: "http://" + addr + "/v1/traces", Protocol: ProtoHTTP, Timeout: OTLPTimeout{D: &d},
		Sampler: SamplerOn, QueueSize: 4, BatchSize: 2, ServiceName: "t"}, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		tr.Start(httptest.NewRequest("GET", "http://a/", nil), "outbound", false, "r").End(Result{Status: 200})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tr.Shutdown(ctx)
	if testutil.ToFloat64(tr.queue.dropped) == 0 {
		t.Fatal("nothing dropped with queue 4 and 100 spans")
	}
}
