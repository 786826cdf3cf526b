package tracing

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	skconfig "github.com/sidecarkit/sidecarkit/shared/config"
)

// Protocols of the OTLP exporter (OTEL_EXPORTER_OTLP_PROTOCOL).
const (
	ProtoGRPC = "grpc"
	ProtoHTTP = "http/protobuf"
)

// Samplers (OTEL_TRACES_SAMPLER); the parent-based ones follow an
// incoming sampled flag and apply the ratio only to new traces.
const (
	SamplerParentRatio = "parentbased_traceidratio"
	SamplerParentOn    = "parentbased_always_on"
	SamplerParentOff   = "parentbased_always_off"
	SamplerRatio       = "traceidratio"
	SamplerOn          = "always_on"
	SamplerOff         = "always_off"
)

// Config is the tracing part of the proxy's configuration. Tracing is on
// when an endpoint is set (Endpoint, or BaseEndpoint as
// OTEL_EXPORTER_OTLP_ENDPOINT); off, the data path only propagates
// traceparent and creates no span.
type Config struct {
	// Endpoint is the traces URL used as is (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT):
	// http(s)://host:4318/v1/traces for http/protobuf, http(s)://host:4317 for grpc.
	Endpoint string
	// BaseEndpoint is OTEL_EXPORTER_OTLP_ENDPOINT: for http/protobuf the
	// signal path /v1/traces is appended, as the OTLP spec says.
	BaseEndpoint string
	Protocol     string
	// Headers are sent with every export ("k=v,k2=v2", values URL-encoded);
	// they often hold credentials and are never logged.
	Headers     string
	Timeout     OTLPTimeout
	Sampler     string
	SampleRatio float64
	ServiceName string
	QueueSize   int // spans waiting for export; more are dropped and counted
	BatchSize   int
}

// OTLPTimeout accepts the OTLP env form (whole milliseconds, "10000") or a
// Go duration ("10s").
type OTLPTimeout struct{ D *time.Duration }

// Set implements flag.Value.
func (t OTLPTimeout) Set(s string) error {
	s = strings.TrimSpace(s)
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms <= 0 {
			return fmt.Errorf("want a positive number of milliseconds")
		}
		*t.D = time.Duration(ms) * time.Millisecond
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("want milliseconds (10000) or a duration (10s)")
	}
	*t.D = d
	return nil
}

func (t OTLPTimeout) String() string {
	if t.D == nil {
		return "10s"
	}
	return t.D.String()
}

// Bind registers the tracing options on l. Each also reads its standard
// OpenTelemetry environment variable (after PROXY_TRACING_*), so a pod
// spec written for any OTel SDK configures the proxy too.
func Bind(l *skconfig.Loader, c *Config) {
	l.String(&c.Endpoint, "tracing-endpoint", "", "OTLP traces endpoint URL used as is (http://collector:4318/v1/traces, or http://collector:4317 for grpc); empty with no tracing-base-endpoint: no spans")
	l.Env("tracing-endpoint", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	l.String(&c.BaseEndpoint, "tracing-base-endpoint", "", "OTLP base endpoint URL (http://collector:4318); /v1/traces is appended for http/protobuf")
	l.Env("tracing-base-endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT")
	l.String(&c.Protocol, "tracing-protocol", ProtoHTTP, "OTLP transport: http/protobuf or grpc")
	l.Env("tracing-protocol", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
	l.String(&c.Headers, "tracing-headers", "", "headers sent with each export, k=v,k2=v2 (URL-encoded values; never logged)")
	l.Env("tracing-headers", "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
	c.Timeout = OTLPTimeout{D: new(time.Duration)}
	*c.Timeout.D = 10 * time.Second
	l.Var(c.Timeout, "tracing-timeout", "export timeout: milliseconds (the OTLP env form) or a duration")
	l.Env("tracing-timeout", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
	l.String(&c.Sampler, "tracing-sampler", SamplerParentRatio, "sampler: parentbased_traceidratio, parentbased_always_on, parentbased_always_off, traceidratio, always_on or always_off")
	l.Env("tracing-sampler", "OTEL_TRACES_SAMPLER")
	l.Float(&c.SampleRatio, "tracing-sample-ratio", 1, "fraction (0..1) of new traces sampled by the traceidratio samplers")
	l.Env("tracing-sample-ratio", "OTEL_TRACES_SAMPLER_ARG")
	l.String(&c.ServiceName, "tracing-service-name", "sidecarkit-proxy", "service.name of the proxy's spans")
	l.Env("tracing-service-name", "OTEL_SERVICE_NAME")
	l.Int(&c.QueueSize, "tracing-queue-size", 2048, "spans held for export; when the collector is slow or down more are dropped (proxy_tracing_spans_dropped_total)")
	l.Int(&c.BatchSize, "tracing-batch-size", 512, "spans per export request")
}

// Enabled reports whether spans are recorded and exported.
func (c *Config) Enabled() bool { return c.Endpoint != "" || c.BaseEndpoint != "" }

// URL is the effective traces endpoint.
func (c *Config) URL() string {
	if c.Endpoint != "" {
		return c.Endpoint
	}
	if c.BaseEndpoint == "" || c.Protocol == ProtoGRPC {
		return c.BaseEndpoint
	}
	return strings.TrimSuffix(c.BaseEndpoint, "/") + "/v1/traces"
}

// Validate adds every problem of c to p, naming the option.
func (c *Config) Validate(p *skconfig.Problems) {
	switch c.Protocol {
	case ProtoGRPC, ProtoHTTP:
	case "http/json":
		p.Add("tracing-protocol", c.Protocol, "http/json is not supported by the Go OTLP exporter; want http/protobuf or grpc")
	default:
		p.Add("tracing-protocol", c.Protocol, "want http/protobuf or grpc")
	}
	for _, e := range []struct{ k, v string }{{"tracing-endpoint", c.Endpoint}, {"tracing-base-endpoint", c.BaseEndpoint}} {
		if e.v == "" {
			continue
		}
		u, err := url.Parse(e.v)
		switch {
		case err != nil:
			p.Add(e.k, e.v, "not a URL: %v", err)
		case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
			p.Add(e.k, e.v, "want http://host:port or https://host:port")
		}
	}
	if _, err := ParseHeaders(c.Headers); err != nil {
		p.Add("tracing-headers", "(not shown)", "%v", err)
	}
	switch c.Sampler {
	case SamplerParentRatio, SamplerParentOn, SamplerParentOff, SamplerRatio, SamplerOn, SamplerOff:
	default:
		p.Add("tracing-sampler", c.Sampler, "want parentbased_traceidratio, parentbased_always_on, parentbased_always_off, traceidratio, always_on or always_off")
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		p.Add("tracing-sample-ratio", strconv.FormatFloat(c.SampleRatio, 'g', -1, 64), "want a fraction between 0 and 1")
	}
	if c.QueueSize < 1 {
		p.Add("tracing-queue-size", strconv.Itoa(c.QueueSize), "want at least 1")
	}
	if c.BatchSize < 1 {
		p.Add("tracing-batch-size", strconv.Itoa(c.BatchSize), "want at least 1")
	}
}

// ParseHeaders reads the OTLP headers form "k=v,k2=v2" (values URL-encoded).
// Errors name the position, never a value.
func ParseHeaders(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	out := map[string]string{}
	for i, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("entry %d: want key=value", i+1)
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("entry %d (%s): bad URL encoding", i+1, k)
		}
		out[k] = dv
	}
	return out, nil
}
