// Package jwtauth authenticates requests by JWT the way Istio's
// RequestAuthentication does: RS256/ES256 tokens from the Authorization
// header or the access_token query parameter (Envoy's defaults; or the
// configured headers/query parameters) are verified against a provider's
// JWKS (a file or a URL, cached and refreshed), issuer and audience are
// checked, and the claims are put in the request context for
// authz (FromContext) and optionally copied to headers. A present but
// invalid token is answered 401; a request without a token passes without a
// principal unless the config requires one (authz can still deny it).
// Verification uses github.com/go-jose/go-jose/v4.
package jwtauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sidecarkit/sidecarkit/shared/config"
)

// Config is the proxy's "jwt:" section (per listener or route).
type Config struct {
	Providers []Provider `yaml:"providers"`
	Require   bool       `yaml:"require,omitempty"` // 401 when no token is present
}

// Provider is one token issuer (Istio's jwtRules entry).
type Provider struct {
	Issuer    string        `yaml:"issuer"`
	Audiences []string      `yaml:"audiences,omitempty"` // token must name one of them; empty: not checked
	JWKSFile  string        `yaml:"jwks_file,omitempty"`
	JWKSURI   string        `yaml:"jwks_uri,omitempty"`
	Refresh   time.Duration `yaml:"jwks_refresh,omitempty"` // default 5m (URL) / 10s (file)
	// Token locations. With neither set: "Authorization: Bearer <token>"
	// and the access_token query parameter (Envoy's defaults); setting
	// either replaces both defaults (from_headers only: no query token).
	FromHeaders  []HeaderRef   `yaml:"from_headers,omitempty"`
	FromParams   []string      `yaml:"from_params,omitempty"`
	Forward      bool          `yaml:"forward_original_token,omitempty"` // keep the token header for the app
	ClaimHeaders []ClaimHeader `yaml:"output_claim_to_headers,omitempty"`
	ClockSkew    time.Duration `yaml:"clock_skew,omitempty"` // default 60s
}

// HeaderRef names a header holding a token after Prefix.
type HeaderRef struct {
	Name   string `yaml:"name"`
	Prefix string `yaml:"prefix,omitempty"`
}

// ClaimHeader copies a claim (string, number or bool) to a request header.
type ClaimHeader struct {
	Header string `yaml:"header"`
	Claim  string `yaml:"claim"`
}

// Validate reports every problem, naming the key and value.
func (c *Config) Validate() error {
	var p config.Problems
	if len(c.Providers) == 0 {
		p.Add("jwt.providers", "", "at least one provider is needed")
	}
	seen := map[string]bool{}
	for i, pr := range c.Providers {
		at := fmt.Sprintf("jwt.providers[%d].", i)
		if pr.Issuer == "" {
			p.Add(at+"issuer", pr.Issuer, "an issuer is needed")
		} else if seen[pr.Issuer] {
			p.Add(at+"issuer", pr.Issuer, "duplicate issuer")
		}
		seen[pr.Issuer] = true
		if (pr.JWKSFile == "") == (pr.JWKSURI == "") {
			p.Add(at+"jwks_file/jwks_uri", pr.JWKSFile+pr.JWKSURI, "exactly one of jwks_file or jwks_uri is needed")
		}
		if pr.JWKSURI != "" {
			if u, err := url.Parse(pr.JWKSURI); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				p.Add(at+"jwks_uri", pr.JWKSURI, "want an http(s) URL")
			}
		}
		if pr.Refresh < 0 {
			p.Add(at+"jwks_refresh", pr.Refresh, "must not be negative")
		}
		if pr.ClockSkew < 0 {
			p.Add(at+"clock_skew", pr.ClockSkew, "must not be negative")
		}
		for j, h := range pr.FromHeaders {
			if h.Name == "" {
				p.Add(fmt.Sprintf("%sfrom_headers[%d].name", at, j), h.Name, "a header name is needed")
			}
		}
		for j, ch := range pr.ClaimHeaders {
			if ch.Header == "" || ch.Claim == "" {
				p.Add(fmt.Sprintf("%soutput_claim_to_headers[%d]", at, j), ch.Header+"="+ch.Claim, "header and claim are needed")
			}
		}
	}
	return p.Err()
}

