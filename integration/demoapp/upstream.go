package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// upstreamCmd runs the upstream service: /echo answers with what it received
// (headers, remote address), so a caller can see the proxy's Via,
// X-Request-Id and traceparent headers.
func upstreamCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("upstream", stderr)
	listen := fs.String("listen", ":9090", "HTTP listen address")
	name := fs.String("name", "upstream", "service name reported in answers")
	if err := parse(fs, args); err != nil {
		return err
	}
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"service": *name, "host": host, "method": r.Method, "path": r.URL.Path,
			"remote_addr": r.RemoteAddr, "headers": r.Header, "proto": r.Proto,
		})
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *listen, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "upstream: serving on %s\n", ln.Addr())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	select {
	case <-sigs:
	case <-ctx.Done():
	case err := <-done:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(sctx)
}
