package pipeline

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sidecarkit/sidecarkit/adapter/checkpoint"
	"github.com/sidecarkit/sidecarkit/adapter/output"
	"github.com/sidecarkit/sidecarkit/adapter/parse"
	"github.com/sidecarkit/sidecarkit/adapter/tail"
	"github.com/sidecarkit/sidecarkit/shared/logging"
)

// BenchmarkLegacyToDiscard measures the whole hot path (read, split,
// parse, encode, batch) over a file of legacy lines into the discard sink.
func BenchmarkLegacyToDiscard(b *testing.B) {
	benchFile(b, parse.Legacy{}, func(i int) string {
		return fmt.Sprintf("2024-01-15 14:32:%02d INFO order_id=ORD-%d status=FULFILLED customer=C-%05d amount=%d.%02d region=eu-west-1 latency_ms=%d\n", i%60, i, i%99999, i%1000, i%100, i%500)
	})
}

// BenchmarkJSONToDiscard is the same for JSON lines.
func BenchmarkJSONToDiscard(b *testing.B) {
	benchFile(b, parse.JSON{}, func(i int) string {
		return fmt.Sprintf(`{"time":"2024-01-15T14:32:%02d.%03dZ","level":"info","msg":"order fulfilled","order_id":"ORD-%d","customer":"C-%05d","amount":%d.%02d,"region":"eu-west-1","latency_ms":%d}`+"\n", i%60, i%1000, i, i%99999, i%1000, i%100, i%500)
	})
}

func benchFile(b *testing.B, parser parse.Parser, line func(int) string) {
	dir := b.TempDir()
	path := filepath.Join(dir, "app.log")
	fh, _ := os.Create(path)
	f := bufio.NewWriter(fh)
	const n = 200000
	var size int64
	for i := 0; i < n; i++ {
		k, _ := f.WriteString(line(i))
		size += int64(k)
	}
	f.Flush()
	fh.Close()
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		reg := prometheus.NewRegistry()
		m := NewMetrics(reg, "x_")
		store, _ := checkpoint.Open("")
		p := New(Config{Rules: []Rule{{Parser: parser}}, Index: "logs-%Y.%m.%d"}, output.Discard{Sent: m.Sent}, store, m, logging.Discard())
		stop := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- p.Run(context.Background(), stop, tail.Config{Include: []string{path}, ReadFromHead: true, PollInterval: time.Millisecond}, nil)
		}()
		for testutil.ToFloat64(m.Sent) < n {
			time.Sleep(time.Millisecond)
		}
		close(stop)
		<-done
	}
}
