package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

type serveConfig struct {
	listen       string
	healthListen string
	logFile      string
	secretFile   string
	configDir    string
	upstream     string
	vaultProxy   string
	vaultSecret  string
	drainDelay   time.Duration
	drainTimeout time.Duration
}

func serveCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c serveConfig
	fs := newFlags("serve", stderr)
	fs.StringVar(&c.listen, "listen", ":8080", "HTTP listen address")
	fs.StringVar(&c.healthListen, "health-listen", "", "also serve /livez and /readyz on this address (a probe port initnet does not capture); empty: only on --listen")
	fs.StringVar(&c.logFile, "log-file", "/var/log/app/app.log", "legacy-format log file (shared with the adapter)")
	fs.StringVar(&c.secretFile, "secret-file", "/vault/secrets/db-password", "rendered DB password (raw, or JSON with a password key)")
	fs.StringVar(&c.configDir, "config-dir", "/etc/demoapp", "settings directory (one file per key), written by configsync")
	fs.StringVar(&c.upstream, "upstream", "http://upstream:9090", "upstream base URL the app calls (through the proxy's outbound path)")
	fs.StringVar(&c.vaultProxy, "vault-proxy", "http://127.0.0.1:8200", "the ambassador's Vault API proxy (adds the token) for /vault")
	fs.StringVar(&c.vaultSecret, "vault-secret", "secret/data/demoapp", "KV v2 API path /vault reads through the proxy")
	fs.DurationVar(&c.drainDelay, "drain-delay", 3*time.Second, "after SIGTERM, keep serving not-ready for this long")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 20*time.Second, "how long in-flight requests may take after the drain delay")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	logw, err := openLegacyLog(c.logFile)
	if err != nil {
		return err
	}
	defer logw.Close()
	a := &demo{cfg: c, log: logw, st: &store{secretFile: c.secretFile, configDir: c.configDir},
		client: &http.Client{Timeout: 10 * time.Second}}
	return a.serve(ctx, stdout)
}

type demo struct {
	cfg      serveConfig
	log      *legacyLog
	st       *store
	client   *http.Client
	draining atomic.Bool
	seq      atomic.Int64
}

func (a *demo) serve(ctx context.Context, stdout io.Writer) error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM)
	defer signal.Stop(sigs)

	a.reload("start")
	ln, err := net.Listen("tcp", a.cfg.listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", a.cfg.listen, err)
	}
	srv := &http.Server{Handler: a.routes(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 60 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if a.cfg.healthListen != "" {
		hln, err := net.Listen("tcp", a.cfg.healthListen)
		if err != nil {
			srv.Close()
			return fmt.Errorf("listen %s: %w", a.cfg.healthListen, err)
		}
		hsrv := &http.Server{Handler: a.probes(), ReadHeaderTimeout: 5 * time.Second}
		go hsrv.Serve(hln)
		defer hsrv.Close()
	}
	fmt.Fprintf(stdout, "demoapp: serving on %s (log %s, secret %s, config %s, upstream %s)\n",
		ln.Addr(), a.cfg.logFile, a.cfg.secretFile, a.cfg.configDir, a.cfg.upstream)

	// Until the first complete load, retry every second: the files may be
	// written a moment after the app starts when the helpers run as plain
	// containers instead of native sidecars.
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		select {
		case <-retry.C:
			if !a.st.Get().Complete() {
				a.reload("retry")
			}
		case s := <-sigs:
			if s == syscall.SIGHUP {
				a.reload("SIGHUP")
				continue
			}
			return a.drain(srv, served, stdout)
		case <-ctx.Done():
			return a.drain(srv, served, stdout)
		case err := <-served:
			return fmt.Errorf("serve: %w", err)
		}
	}
}

func (a *demo) drain(srv *http.Server, served <-chan error, stdout io.Writer) error {
	a.draining.Store(true)
	fmt.Fprintf(stdout, "demoapp: SIGTERM: not ready, serving %s more, then finishing in-flight requests\n", a.cfg.drainDelay)
	a.log.Log("INFO", "event", "draining")
	time.Sleep(a.cfg.drainDelay)
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.drainTimeout)
	defer cancel()
	err := srv.Shutdown(ctx)
	<-served
	a.log.Log("INFO", "event", "stopped")
	fmt.Fprintln(stdout, "demoapp: stopped")
	return err
}

func (a *demo) reload(why string) {
	h, err := a.st.Load(time.Now())
	kv := []string{"event", "reload", "trigger", why, "password_sha256", h.PasswordSHA256, "settings", strconv.Itoa(len(h.Settings))}
	if err != nil {
		a.log.Log("WARN", append(kv, "error", err.Error())...)
		return
	}
	a.log.Log("INFO", kv...)
}

