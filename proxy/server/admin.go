package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"

	"github.com/sidecarkit/sidecarkit/proxy/config"
)

// registerAdmin adds Envoy's admin names to the shared admin mux.
func (s *Server) registerAdmin() {
	mux := s.rt.Admin
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		ready := s.rt.Health.Ready()
		switch {
		case ready:
			fmt.Fprintln(w, "LIVE")
		case s.rt.Health.Draining():
			http.Error(w, "DRAINING", http.StatusServiceUnavailable)
		default:
			http.Error(w, "PRE_INITIALIZING", http.StatusServiceUnavailable)
		}
	})
	mux.HandleFunc("POST /healthcheck/fail", func(w http.ResponseWriter, r *http.Request) {
		s.hcFail.Store(true)
		s.log.Warn("health check failed by POST /healthcheck/fail; readiness now fails")
		fmt.Fprintln(w, "OK")
	})
	mux.HandleFunc("POST /healthcheck/ok", func(w http.ResponseWriter, r *http.Request) {
		s.hcFail.Store(false)
		s.log.Info("health check restored by POST /healthcheck/ok")
		fmt.Fprintln(w, "OK")
	})
	mux.HandleFunc("POST /drain_listeners", func(w http.ResponseWriter, r *http.Request) {
		inboundOnly := r.URL.Query().Has("inboundonly")
		n := s.DrainListeners(inboundOnly)
		fmt.Fprintf(w, "OK: draining %d listener(s)\n", n)
	})
	mux.HandleFunc("GET /config_dump", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(s.configDump())
	})
	mux.HandleFunc("GET /stats", s.statsText)
	if s.cfg.Load().Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("GET /stats/prometheus", promhttp.HandlerFor(s.rt.Registry, promhttp.HandlerOpts{}))
}

func (s *Server) prometheusMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /stats/prometheus", promhttp.HandlerFor(s.rt.Registry, promhttp.HandlerOpts{}))
	return mux
}

// DrainListeners stops accepting on the inbound (or all) listeners and lets
// their in-flight work finish within the drain timeout; the process keeps
// running (Envoy's POST /drain_listeners). It returns how many it drains.
func (s *Server) DrainListeners(inboundOnly bool) int {
	timeout := s.rt.Common.DrainTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	n := 0
	for _, rl := range s.current() {
		if inboundOnly && rl.cfg.Direction != config.Inbound {
			continue
		}
		n++
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			rl.shutdown(ctx)
		}()
	}
	s.log.Info("draining listeners by POST /drain_listeners", "inbound_only", inboundOnly, "listeners", n)
	return n
}

// configDump is the running configuration with the YAML key names, secret
// values (tokens, passwords) replaced.
func (s *Server) configDump() any {
	c := s.cfg.Load()
	dump := map[string]any{
		"version":   s.rt.Info,
		"mode":      c.Mode,
		"listeners": c.Effective(),
		"routes":    c.Routes,
		"clusters":  c.EffectiveClusters(),
		"settings": map[string]any{
			"inbound-addr": c.InboundAddr, "outbound-addr": c.OutboundAddress(), "app": c.App, "upstream": c.Upstream,
			"source-addr": c.SourceAddr, "prometheus-addr": c.PrometheusAddr, "access-log": c.AccessLog,
			"access-log-sample": c.AccessLogSample, "detect-timeout": c.DetectTimeout.String(),
			"header-read-timeout": c.HeaderReadTimeout.String(), "idle-timeout": c.IdleTimeout.String(),
			"connect-timeout": c.ConnectTimeout.String(), "max-header-bytes": c.MaxHeaderBytes,
			"max-request-body-bytes": c.MaxRequestBodyBytes, "outbound-passthrough": c.OutboundPassthrough,
		},
	}
	// Round-trip through YAML so the dump uses the config's key names.
	raw, err := yaml.Marshal(dump)
	if err != nil {
		return map[string]string{"error": err.Error()}
	}
	var out any
	if err := yaml.Unmarshal(raw, &out); err != nil {
		return map[string]string{"error": err.Error()}
	}
	return redact(out)
}

var secretKey = regexp.MustCompile(`(?i)(token|password|secret|credential)`)

func redact(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if secretKey.MatchString(k) {
				if s, ok := x.(string); ok && s != "" {
					t[k] = "[redacted]"
					continue
				}
			}
			t[k] = redact(x)
		}
	case []any:
		for i := range t {
			t[i] = redact(t[i])
		}
	}
	return v
}

// statsText is GET /stats: one "name{labels}: value" line per series,
// sorted; ?filter=<regexp> keeps matching lines, ?format=json gives a list.
func (s *Server) statsText(w http.ResponseWriter, r *http.Request) {
	var filter *regexp.Regexp
	if f := r.URL.Query().Get("filter"); f != "" {
		var err error
		if filter, err = regexp.Compile(f); err != nil {
			http.Error(w, "filter: "+err.Error(), http.StatusBadRequest)
			return
		}
	}
	mfs, err := s.rt.Registry.Gather()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	type stat struct {
		Name  string  `json:"name"`
		Value float64 `json:"value"`
	}
	var stats []stat
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName() + labels(m)
			var v float64
			switch {
			case m.Counter != nil:
				v = m.Counter.GetValue()
			case m.Gauge != nil:
				v = m.Gauge.GetValue()
			case m.Histogram != nil:
				stats = append(stats, stat{name + "_count", float64(m.Histogram.GetSampleCount())})
				name, v = name+"_sum", m.Histogram.GetSampleSum()
			case m.Summary != nil:
				name, v = name+"_count", float64(m.Summary.GetSampleCount())
			case m.Untyped != nil:
				v = m.Untyped.GetValue()
			}
			stats = append(stats, stat{name, v})
		}
	}
	kept := stats[:0]
	for _, st := range stats {
		if filter == nil || filter.MatchString(st.Name) {
			kept = append(kept, st)
		}
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].Name < kept[j].Name })
	if r.URL.Query().Get("format") == "json" {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"stats": kept})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var b strings.Builder
	for _, st := range kept {
		fmt.Fprintf(&b, "%s: %g\n", st.Name, st.Value)
	}
	fmt.Fprint(w, b.String())
}

func labels(m *dto.Metric) string {
	if len(m.GetLabel()) == 0 {
		return ""
	}
	parts := make([]string, 0, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	return "{" + strings.Join(parts, ",") + "}"
}
