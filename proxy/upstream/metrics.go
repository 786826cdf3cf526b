package upstream

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the cluster's series; the vectors are shared by every cluster
// registered in the same registry (label cluster), gauges only ever move by
// Add so an old and a new cluster of the same name can overlap on reload.
type metrics struct {
	rq, retries, retryOverflow, retrySuccess, timeouts prometheus.Counter
	cxTotal, cxConnectFail, ejections                  prometheus.Counter
	active, cxActive, ejected, endpoints               prometheus.Gauge
	overflow                                           *prometheus.CounterVec
	byClass                                            *prometheus.CounterVec
	discoveryErrors, discoveryUpdates                  prometheus.Counter
}

func register[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if old, ok := are.ExistingCollector.(T); ok {
				return old
			}
		}
		panic("upstream: metrics: " + err.Error())
	}
	return c
}

func newMetrics(reg prometheus.Registerer, cluster string) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	const ns = "sidecarkit_proxy_upstream_"
	counter := func(name, help string) prometheus.Counter {
		v := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + name, Help: help}, []string{"cluster"}))
		return v.WithLabelValues(cluster)
	}
	gauge := func(name, help string) prometheus.Gauge {
		v := register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ns + name, Help: help}, []string{"cluster"}))
		return v.WithLabelValues(cluster)
	}
	m := &metrics{
		rq:               counter("rq_total", "Requests sent to the cluster (first tries)."),
		retries:          counter("rq_retry_total", "Retries sent to the cluster."),
		retryOverflow:    counter("rq_retry_overflow_total", "Retries not sent because the retry budget or max_retries was exhausted."),
		retrySuccess:     counter("rq_retry_success_total", "Retries that got a non-retriable answer."),
		timeouts:         counter("rq_timeout_total", "Tries that hit the route or per-try timeout."),
		cxTotal:          counter("cx_total", "Upstream connections opened."),
		cxConnectFail:    counter("cx_connect_fail_total", "Upstream connection attempts that failed."),
		ejections:        counter("ejections_total", "Endpoints ejected by outlier detection."),
		active:           gauge("rq_active", "Requests in flight to the cluster."),
		cxActive:         gauge("cx_active", "Open upstream connections."),
		ejected:          gauge("ejections_active", "Endpoints currently ejected."),
		endpoints:        gauge("endpoints", "Endpoints known to the cluster."),
		discoveryErrors:  counter("discovery_errors_total", "Failed DNS/Consul lookups (the last endpoints are kept)."),
		discoveryUpdates: counter("discovery_updates_total", "Endpoint list changes from discovery."),
	}
	ov := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "overflow_total", Help: "Requests refused by a circuit breaker (flag UO) or retries refused by the budget."}, []string{"cluster", "breaker"}))
	m.overflow = ov.MustCurryWith(prometheus.Labels{"cluster": cluster})
	bc := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: ns + "rq_completed_total", Help: "Upstream tries by result: 2xx..5xx or the failure flag."}, []string{"cluster", "result"}))
	m.byClass = bc.MustCurryWith(prometheus.Labels{"cluster": cluster})
	return m
}
