// Package tracing gives the proxy Envoy's request spans through the
// OpenTelemetry Go SDK: one span per request, SERVER on inbound listeners
// ("ingress") and CLIENT on outbound ones ("egress"), tagged as Envoy tags
// them (upstream_cluster, upstream_address, http.status_code,
// response_flags, guid:x-request-id, ...). Context comes in as W3C
// traceparent or B3 (multi or single header) and goes out as both.
//
// Spans are exported over OTLP (http/protobuf or grpc) from a bounded
// queue: when the collector is slow or down, spans beyond the queue are
// dropped and counted, and the data path never waits for the exporter.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

// Tracer starts the proxy's request spans. A nil *Tracer is tracing off.
type Tracer struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	queue    *queue
}

// New builds the exporter and tracer for c (c.Enabled() must be true).
// Exports start lazily: a collector that is down does not fail New.
func New(c Config, reg prometheus.Registerer, log *slog.Logger) (*Tracer, error) {
	exp, err := newExporter(c)
	if err != nil {
		return nil, err
	}
	return newTracer(c, exp, reg, log), nil
}

// newTracer is New with a given exporter (tests use an in-memory one).
func newTracer(c Config, exp sdktrace.SpanExporter, reg prometheus.Registerer, log *slog.Logger) *Tracer {
	q := newQueue(exp, c.QueueSize, c.BatchSize, reg, log)
	// resource.Default adds the SDK's attributes and OTEL_RESOURCE_ATTRIBUTES.
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(c.ServiceName)))
	if err != nil {
		res = resource.NewSchemaless(semconv.ServiceName(c.ServiceName))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sampler(c)),
		sdktrace.WithSpanProcessor(q),
		sdktrace.WithResource(res),
	)
	return &Tracer{
		provider: tp,
		tracer:   tp.Tracer("github.com/sidecarkit/sidecarkit/proxy"),
		// Extraction: B3 first, then W3C, so a valid traceparent wins when a
		// request carries both. Injection writes both.
		prop:  propagation.NewCompositeTextMapPropagator(b3.New(b3.WithInjectEncoding(b3.B3MultipleHeader)), propagation.TraceContext{}),
		queue: q,
	}
}

func newExporter(c Config) (sdktrace.SpanExporter, error) {
	hdrs, err := ParseHeaders(c.Headers)
	if err != nil {
		return nil, fmt.Errorf("tracing-headers: %w", err)
	}
	timeout := 10 * time.Second
	if c.Timeout.D != nil && *c.Timeout.D > 0 {
		timeout = *c.Timeout.D
	}
	raw := c.URL()
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("tracing endpoint %q: want http(s)://host:port", raw)
	}
	ctx := context.Background()
	if c.Protocol == ProtoGRPC {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(u.Host), otlptracegrpc.WithTimeout(timeout)}
		if u.Scheme == "http" {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		if len(hdrs) > 0 {
			opts = append(opts, otlptracegrpc.WithHeaders(hdrs))
		}
		return otlptracegrpc.New(ctx, opts...)
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(raw), otlptracehttp.WithTimeout(timeout)}
	if len(hdrs) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(hdrs))
	}
	return otlptracehttp.New(ctx, opts...)
}

func sampler(c Config) sdktrace.Sampler {
	switch c.Sampler {
	case SamplerOn:
		return sdktrace.AlwaysSample()
	case SamplerOff:
		return sdktrace.NeverSample()
	case SamplerRatio:
		return sdktrace.TraceIDRatioBased(c.SampleRatio)
	case SamplerParentOn:
		return sdktrace.ParentBased(sdktrace.AlwaysSample())
	case SamplerParentOff:
		return sdktrace.ParentBased(sdktrace.NeverSample())
	}
	return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.SampleRatio))
}

// Shutdown exports what is queued (until ctx ends) and stops the exporter.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// ForceFlush exports what is queued now.
func (t *Tracer) ForceFlush(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.ForceFlush(ctx)
}

// Span is one request's span.
type Span struct {
	span trace.Span
	ctx  context.Context
	prop propagation.TextMapPropagator
}

// Start begins the span of a request arriving on listener, as the child of
// the context in r's trace headers (W3C or B3), if any.
func (t *Tracer) Start(r *http.Request, listener string, inbound bool, requestID string) *Span {
	ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	kind, name := trace.SpanKindClient, "egress"
	if inbound {
		kind, name = trace.SpanKindServer, "ingress"
	}
	ctx, sp := t.tracer.Start(ctx, name, trace.WithSpanKind(kind))
	if sp.IsRecording() {
		proto := r.Proto
		if proto == "" {
			proto = "HTTP/" + strconv.Itoa(r.ProtoMajor) + "." + strconv.Itoa(r.ProtoMinor)
		}
		sp.SetAttributes(
			attribute.String("component", "proxy"),
			attribute.String("listener", listener),
			attribute.String("guid:x-request-id", requestID),
			attribute.String("http.method", r.Method),
			attribute.String("http.url", requestURL(r)),
			attribute.String("http.protocol", proto),
			attribute.String("user_agent", dash(r.Header.Get("User-Agent"))),
			attribute.String("downstream_cluster", dash(r.Header.Get("X-Envoy-Downstream-Service-Cluster"))),
			attribute.String("peer.address", r.RemoteAddr),
		)
	}
	return &Span{span: sp, ctx: ctx, prop: t.prop}
}

func requestURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.RequestURI()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Inject writes the span's context into h as traceparent (+ tracestate)
// and B3 headers, replacing what came in: the next hop is this span's child.
func (s *Span) Inject(h http.Header) {
	s.prop.Inject(s.ctx, propagation.HeaderCarrier(h))
}

// TraceID is the span's trace id (hex).
func (s *Span) TraceID() string { return s.span.SpanContext().TraceID().String() }

// Result is what the access log knows when the request ends.
type Result struct {
	Route          string
	Cluster        string // upstream cluster name, "app", "passthrough"...
	UpstreamHost   string
	Status         int
	Flags          string // Envoy response flags, "" for none
	BytesReceived  int64
	BytesSent      int64
	UpstreamTimeMs float64
}

// End finishes the span with the request's outcome.
func (s *Span) End(r Result) {
	sp := s.span
	if sp.IsRecording() {
		flags := dash(r.Flags)
		sp.SetAttributes(
			attribute.String("route_name", r.Route),
			attribute.String("upstream_cluster", r.Cluster),
			attribute.String("upstream_cluster.name", r.Cluster),
			attribute.String("upstream_address", dash(r.UpstreamHost)),
			attribute.Int("http.status_code", r.Status),
			attribute.String("response_flags", flags),
			attribute.Int64("request_size", r.BytesReceived),
			attribute.Int64("response_size", r.BytesSent),
		)
		// Envoy marks a span as an error for 5xx and for no response at all.
		if r.Status >= 500 || r.Status == 0 || r.Status == 499 {
			sp.SetAttributes(attribute.Bool("error", true))
			sp.SetStatus(codes.Error, strconv.Itoa(r.Status)+" "+flags)
		}
	}
	sp.End()
}
