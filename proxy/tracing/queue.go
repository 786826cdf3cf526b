package tracing

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// queue is a span processor with a fixed-size queue and one export loop.
// The SDK's BatchSpanProcessor is bounded too, but it drops silently (its
// count is only in the experimental self-observability metrics); the
// proxy's operators need proxy_tracing_spans_dropped_total, so this small
// processor keeps the count. OnEnd never blocks: a full queue drops.
type queue struct {
	exp     sdktrace.SpanExporter
	ch      chan sdktrace.ReadOnlySpan
	batch   int
	log     *slog.Logger
	flushCh chan chan struct{}
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once

	dropped, exported, failed prometheus.Counter
}

const exportInterval = time.Second

func newQueue(exp sdktrace.SpanExporter, size, batch int, reg prometheus.Registerer, log *slog.Logger) *queue {
	if size < 1 {
		size = 2048
	}
	if batch < 1 || batch > size {
		batch = min(512, size)
	}
	q := &queue{
		exp: exp, ch: make(chan sdktrace.ReadOnlySpan, size), batch: batch, log: log,
		flushCh: make(chan chan struct{}), stop: make(chan struct{}), done: make(chan struct{}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "proxy_tracing_spans_dropped_total",
			Help: "Spans dropped because the export queue was full (collector slow or down)."}),
		exported: prometheus.NewCounter(prometheus.CounterOpts{Name: "proxy_tracing_spans_exported_total",
			Help: "Spans the collector accepted."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "proxy_tracing_spans_failed_total",
			Help: "Spans lost because their export request failed."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{q.dropped, q.exported, q.failed} {
			if err := reg.Register(c); err != nil {
				if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
					// A second tracer in one process (tests): share the counters.
					switch c {
					case q.dropped:
						q.dropped = are.ExistingCollector.(prometheus.Counter)
					case q.exported:
						q.exported = are.ExistingCollector.(prometheus.Counter)
					case q.failed:
						q.failed = are.ExistingCollector.(prometheus.Counter)
					}
				}
			}
		}
	}
	go q.loop()
	return q
}

func (q *queue) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

func (q *queue) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	select {
	case q.ch <- s:
	default:
		q.dropped.Inc()
	}
}

func (q *queue) loop() {
	defer close(q.done)
	t := time.NewTicker(exportInterval)
	defer t.Stop()
	buf := make([]sdktrace.ReadOnlySpan, 0, q.batch)
	for {
		select {
		case s := <-q.ch:
			buf = append(buf, s)
			if len(buf) >= q.batch {
				buf = q.export(buf)
			}
		case <-t.C:
			buf = q.export(buf)
		case ack := <-q.flushCh:
			buf = q.drain(buf)
			close(ack)
		case <-q.stop:
			q.drain(buf)
			return
		}
	}
}

// drain exports everything queued now.
func (q *queue) drain(buf []sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	for {
		select {
		case s := <-q.ch:
			buf = append(buf, s)
			if len(buf) >= q.batch {
				buf = q.export(buf)
			}
		default:
			return q.export(buf)
		}
	}
}

func (q *queue) export(buf []sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	if len(buf) == 0 {
		return buf
	}
	// The exporter bounds each request by its own timeout (tracing-timeout).
	if err := q.exp.ExportSpans(context.Background(), buf); err != nil {
		q.failed.Add(float64(len(buf)))
		if q.log != nil {
			q.log.Warn("tracing: export failed", "spans", len(buf), "err", err)
		}
	} else {
		q.exported.Add(float64(len(buf)))
	}
	clear(buf)
	return buf[:0]
}

func (q *queue) ForceFlush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case q.flushCh <- ack:
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (q *queue) Shutdown(ctx context.Context) error {
	q.once.Do(func() { close(q.stop) })
	select {
	case <-q.done:
	case <-ctx.Done():
		// The loop is stuck in an export; the exporter's shutdown ends it.
	}
	return q.exp.Shutdown(ctx)
}
