// Package fault injects faults per route, as Istio's VirtualService fault
// does: a delay before the request goes on and/or an abort answered by the
// proxy, each for a percentage of requests — the tool teams use to test
// retries, timeouts and breakers. Injected delays add Envoy flag DI,
// aborts FI (reported through the OnInject hook for the access log).
package fault

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/sidecarkit/sidecarkit/shared/config"
)

// Config is a route's "fault:".
type Config struct {
	Delay *Delay `yaml:"delay,omitempty"`
	Abort *Abort `yaml:"abort,omitempty"`
}

// Delay holds Percent of requests for Fixed.
type Delay struct {
	Fixed   time.Duration `yaml:"fixed_delay"`
	Percent float64       `yaml:"percentage"` // 0..100
}

// Abort answers HTTPStatus to Percent of requests.
type Abort struct {
	HTTPStatus int     `yaml:"http_status"`
	Percent    float64 `yaml:"percentage"`
}

// Validate reports every problem, naming the key and value.
func (c *Config) Validate() error {
	var p config.Problems
	if d := c.Delay; d != nil {
		if d.Fixed <= 0 {
			p.Add("fault.delay.fixed_delay", d.Fixed, "want a positive duration")
		}
		if d.Percent < 0 || d.Percent > 100 {
			p.Add("fault.delay.percentage", d.Percent, "want 0..100")
		}
	}
	if a := c.Abort; a != nil {
		if a.HTTPStatus < 200 || a.HTTPStatus > 599 {
			p.Add("fault.abort.http_status", a.HTTPStatus, "want an HTTP status 200..599")
		}
		if a.Percent < 0 || a.Percent > 100 {
			p.Add("fault.abort.percentage", a.Percent, "want 0..100")
		}
	}
	return p.Err()
}

// Injector applies one route's faults.
type Injector struct {
	cfg Config
	// OnInject, when set, is told of every injected fault: flag "DI" or "FI".
	OnInject func(r *http.Request, flag string)
	// Roll returns a number in [0,100); default math/rand. Tests set it.
	Roll func() float64
}

// New validates cfg.
func New(cfg Config) (*Injector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Injector{cfg: cfg}, nil
}

func (f *Injector) roll() float64 {
	if f.Roll != nil {
		return f.Roll()
	}
	return rand.Float64() * 100
}

// Middleware delays and/or aborts as configured. A delay ends early when
// the client goes away.
func (f *Injector) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := f.cfg.Delay; d != nil && f.roll() < d.Percent {
			if f.OnInject != nil {
				f.OnInject(r, "DI")
			}
			t := time.NewTimer(d.Fixed)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		if a := f.cfg.Abort; a != nil && f.roll() < a.Percent {
			if f.OnInject != nil {
				f.OnInject(r, "FI")
			}
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(a.HTTPStatus)
			fmt.Fprint(w, "fault filter abort")
			return
		}
		next.ServeHTTP(w, r)
	})
}
