package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

type routeKey struct{}
type attemptKey struct{}

// WithRoute returns ctx carrying the route's policy for Cluster.RoundTrip.
func WithRoute(ctx context.Context, p *RoutePolicy) context.Context {
	return context.WithValue(ctx, routeKey{}, p)
}

// RouteFrom returns the policy WithRoute put in ctx, or nil.
func RouteFrom(ctx context.Context) *RoutePolicy {
	p, _ := ctx.Value(routeKey{}).(*RoutePolicy)
	return p
}

// Attempt is filled by Cluster.RoundTrip (before it returns) for the access
// log: the upstream host of the last try, Envoy response flags, the number
// of tries and the upstream service time (last try, until response headers).
type Attempt struct {
	Host         string
	Subset       string
	Flags        []string
	Tries        int
	UpstreamTime time.Duration
}

// WithAttempt returns ctx carrying a for Cluster.RoundTrip to fill.
func WithAttempt(ctx context.Context, a *Attempt) context.Context {
	return context.WithValue(ctx, attemptKey{}, a)
}

// AttemptFrom returns the *Attempt WithAttempt put in ctx, or nil.
func AttemptFrom(ctx context.Context) *Attempt {
	a, _ := ctx.Value(attemptKey{}).(*Attempt)
	return a
}

// Envoy response flags set on Attempt.Flags and Error.Flag.
const (
	FlagNoHealthy     = "UH"  // no endpoint to send to
	FlagConnectFail   = "UF"  // connecting to the upstream failed
	FlagOverflow      = "UO"  // a circuit breaker was full
	FlagTimeout       = "UT"  // route or per-try timeout
	FlagRetryLimit    = "URX" // retries exhausted (or refused by the budget) on a retriable failure
	FlagConnTerminate = "UC"  // the upstream connection closed/reset before the response
	FlagDownstream    = "DC"  // the downstream client went away
)

// Error is what RoundTrip and DialTCP return when no response could be had:
// Status is what the proxy should answer (503, or 504 for UT) and Flag the
// Envoy response flag for the access log.
type Error struct {
	Flag   string
	Status int
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("upstream %s (%d): %v", e.Flag, e.Status, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Body is the short text body Envoy sends with a local reply for this error.
func (e *Error) Body() string {
	switch e.Flag {
	case FlagNoHealthy:
		return "no healthy upstream"
	case FlagOverflow:
		return "upstream connect error or disconnect/reset before headers. reset reason: overflow"
	case FlagConnectFail:
		return "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
	case FlagTimeout:
		return "upstream request timeout"
	case FlagConnTerminate:
		return "upstream connect error or disconnect/reset before headers. reset reason: connection termination"
	}
	return http.StatusText(e.Status)
}

// StatusOf maps an error from RoundTrip to the status the proxy answers:
// Error.Status, else 502.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return http.StatusBadGateway
}

// Breaker names (label "breaker" of the overflow metric).
const (
	brConnections = "max_connections"
	brPending     = "max_pending_requests"
	brRequests    = "max_requests"
	brRetries     = "max_retries"
	brBudget      = "retry_budget"
)

var errNoEndpoints = errors.New("no endpoints")