// Result is a verified token.
type Result struct {
	Issuer   string
	Subject  string
	Audience []string
	Claims   map[string]any
}

// Principal is Istio's request principal: <iss>/<sub>.
func (r *Result) Principal() string { return r.Issuer + "/" + r.Subject }

type resultKey struct{}

// WithResult returns ctx carrying a verified token.
func WithResult(ctx context.Context, r *Result) context.Context {
	return context.WithValue(ctx, resultKey{}, r)
}

// FromContext returns the verified token of the request, or nil.
func FromContext(ctx context.Context) *Result {
	r, _ := ctx.Value(resultKey{}).(*Result)
	return r
}

// Deps are what an Authenticator needs from its host.
type Deps struct {
	Log        *slog.Logger
	Registry   prometheus.Registerer
	HTTPClient *http.Client // for jwks_uri; default: 10s timeout
}

// Authenticator verifies tokens of its providers.
type Authenticator struct {
	cfg       Config
	providers []*provider
	byIssuer  map[string]*provider
	log       *slog.Logger
	results   *prometheus.CounterVec
	now       func() time.Time
}

var algs = []jose.SignatureAlgorithm{jose.RS256, jose.ES256}

// New loads every provider's keys (a jwks_uri that cannot be fetched yet is
// retried in the background; its tokens fail until it can) and starts the
// refreshes. Close stops them.
func New(cfg Config, d Deps) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hc := d.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	reg := d.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	a := &Authenticator{cfg: cfg, byIssuer: map[string]*provider{}, log: log, now: time.Now}
	rv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sidecarkit_proxy_jwt_total", Help: "JWT authentication results."}, []string{"result"})
	if err := reg.Register(rv); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, err
		}
		rv = are.ExistingCollector.(*prometheus.CounterVec)
	}
	a.results = rv
	for _, pc := range cfg.Providers {
		p, err := newProvider(pc, hc, log)
		if err != nil {
			a.Close()
			return nil, err
		}
		a.providers = append(a.providers, p)
		a.byIssuer[pc.Issuer] = p
	}
	return a, nil
}

// Close stops refreshing keys.
func (a *Authenticator) Close() error {
	for _, p := range a.providers {
		p.close()
	}
	return nil
}

// Errors for the 401 answers (Envoy's texts).
var (
	ErrMissing = errors.New("Jwt is missing")
	ErrInvalid = errors.New("Jwt verification fails")
	ErrIssuer  = errors.New("Jwt issuer is not configured")
	ErrExpired = errors.New("Jwt is expired")
	ErrAud     = errors.New("Audiences in Jwt are not allowed")
)

