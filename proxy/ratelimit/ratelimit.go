// Package ratelimit is the proxy's local rate limit (Envoy's
// local_ratelimit): a token bucket per route; a request that finds it empty
// is answered 429 without reaching the upstream. A reload keeps the bucket of
// a route whose rate_limit is unchanged (Reuse). Every answer carries
// x-ratelimit-limit, x-ratelimit-remaining and x-ratelimit-reset (seconds
// until a token is back), as in the IETF RateLimit header draft Envoy follows.
package ratelimit

import (
	"fmt"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"sync"
	"time"

	"github.com/sidecarkit/sidecarkit/shared/config"
	"golang.org/x/time/rate"
)

// Config is a route's "rate_limit:" (Envoy's token_bucket).
type Config struct {
	MaxTokens     int           `yaml:"max_tokens"`                // bucket size (burst)
	TokensPerFill int           `yaml:"tokens_per_fill,omitempty"` // default max_tokens
	FillInterval  time.Duration `yaml:"fill_interval"`             // e.g. 1s
	Headers       *bool         `yaml:"headers,omitempty"`         // send x-ratelimit-* (default true)
}

// Validate reports every problem, naming the key and value.
func (c *Config) Validate() error {
	var p config.Problems
	if c.MaxTokens < 1 {
		p.Add("rate_limit.max_tokens", c.MaxTokens, "want at least 1")
	}
	if c.TokensPerFill < 0 {
		p.Add("rate_limit.tokens_per_fill", c.TokensPerFill, "must not be negative")
	}
	if c.FillInterval < time.Millisecond {
		p.Add("rate_limit.fill_interval", c.FillInterval, "want at least 1ms")
	}
	return p.Err()
}

// Limiter is one route's bucket.
type Limiter struct {
	cfg     Config
	mu      sync.Mutex
	lim     *rate.Limiter
	headers bool
	now     func() time.Time
}

// New returns the bucket, full.
func New(cfg Config) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	per := cfg.TokensPerFill
	if per == 0 {
		per = cfg.MaxTokens
	}
	r := rate.Limit(float64(per) / cfg.FillInterval.Seconds())
	l := &Limiter{cfg: cfg, lim: rate.NewLimiter(r, cfg.MaxTokens), headers: cfg.Headers == nil || *cfg.Headers, now: time.Now}
	return l, nil
}

// Reuse returns old when it was built from the same configuration (a
// configuration reload keeps an unchanged route's bucket with the tokens it
// has left, instead of refilling it), else a new full bucket.
func Reuse(old *Limiter, cfg Config) (*Limiter, error) {
	if old != nil && reflect.DeepEqual(old.cfg, cfg) {
		return old, nil
	}
	return New(cfg)
}

// Take takes a token at now and reports whether there was one, the tokens
// left and the wait until the next one.
func (l *Limiter) Take(now time.Time) (ok bool, remaining int, reset time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ok = l.lim.AllowN(now, 1)
	tokens := l.lim.TokensAt(now)
	remaining = max(0, int(math.Floor(tokens)))
	if tokens < 1 {
		reset = time.Duration((1 - tokens) / float64(l.lim.Limit()) * float64(time.Second))
	}
	return ok, remaining, reset
}

// Middleware answers 429 when the bucket is empty.
func (l *Limiter) Middleware(next http.Handler) http.Handler {
	policy := fmt.Sprintf("%d, %d;w=%d", l.cfg.MaxTokens, l.cfg.MaxTokens, max(1, int(math.Ceil(l.cfg.FillInterval.Seconds()))))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok, remaining, reset := l.Take(l.now())
		if l.headers {
			h := w.Header()
			h.Set("x-ratelimit-limit", policy)
			h.Set("x-ratelimit-remaining", strconv.Itoa(remaining))
			h.Set("x-ratelimit-reset", strconv.Itoa(int(math.Ceil(reset.Seconds()))))
		}
		if !ok {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, "local_rate_limited")
			return
		}
		next.ServeHTTP(w, r)
	})
}
