// Package admin serves the admin endpoints every helper shares (see
// CONTRACT.md): /livez, /readyz, /startupz, /metrics, /version, POST /drain
// and POST /quitquitquit. Helpers add their own handlers to the same mux.
package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sidecarkit/sidecarkit/shared/health"
	"github.com/sidecarkit/sidecarkit/shared/version"
)

// Actions are what the POST endpoints do.
type Actions struct {
	Drain func() // POST /drain: not-ready, start draining, keep running
	Quit  func() // POST /quitquitquit: drain, then exit 0
}

// NewMux returns the shared admin endpoints on a fresh mux.
func NewMux(info version.Info, st *health.State, reg *prometheus.Registry, act Actions) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("GET /readyz", ReadyHandler(st))
	mux.HandleFunc("GET /startupz", func(w http.ResponseWriter, r *http.Request) {
		if st.Started() || st.Ready() {
			fmt.Fprintln(w, "ok")
			return
		}
		http.Error(w, "not started", http.StatusServiceUnavailable)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(info)
	})
	mux.HandleFunc("POST /drain", func(w http.ResponseWriter, r *http.Request) {
		act.Drain()
		fmt.Fprintln(w, "draining")
	})
	mux.HandleFunc("POST /quitquitquit", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "quitting")
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		act.Quit()
	})
	return mux
}

// ReadyHandler answers 200 when st is ready, 503 otherwise; with ?verbose it
// lists every check and why it fails.
func ReadyHandler(st *health.State) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ready, results := st.Check()
		code := http.StatusOK
		if !ready {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		if !r.URL.Query().Has("verbose") {
			if ready {
				fmt.Fprintln(w, "ok")
			} else {
				fmt.Fprintln(w, "not ready")
			}
			return
		}
		var b strings.Builder
		for _, res := range results {
			if res.OK {
				fmt.Fprintf(&b, "[+]%s ok\n", res.Name)
			} else {
				fmt.Fprintf(&b, "[-]%s failed: %s\n", res.Name, res.Err)
			}
		}
		if ready {
			b.WriteString("readyz check passed\n")
		} else {
			b.WriteString("readyz check failed\n")
		}
		fmt.Fprint(w, b.String())
	})
}