// Verify checks one compact token and returns its claims.
func (a *Authenticator) Verify(raw string) (*Result, error) {
	tok, err := jwt.ParseSigned(raw, algs)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	p := a.byIssuer[unverified.Issuer]
	if p == nil {
		return nil, ErrIssuer
	}
	var std jwt.Claims
	var all map[string]any
	if err := p.verify(tok, &std, &all); err != nil {
		return nil, err
	}
	skew := p.cfg.ClockSkew
	if skew == 0 {
		skew = time.Minute
	}
	exp := jwt.Expected{Issuer: p.cfg.Issuer, Time: a.now()}
	if len(p.cfg.Audiences) > 0 {
		exp.AnyAudience = p.cfg.Audiences
	}
	if err := std.ValidateWithLeeway(exp, skew); err != nil {
		switch {
		case errors.Is(err, jwt.ErrExpired):
			return nil, ErrExpired
		case errors.Is(err, jwt.ErrInvalidAudience):
			return nil, ErrAud
		}
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return &Result{Issuer: std.Issuer, Subject: std.Subject, Audience: std.Audience, Claims: all}, nil
}

// found is one token in a request and where it came from.
type found struct {
	raw    string
	header string // "" for a query parameter
}

// Default token locations when a provider names none (Envoy's jwt_authn
// defaults): "Authorization: Bearer <token>" and the access_token query
// parameter.
var (
	defaultHeaders = []HeaderRef{{Name: "Authorization", Prefix: "Bearer "}}
	defaultParams  = []string{"access_token"}
)

// tokens returns every token the request carries in any provider's
// locations. A repeated token header is one value joined with "," (as
// Envoy reads it), so two tokens there make one invalid token rather than
// letting the proxy verify one while the app reads the other.
func (a *Authenticator) tokens(r *http.Request) []found {
	var out []found
	seen := map[found]bool{}
	add := func(f found) {
		if f.raw != "" && !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	var query url.Values
	for _, p := range a.providers {
		hs, ps := p.cfg.FromHeaders, p.cfg.FromParams
		if len(hs) == 0 && len(ps) == 0 {
			hs, ps = defaultHeaders, defaultParams
		}
		for _, h := range hs {
			vs := r.Header.Values(h.Name)
			if len(vs) == 0 {
				continue
			}
			if h.Prefix == "" {
				add(found{strings.TrimSpace(strings.Join(vs, ",")), h.Name})
				continue
			}
			prefixed := false
			for _, v := range vs {
				prefixed = prefixed || hasPrefixFold(v, h.Prefix)
			}
			if !prefixed {
				continue // another scheme (Basic ...): not a token
			}
			v := strings.Join(vs, ",")
			if hasPrefixFold(v, h.Prefix) {
				v = v[len(h.Prefix):]
			}
			add(found{strings.TrimSpace(v), h.Name})
		}
		if len(ps) > 0 && query == nil {
			query = r.URL.Query()
		}
		for _, q := range ps {
			for _, v := range query[q] {
				add(found{v, ""})
			}
		}
	}
	return out
}

func hasPrefixFold(v, prefix string) bool {
	return len(v) >= len(prefix) && strings.EqualFold(v[:len(prefix)], prefix)
}

// Middleware verifies the request's tokens — every one it carries, in the
// headers and query parameters of every provider, must verify: 401 when one
// is invalid (or none is there and one is required). The first token's
// claims go in the context and, per its issuer's provider, to headers;
// verified token headers are removed unless forward_original_token.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Claim headers are ours to set: a client must not forge them.
		for _, p := range a.providers {
			for _, ch := range p.cfg.ClaimHeaders {
				r.Header.Del(ch.Header)
			}
		}
		toks := a.tokens(r)
		if len(toks) == 0 {
			if a.cfg.Require {
				a.results.WithLabelValues("missing").Inc()
				deny(w, ErrMissing)
				return
			}
			a.results.WithLabelValues("none").Inc()
			next.ServeHTTP(w, r)
			return
		}
		var first *Result
		var strip []string
		for _, t := range toks {
			res, err := a.Verify(t.raw)
			if err != nil {
				a.results.WithLabelValues("denied").Inc()
				// Never log the token itself.
				a.log.Debug("JWT refused", "err", err, "path", r.URL.Path)
				deny(w, err)
				return
			}
			if first == nil {
				first = res
			}
			if t.header != "" && !a.byIssuer[res.Issuer].cfg.Forward {
				strip = append(strip, t.header)
			}
		}
		a.results.WithLabelValues("allowed").Inc()
		for _, h := range strip {
			r.Header.Del(h)
		}
		for _, ch := range a.byIssuer[first.Issuer].cfg.ClaimHeaders {
			if v, ok := claimString(first.Claims[ch.Claim]); ok {
				r.Header.Set(ch.Header, v)
			}
		}
		next.ServeHTTP(w, r.WithContext(WithResult(r.Context(), first)))
	})
}

func claimString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case float64:
		return fmt.Sprint(x), true
	case bool:
		return fmt.Sprint(x), true
	case []any:
		var parts []string
		for _, e := range x {
			if s, ok := claimString(e); ok {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, ","), len(parts) > 0
	}
	return "", false
}

func deny(w http.ResponseWriter, err error) {
	msg := err.Error()
	if i := strings.Index(msg, ":"); i > 0 {
		msg = msg[:i] // the detail stays in our debug log
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="sidecarkit", error="invalid_token"`)
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusUnauthorized)
	fmt.Fprint(w, msg)
}
