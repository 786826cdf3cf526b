package pipeline

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sidecarkit/sidecarkit/adapter/bulk"
	"github.com/sidecarkit/sidecarkit/adapter/tail"
)

// Metrics are the adapter's Prometheus metrics (sidecarkit_adapter_...).
type Metrics struct {
	reg           prometheus.Registerer
	prefix        string
	Lines         prometheus.Counter
	ParseFailures prometheus.Counter
	Truncated     prometheus.Counter
	Sent          prometheus.Counter
	Retried       prometheus.Counter
	Dead          prometheus.Counter
	SentBytes     prometheus.Counter
	Requests      prometheus.Counter
	Latency       prometheus.Histogram
	ReqErrors     *prometheus.CounterVec
	sinkDown      atomic.Bool
}

// NewMetrics registers the metrics on reg.
func NewMetrics(reg prometheus.Registerer, prefix string) *Metrics {
	c := func(name, help string) prometheus.Counter {
		x := prometheus.NewCounter(prometheus.CounterOpts{Name: prefix + name, Help: help})
		reg.MustRegister(x)
		return x
	}
	m := &Metrics{reg: reg, prefix: prefix,
		Lines:         c("lines_read_total", "Lines read from files."),
		ParseFailures: c("parse_failures_total", "Lines that did not parse (shipped raw with a _parsefailure tag)."),
		Truncated:     c("lines_truncated_total", "Lines cut at --max-line-bytes."),
		Sent:          c("documents_sent_total", "Documents the output acknowledged."),
		Retried:       c("documents_retried_total", "Document sends retried (429, 5xx, network errors)."),
		Dead:          c("documents_dead_lettered_total", "Documents rejected by the output (4xx) and written to the dead-letter file."),
		SentBytes:     c("sent_bytes_total", "Bulk request body bytes sent (after compression)."),
		Requests:      c("bulk_requests_total", "Bulk requests made."),
	}
	m.Latency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: prefix + "bulk_request_duration_seconds",
		Help: "Bulk request latency.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)})
	m.ReqErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: prefix + "bulk_request_errors_total",
		Help: "Failed bulk requests by reason."}, []string{"reason"})
	reg.MustRegister(m.Latency, m.ReqErrors)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: prefix + "output_failing",
		Help: "1 while the last bulk request failed."}, func() float64 {
		if m.sinkDown.Load() {
			return 1
		}
		return 0
	}))
	return m
}

// Bulk returns the sink's view of the metrics.
func (m *Metrics) Bulk() bulk.Metrics {
	return bulk.Metrics{Sent: m.Sent, Retried: m.Retried, Dead: m.Dead, Bytes: m.SentBytes, Latency: m.Latency,
		ReqErrors: m.ReqErrors, Requests: m.Requests, LastFailed: func(f bool) { m.sinkDown.Store(f) }}
}

func (m *Metrics) attachTailer(t *tail.Tailer, p *Pipeline) {
	cf := func(name, help string, f func(tail.Stats) int64) {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: m.prefix + name, Help: help},
			func() float64 { return float64(f(t.Stats())) }))
	}
	cf("read_bytes_total", "Bytes read from files.", func(s tail.Stats) int64 { return s.BytesRead })
	cf("rotations_total", "Files seen rotated away or deleted.", func(s tail.Stats) int64 { return s.Rotations })
	cf("truncations_total", "Files seen truncated (copytruncate).", func(s tail.Stats) int64 { return s.Truncations })
	cf("glob_errors_total", "Directory listings of --paths that failed (EMFILE, EACCES ...); followed files are kept.", func(s tail.Stats) int64 { return s.GlobErrors })
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: m.prefix + "files_parked",
		Help: "Files read to their end and closed (over --max-open-files), reopened by identity when they grow."},
		func() float64 { return float64(t.Stats().FilesParked) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: m.prefix + "queue_batches",
		Help: "Batches waiting for a sender."}, func() float64 { return float64(len(p.queue)) }))
	m.reg.MustRegister(&behindCollector{t: t, files: prometheus.NewDesc(m.prefix+"files_open", "Files held open now (including rotated ones not yet shipped).", nil, nil),
		desc: prometheus.NewDesc(m.prefix+"file_bytes_behind", "Bytes of a file not yet acknowledged by the output.", []string{"path"}, nil)})
}

type behindCollector struct {
	t     *tail.Tailer
	desc  *prometheus.Desc
	files *prometheus.Desc
}

func (c *behindCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc; ch <- c.files }

func (c *behindCollector) Collect(ch chan<- prometheus.Metric) {
	fs := c.t.Files()
	ch <- prometheus.MustNewConstMetric(c.files, prometheus.GaugeValue, float64(c.t.Stats().FilesOpen))
	seen := map[string]bool{}
	for _, f := range fs {
		if seen[f.Path] {
			continue
		}
		seen[f.Path] = true
		behind := f.Size - f.Committed
		if behind < 0 {
			behind = 0
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(behind), f.Path)
	}
}
