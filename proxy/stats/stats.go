// Package stats defines the proxy's Prometheus metrics (sidecarkit_proxy_…),
// registered on the registry the runtime passes in.
package stats

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the proxy's data-plane metrics.
type Metrics struct {
	Requests        *prometheus.CounterVec   // listener, route, cluster, code_class
	Duration        *prometheus.HistogramVec // listener, route, cluster
	DownActive      *prometheus.GaugeVec     // listener
	DownTotal       *prometheus.CounterVec   // listener, protocol
	UpActive        *prometheus.GaugeVec     // target (cluster or "passthrough")
	UpTotal         *prometheus.CounterVec   // target
	Bytes           *prometheus.CounterVec   // listener, direction (received|sent)
	ProtocolErrors  *prometheus.CounterVec   // listener, kind
	ResponseFlags   *prometheus.CounterVec   // listener, flag
	Reloads         *prometheus.CounterVec   // result
	ActiveRequests  *prometheus.GaugeVec     // listener
	ConfigTimestamp prometheus.Gauge

	mu    sync.Mutex
	cache map[key]*Route
}

type key struct{ listener, route, cluster string }

// Route holds one listener/route/cluster's resolved series so the hot path
// does no label lookups.
type Route struct {
	codes    [6]prometheus.Counter // 1xx..5xx, [0] other
	duration prometheus.Observer
}

// New registers the metrics on reg.
func New(reg prometheus.Registerer) *Metrics {
	const ns = "sidecarkit_proxy_"
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "requests_total",
			Help: "HTTP requests completed, by listener, route, cluster and status class (1xx..5xx)."}, []string{"listener", "route", "cluster", "code_class"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: ns + "request_duration_seconds",
			Help:    "HTTP request duration from the request head to the last response byte.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}, []string{"listener", "route", "cluster"}),
		DownActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "downstream_connections_active",
			Help: "Open downstream connections."}, []string{"listener"}),
		DownTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "downstream_connections_total",
			Help: "Accepted downstream connections, by detected protocol."}, []string{"listener", "protocol"}),
		UpActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "upstream_connections_active",
			Help: "Open upstream connections opened by the listeners' own dialers (passthrough, app, tunnels)."}, []string{"target"}),
		UpTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "upstream_connections_total",
			Help: "Upstream connections opened by the listeners' own dialers."}, []string{"target"}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "bytes_total",
			Help: "Payload bytes received from and sent to downstream clients."}, []string{"listener", "direction"}),
		ProtocolErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "protocol_errors_total",
			Help: "Downstream protocol errors (malformed requests, conflicting framing, oversized heads, bad TLS)."}, []string{"listener", "kind"}),
		ResponseFlags: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "response_flags_total",
			Help: "Requests and streams with an Envoy response flag (UF, UH, UT, UC, DC, NR, ...)."}, []string{"listener", "flag"}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "config_reloads_total",
			Help: "Configuration reloads, by result (ok, rejected)."}, []string{"result"}),
		ActiveRequests: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + "requests_active",
			Help: "HTTP requests and tunnels in flight."}, []string{"listener"}),
		ConfigTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{Name: ns + "config_last_reload_timestamp_seconds",
			Help: "Unix time of the last configuration (re)load that was applied."}),
		cache: map[key]*Route{},
	}
	reg.MustRegister(m.Requests, m.Duration, m.DownActive, m.DownTotal, m.UpActive, m.UpTotal, m.Bytes,
		m.ProtocolErrors, m.ResponseFlags, m.Reloads, m.ActiveRequests, m.ConfigTimestamp)
	return m
}

// Route returns the resolved series for a listener, route and cluster.
func (m *Metrics) Route(listener, route, cluster string) *Route {
	k := key{listener, route, cluster}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.cache[k]; ok {
		return r
	}
	r := &Route{duration: m.Duration.WithLabelValues(listener, route, cluster)}
	for i := range r.codes {
		class := "other"
		if i > 0 {
			class = strconv.Itoa(i) + "xx"
		}
		r.codes[i] = m.Requests.WithLabelValues(listener, route, cluster, class)
	}
	m.cache[k] = r
	return r
}

// Observe records one finished request.
func (r *Route) Observe(status int, seconds float64) {
	c := status / 100
	if c < 1 || c > 5 {
		c = 0
	}
	r.codes[c].Inc()
	r.duration.Observe(seconds)
}
