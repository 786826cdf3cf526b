package upstream

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func testCounter(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

func testGauge(g prometheus.Gauge) float64 {
	var m dto.Metric
	g.Write(&m)
	return m.GetGauge().GetValue()
}

func TestMetricNames(t *testing.T) {
	b := newBackend(t, "b", nil)
	reg := prometheus.NewRegistry()
	cfg := ClusterConfig{Name: "names", Endpoints: []EndpointConfig{{Address: b.addr()}}, OutlierDetection: &OutlierConfig{}}
	c, err := New(cfg, Deps{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	// A second cluster of the same name in the same registry (a reload)
	// shares the series instead of failing.
	c2, err := New(cfg, Deps{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	get(t, c, context.Background(), "GET", "/", nil)
	c2.Close()
	c.Close()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			have[mf.GetName()] += v
		}
	}
	for _, n := range []string{"rq_total", "rq_active", "rq_completed_total", "rq_retry_total", "cx_total", "cx_active", "endpoints", "ejections_total", "ejections_active"} {
		if _, ok := have["sidecarkit_proxy_upstream_"+n]; !ok {
			t.Errorf("metric sidecarkit_proxy_upstream_%s missing", n)
		}
	}
	if have["sidecarkit_proxy_upstream_rq_total"] != 1 || have["sidecarkit_proxy_upstream_endpoints"] != 0 || have["sidecarkit_proxy_upstream_rq_active"] != 0 {
		t.Errorf("after close: rq_total %v, endpoints %v, rq_active %v", have["sidecarkit_proxy_upstream_rq_total"], have["sidecarkit_proxy_upstream_endpoints"], have["sidecarkit_proxy_upstream_rq_active"])
	}
}
