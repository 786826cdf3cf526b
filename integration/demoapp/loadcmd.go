package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/sidecarkit/sidecarkit/integration/demoapp/load"
)

// loadCmd sends steady load until the readiness URL fails and prints the
// result as JSON; it exits 1 if any request failed.
func loadCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o load.Options
	fs := newFlags("load", stderr)
	fs.StringVar(&o.URL, "url", "http://pod:8080/work?delay=100ms", "URL every worker requests")
	fs.StringVar(&o.ReadyURL, "ready-url", "", "readiness URL; the first non-200 ends the load (as a Service drops the endpoint)")
	fs.IntVar(&o.Concurrency, "c", 4, "concurrent workers")
	fs.DurationVar(&o.Duration, "t", 30*time.Second, "maximum duration")
	fs.DurationVar(&o.Pace, "pace", 0, "pause between a worker's requests")
	if err := parse(fs, args); err != nil {
		return err
	}
	res := load.Run(ctx, o, nil)
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.Encode(res)
	if res.Failed > 0 {
		return fmt.Errorf("%d of %d requests failed", res.Failed, res.Sent)
	}
	return nil
}