// probes serves /livez and /readyz.
func (a *demo) probes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		switch h := a.st.Get(); {
		case a.draining.Load():
			http.Error(w, "draining", http.StatusServiceUnavailable)
		case !h.Complete():
			http.Error(w, fmt.Sprintf("not loaded: %v", h.Errors), http.StatusServiceUnavailable)
		default:
			io.WriteString(w, "ok\n")
		}
	})
	return mux
}

func (a *demo) routes() http.Handler {
	mux := a.probes()
	mux.HandleFunc("GET /state", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, a.st.Get())
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		h := a.st.Get()
		greeting := h.Settings["greeting"]
		if greeting == "" {
			greeting = "hello"
		}
		fmt.Fprintf(w, "%s from demoapp (db user %q, password sha256 %s)\n", greeting, h.Username, h.PasswordSHA256)
	})
	mux.HandleFunc("GET /work", func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("delay"))
		if d > time.Minute {
			d = time.Minute
		}
		time.Sleep(d)
		io.WriteString(w, "done\n")
	})
	mux.HandleFunc("GET /log", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 0 || n > 1_000_000 {
			http.Error(w, "want ?n=<0..1000000>", http.StatusBadRequest)
			return
		}
		tag := r.URL.Query().Get("tag")
		for i := 1; i <= n; i++ {
			a.log.Log("INFO", "event", "synthetic", "tag", tag, "n", strconv.Itoa(i), "order_id", fmt.Sprintf("ORD-%d", i), "status", "FULFILLED")
		}
		fmt.Fprintf(w, "wrote %d lines tagged %q\n", n, tag)
	})
	mux.HandleFunc("GET /upstream", a.callUpstream)
	mux.HandleFunc("GET /vault", a.readVault)
	return a.logged(mux)
}

// callUpstream calls the upstream service the ordinary way — by its own
// address — so initnet's rules send it through the proxy's outbound listener.
func (a *demo) callUpstream(w http.ResponseWriter, r *http.Request) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, a.cfg.upstream+"/echo", nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if id := r.Header.Get("X-Request-Id"); id != "" {
		req.Header.Set("X-Request-Id", id)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		http.Error(w, "upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var upstream any
	if json.Unmarshal(body, &upstream) != nil {
		upstream = string(body)
	}
	writeJSON(w, map[string]any{
		"upstream_url":     a.cfg.upstream + "/echo",
		"upstream_status":  resp.StatusCode,
		"upstream_headers": resp.Header,
		"upstream_body":    upstream,
	})
}

// readVault reads the secret through the ambassador's API proxy with no
// token of its own — the app needs no Vault SDK and no credentials — and
// reports the version and the password's fingerprint, never the value.
func (a *demo) readVault(w http.ResponseWriter, r *http.Request) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, a.cfg.vaultProxy+"/v1/"+a.cfg.vaultSecret, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	resp, err := a.client.Do(req)
	if err != nil {
		http.Error(w, "vault proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	var kv struct {
		Data struct {
			Data     map[string]any `json:"data"`
			Metadata struct {
				Version int `json:"version"`
			} `json:"metadata"`
		} `json:"data"`
		Errors []string `json:"errors"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&kv); err != nil || resp.StatusCode != 200 {
		http.Error(w, fmt.Sprintf("vault proxy: HTTP %d %v %v", resp.StatusCode, kv.Errors, err), http.StatusBadGateway)
		return
	}
	pw, _ := kv.Data.Data["password"].(string)
	writeJSON(w, map[string]any{
		"via":             a.cfg.vaultProxy,
		"path":            a.cfg.vaultSecret,
		"version":         kv.Data.Metadata.Version,
		"password_sha256": fingerprint(pw),
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }

// logged writes one legacy line per request (probes excepted).
func (a *demo) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: 200}
		start := time.Now()
		next.ServeHTTP(sw, r)
		if r.URL.Path == "/livez" || r.URL.Path == "/readyz" {
			return
		}
		level := "INFO"
		if sw.status >= 500 {
			level = "ERROR"
		}
		a.log.Log(level, "event", "request", "seq", strconv.FormatInt(a.seq.Add(1), 10),
			"request_id", r.Header.Get("X-Request-Id"), "method", r.Method, "path", r.URL.Path,
			"status", strconv.Itoa(sw.status), "tag", r.URL.Query().Get("tag"),
			"duration_ms", strconv.FormatInt(time.Since(start).Milliseconds(), 10))
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
