// Package apiproxy is the ambassador's Vault API proxy on 127.0.0.1:8200: an
// app talks to it as if it were Vault, without a token of its own. A request
// that carries no token gets the ambassador's auto-auth token (in Force mode
// any token is replaced); the response — Vault's errors included — streams
// back unchanged.
package apiproxy

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TokenMode says when the auto-auth token is added.
type TokenMode string

// Token modes (the names of Vault Agent's use_auto_auth_token).
const (
	TokenInject TokenMode = "true"  // add the token when the request has none
	TokenOff    TokenMode = "false" // never add it
	TokenForce  TokenMode = "force" // always use it, replacing the request's
)

// Proxy forwards requests to Vault.
type Proxy struct {
	Upstream  *url.URL
	Transport http.RoundTripper
	Token     func() string // the current auto-auth token
	Mode      TokenMode
	Namespace string // added as X-Vault-Namespace when the request has none
	// Timeout bounds the wait for Vault's response headers (0: none).
	Timeout time.Duration
	Log     *slog.Logger

	rp       *httputil.ReverseProxy
	requests *prometheus.CounterVec
	latency  prometheus.Histogram
}

// Register adds the proxy's metrics to reg.
func (p *Proxy) Register(reg prometheus.Registerer) {
	p.init()
	reg.MustRegister(p.requests, p.latency)
}

func (p *Proxy) init() {
	if p.rp != nil {
		return
	}
	p.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sidecarkit_ambassador_proxy_requests_total", Help: "API proxy requests by response code class (2xx, 4xx, 5xx, error)."}, []string{"code"})
	p.latency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sidecarkit_ambassador_proxy_request_duration_seconds", Help: "API proxy request duration until the response headers.", Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5}})
	tr := p.Transport
	if tr == nil {
		tr = http.DefaultTransport
	}
	if p.Timeout > 0 {
		tr = timeoutTransport{tr, p.Timeout}
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:       p.rewrite,
		Transport:     tr,
		FlushInterval: -1, // stream: flush every write
		ErrorHandler:  p.errorHandler,
		ModifyResponse: func(r *http.Response) error {
			p.requests.WithLabelValues(strconv.Itoa(r.StatusCode/100) + "xx").Inc()
			return nil
		},
	}
}

func (p *Proxy) rewrite(r *httputil.ProxyRequest) {
	r.SetURL(p.Upstream)
	r.Out.Host = p.Upstream.Host
	// The app is local; Vault sees the ambassador.
	r.Out.Header.Del("X-Forwarded-For")
	has := r.In.Header.Get("X-Vault-Token") != "" || strings.HasPrefix(r.In.Header.Get("Authorization"), "Bearer ")
	switch p.Mode {
	case TokenForce:
		r.Out.Header.Del("Authorization")
		if t := p.Token(); t != "" {
			r.Out.Header.Set("X-Vault-Token", t)
		}
	case TokenInject:
		if !has {
			if t := p.Token(); t != "" {
				r.Out.Header.Set("X-Vault-Token", t)
			}
		}
	}
	if p.Namespace != "" && r.In.Header.Get("X-Vault-Namespace") == "" {
		r.Out.Header.Set("X-Vault-Namespace", p.Namespace)
	}
}

// errorHandler answers like Vault does when the proxy cannot reach it.
func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusBadGateway
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errTimeout) {
		code = http.StatusGatewayTimeout
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		p.requests.WithLabelValues("canceled").Inc()
		return // the app went away
	}
	p.requests.WithLabelValues("error").Inc()
	msg := "ambassador: Vault unreachable"
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || code == http.StatusGatewayTimeout {
		msg = "ambassador: Vault did not answer in time"
	}
	p.Log.Warn("api proxy: upstream failed", "method", r.Method, "path", r.URL.Path, "err", err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string][]string{"errors": {msg}})
}

// ServeHTTP proxies one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.init()
	start := time.Now()
	p.rp.ServeHTTP(w, r)
	p.latency.Observe(time.Since(start).Seconds())
}

var errTimeout = errors.New("timeout waiting for Vault's response headers")

// timeoutTransport bounds the time to response headers, not the body, so
// streams can run long.
type timeoutTransport struct {
	rt http.RoundTripper
	d  time.Duration
}

func (t timeoutTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(r.Context())
	timer := time.AfterFunc(t.d, func() { cancel(errTimeout) })
	resp, err := t.rt.RoundTrip(r.WithContext(ctx))
	if !timer.Stop() && err != nil {
		cancel(nil)
		return nil, errTimeout
	}
	if err != nil {
		cancel(nil)
		return nil, err
	}
	resp.Body = &cancelBody{resp.Body, func() { cancel(nil) }}
	return resp, nil
}

type cancelBody struct {
	rc interface {
		Read([]byte) (int, error)
		Close() error
	}
	cancel func()
}

func (b *cancelBody) Read(p []byte) (int, error) { return b.rc.Read(p) }
func (b *cancelBody) Close() error               { err := b.rc.Close(); b.cancel(); return err }
