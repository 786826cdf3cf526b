package upstream

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sidecarkit/sidecarkit/proxy/mtls"
	"github.com/sidecarkit/sidecarkit/shared/config"
)

// Load-balancing policies (ClusterConfig.LBPolicy).
const (
	RoundRobin   = "round_robin"
	LeastRequest = "least_request"
	Random       = "random"
)

// Upstream protocols (ClusterConfig.Protocol).
const (
	HTTP1 = "http1"
	HTTP2 = "http2" // h2c with prior knowledge, or h2 over TLS when tls is set
)

// ClusterConfig is one upstream cluster in the proxy's YAML ("clusters:").
// Exactly one of Endpoints, DNS or Consul names where the endpoints come
// from. Zero values take the defaults documented on each field.
type ClusterConfig struct {
	Name string `yaml:"name"`

	// Endpoint sources: exactly one.
	Endpoints []EndpointConfig `yaml:"endpoints,omitempty"`
	DNS       *DNSConfig       `yaml:"dns,omitempty"`
	Consul    *ConsulConfig    `yaml:"consul,omitempty"`
	// Kubernetes: a Service's EndpointSlices (kubernetes.go).
	Kubernetes *KubernetesConfig `yaml:"kubernetes,omitempty"`

	LBPolicy           string        `yaml:"lb_policy,omitempty"`       // round_robin (default) | least_request | random
	Protocol           string        `yaml:"protocol,omitempty"`        // http1 (default) | http2
	ConnectTimeout     time.Duration `yaml:"connect_timeout,omitempty"` // default 5s
	IdleTimeout        time.Duration `yaml:"idle_timeout,omitempty"`    // idle pooled connection lifetime, default 60s
	MaxIdlePerEndpoint int           `yaml:"max_idle_per_endpoint,omitempty"`

	Subsets          []SubsetConfig     `yaml:"subsets,omitempty"`
	CircuitBreakers  BreakerConfig      `yaml:"circuit_breakers,omitempty"`
	RetryBudget      *BudgetConfig      `yaml:"retry_budget,omitempty"`
	OutlierDetection *OutlierConfig     `yaml:"outlier_detection,omitempty"`
	TLS              *mtls.ClientConfig `yaml:"tls,omitempty"` // mTLS origination
}

// EndpointConfig is one static endpoint.
type EndpointConfig struct {
	Address string            `yaml:"address"` // host:port
	Weight  int               `yaml:"weight,omitempty"`
	Labels  map[string]string `yaml:"labels,omitempty"`
}

// DNSConfig resolves Name (A/AAAA) every Refresh; every address gets Port.
type DNSConfig struct {
	Name    string            `yaml:"name"`
	Port    int               `yaml:"port"`
	Refresh time.Duration     `yaml:"refresh,omitempty"` // default 30s
	Labels  map[string]string `yaml:"labels,omitempty"`  // given to every resolved endpoint
}

// ConsulConfig follows the healthy instances of a service in Consul's catalog
// with blocking queries on /v1/health/service/<service>. Addr and Token
// default to CONSUL_HTTP_ADDR and CONSUL_HTTP_TOKEN (and CONSUL_CACERT etc.,
// as the Consul CLI reads them).
type ConsulConfig struct {
	Service    string        `yaml:"service"`
	Tag        string        `yaml:"tag,omitempty"`
	Datacenter string        `yaml:"datacenter,omitempty"`
	Addr       string        `yaml:"addr,omitempty"`
	Token      string        `yaml:"token,omitempty"`
	Wait       time.Duration `yaml:"wait,omitempty"` // blocking query wait, default 5m
}

// SubsetConfig names the endpoints whose labels include all of Labels.
type SubsetConfig struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

// BreakerConfig are the cluster's circuit breakers (Envoy's thresholds);
// requests over a limit fail at once with flag UO. 0 means the default.
type BreakerConfig struct {
	MaxConnections     int `yaml:"max_connections,omitempty"`      // concurrent upstream HTTP/1 exchanges (= connections in use), default 1024
	MaxPendingRequests int `yaml:"max_pending_requests,omitempty"` // requests waiting for a connection, default 1024
	MaxRequests        int `yaml:"max_requests,omitempty"`         // concurrent requests, default 1024
	MaxRetries         int `yaml:"max_retries,omitempty"`          // concurrent retries, default 3
}

// BudgetConfig limits concurrent retries to Percent of the active requests
// (but always allows MinConcurrency), so a failing upstream does not get a
// retry storm.
type BudgetConfig struct {
	Percent        float64 `yaml:"percent"`                   // default 20
	MinConcurrency int     `yaml:"min_concurrency,omitempty"` // default 3
}

// OutlierConfig ejects endpoints that fail in a row (Envoy's outlier detection).
type OutlierConfig struct {
	Consecutive5xx           int           `yaml:"consecutive_5xx,omitempty"`            // default 5; counts 5xx and connect failures
	ConsecutiveGatewayErrors int           `yaml:"consecutive_gateway_errors,omitempty"` // 502/503/504 and connect failures; 0 = off
	Interval                 time.Duration `yaml:"interval,omitempty"`                   // default 10s
	BaseEjectionTime         time.Duration `yaml:"base_ejection_time,omitempty"`         // default 30s, × number of ejections
	MaxEjectionTime          time.Duration `yaml:"max_ejection_time,omitempty"`          // default 300s
	MaxEjectionPercent       int           `yaml:"max_ejection_percent,omitempty"`       // default 10; one endpoint may always be ejected
}

// RoutePolicy is what a route asks of its cluster; the router puts it in the
// request context with WithRoute. Nil means DefaultRetry() and no timeout.
type RoutePolicy struct {
	Timeout time.Duration `yaml:"timeout,omitempty"` // whole request incl. retries and the response body; 0 = none
	Retries *RetryPolicy  `yaml:"retries,omitempty"` // nil = DefaultRetry()

	// Subset selection, first match wins: HeaderSubsets, then WeightedSubsets,
	// then Subset; none means every endpoint of the cluster.
	HeaderSubsets   []HeaderSubset   `yaml:"header_subsets,omitempty"`
	WeightedSubsets []WeightedSubset `yaml:"weighted_subsets,omitempty"`
	Subset          string           `yaml:"subset,omitempty"`
}

// HeaderSubset sends requests whose Header equals Value (any value when
// Value is empty) to Subset, e.g. x-canary: "true" → v2.
type HeaderSubset struct {
	Header string `yaml:"header"`
	Value  string `yaml:"value,omitempty"`
	Subset string `yaml:"subset"`
}

// WeightedSubset is one arm of a weighted split (canary 90/10).
type WeightedSubset struct {
	Subset string `yaml:"subset"`
	Weight int    `yaml:"weight"`
}

// RetryPolicy says when a failed attempt is tried again.
type RetryPolicy struct {
	Attempts             int           `yaml:"attempts"`                         // retries after the first try; 0 = none
	PerTryTimeout        time.Duration `yaml:"per_try_timeout,omitempty"`        // until response headers; 0 = none
	RetryOn              []string      `yaml:"retry_on,omitempty"`               // 5xx, gateway-error, reset, connect-failure, refused-stream, retriable-status-codes
	RetriableStatusCodes []int         `yaml:"retriable_status_codes,omitempty"` // for retriable-status-codes
	RetryNonIdempotent   bool          `yaml:"retry_non_idempotent,omitempty"`   // also retry POST/PATCH/... on 5xx/reset
	BackoffBase          time.Duration `yaml:"backoff_base_interval,omitempty"`  // default 25ms
	BackoffMax           time.Duration `yaml:"backoff_max_interval,omitempty"`   // default 10 × base
	MaxReplayBytes       int           `yaml:"max_replay_bytes,omitempty"`       // request body kept for a retry, default 64 KiB
}

// DefaultRetry returns Istio's default policy, used for a route without
// retries: two retries of connection failures, refused streams and 503s.
func DefaultRetry() *RetryPolicy {
	return &RetryPolicy{Attempts: 2, RetryOn: []string{"connect-failure", "refused-stream", "retriable-status-codes"}, RetriableStatusCodes: []int{503}}
}

func retryOnName(s string) bool {
	switch s {
	case "5xx", "gateway-error", "reset", "connect-failure", "refused-stream", "retriable-status-codes":
		return true
	}
	return false
}

// Validate reports every problem of the cluster, naming the field and value.
func (c *ClusterConfig) Validate() error {
	var p config.Problems
	c.problems(&p, "cluster "+strconv.Quote(c.Name)+": ")
	return p.Err()
}

func (c *ClusterConfig) problems(p *config.Problems, at string) {
	if c.Name == "" {
		p.Add(at+"name", c.Name, "a cluster needs a name")
	}
	sources := 0
	if len(c.Endpoints) > 0 {
		sources++
	}
	if c.DNS != nil {
		sources++
	}
	if c.Consul != nil {
		sources++
	}
	if c.Kubernetes != nil {
		sources++
		c.Kubernetes.problems(func(k string, v any, msg string) { p.Add(at+k, v, "%s", msg) })
	}
	if sources != 1 {
		p.Addf("%sendpoints/dns/consul/kubernetes: exactly one endpoint source is needed, got %d", at, sources)
	}
	for i, e := range c.Endpoints {
		key := fmt.Sprintf("%sendpoints[%d]", at, i)
		if err := checkHostPort(e.Address); err != nil {
			p.Add(key+".address", e.Address, "%v", err)
		}
		if e.Weight < 0 || e.Weight > 10000 {
			p.Add(key+".weight", e.Weight, "weight must be 0 (=1) .. 10000")
		}
	}
	if d := c.DNS; d != nil {
		if d.Name == "" || strings.ContainsAny(d.Name, "/: ") {
			p.Add(at+"dns.name", d.Name, "want a DNS name")
		}
		if d.Port < 1 || d.Port > 65535 {
			p.Add(at+"dns.port", d.Port, "want a port 1..65535")
		}
		if d.Refresh < 0 || (d.Refresh > 0 && d.Refresh < 100*time.Millisecond) {
			p.Add(at+"dns.refresh", d.Refresh, "want at least 100ms")
		}
	}
	if k := c.Consul; k != nil {
		if k.Service == "" {
			p.Add(at+"consul.service", k.Service, "a Consul service name is needed")
		}
		if k.Wait < 0 {
			p.Add(at+"consul.wait", k.Wait, "must not be negative")
		}
	}
	switch c.LBPolicy {
	case "", RoundRobin, LeastRequest, Random:
	default:
		p.Add(at+"lb_policy", c.LBPolicy, "want round_robin, least_request or random")
	}
	switch c.Protocol {
	case "", HTTP1, HTTP2:
	default:
		p.Add(at+"protocol", c.Protocol, "want http1 or http2")
	}
	if c.ConnectTimeout < 0 {
		p.Add(at+"connect_timeout", c.ConnectTimeout, "must not be negative")
	}
	if c.IdleTimeout < 0 {
		p.Add(at+"idle_timeout", c.IdleTimeout, "must not be negative")
	}
	if c.MaxIdlePerEndpoint < 0 {
		p.Add(at+"max_idle_per_endpoint", c.MaxIdlePerEndpoint, "must not be negative")
	}
	seen := map[string]bool{}
	for i, s := range c.Subsets {
		key := fmt.Sprintf("%ssubsets[%d]", at, i)
		if s.Name == "" {
			p.Add(key+".name", s.Name, "a subset needs a name")
		} else if seen[s.Name] {
			p.Add(key+".name", s.Name, "duplicate subset name")
		}
		seen[s.Name] = true
		if len(s.Labels) == 0 {
			p.Add(key+".labels", s.Labels, "a subset needs at least one label")
		}
	}
	b := c.CircuitBreakers
	for _, f := range []struct {
		k string
		v int
	}{{"max_connections", b.MaxConnections}, {"max_pending_requests", b.MaxPendingRequests}, {"max_requests", b.MaxRequests}, {"max_retries", b.MaxRetries}} {
		if f.v < 0 {
			p.Add(at+"circuit_breakers."+f.k, f.v, "must not be negative")
		}
	}
	if r := c.RetryBudget; r != nil {
		if r.Percent < 0 || r.Percent > 100 {
			p.Add(at+"retry_budget.percent", r.Percent, "want 0..100")
		}
		if r.MinConcurrency < 0 {
			p.Add(at+"retry_budget.min_concurrency", r.MinConcurrency, "must not be negative")
		}
	}
	if o := c.OutlierDetection; o != nil {
		if o.Consecutive5xx < 0 {
			p.Add(at+"outlier_detection.consecutive_5xx", o.Consecutive5xx, "must not be negative")
		}
		if o.ConsecutiveGatewayErrors < 0 {
			p.Add(at+"outlier_detection.consecutive_gateway_errors", o.ConsecutiveGatewayErrors, "must not be negative")
		}
		if o.Interval < 0 {
			p.Add(at+"outlier_detection.interval", o.Interval, "must not be negative")
		}
		if o.BaseEjectionTime < 0 {
			p.Add(at+"outlier_detection.base_ejection_time", o.BaseEjectionTime, "must not be negative")
		}
		if o.MaxEjectionTime < 0 {
			p.Add(at+"outlier_detection.max_ejection_time", o.MaxEjectionTime, "must not be negative")
		}
		if o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > 100 {
			p.Add(at+"outlier_detection.max_ejection_percent", o.MaxEjectionPercent, "want 0..100")
		}
	}
	if c.TLS != nil {
		if err := c.TLS.Validate(); err != nil {
			p.Addf("%stls: %v", at, err)
		}
	}
}

// Validate reports every problem of the route policy; cluster, when not nil,
// is used to check that named subsets exist.
func (r *RoutePolicy) Validate(cluster *ClusterConfig) error {
	var p config.Problems
	if r.Timeout < 0 {
		p.Add("timeout", r.Timeout, "must not be negative")
	}
	if r.Retries != nil {
		r.Retries.problems(&p)
	}
	subsetKnown := func(key, name string) {
		if name == "" {
			p.Add(key, name, "a subset name is needed")
			return
		}
		if cluster == nil {
			return
		}
		for _, s := range cluster.Subsets {
			if s.Name == name {
				return
			}
		}
		p.Add(key, name, "cluster %q has no such subset", cluster.Name)
	}
	for i, h := range r.HeaderSubsets {
		if h.Header == "" {
			p.Add(fmt.Sprintf("header_subsets[%d].header", i), h.Header, "a header name is needed")
		}
		subsetKnown(fmt.Sprintf("header_subsets[%d].subset", i), h.Subset)
	}
	total := 0
	for i, w := range r.WeightedSubsets {
		subsetKnown(fmt.Sprintf("weighted_subsets[%d].subset", i), w.Subset)
		if w.Weight < 0 {
			p.Add(fmt.Sprintf("weighted_subsets[%d].weight", i), w.Weight, "must not be negative")
		}
		total += w.Weight
	}
	if len(r.WeightedSubsets) > 0 && total <= 0 {
		p.Add("weighted_subsets", total, "weights must add up to more than 0")
	}
	if r.Subset != "" {
		subsetKnown("subset", r.Subset)
	}
	return p.Err()
}

func (r *RetryPolicy) problems(p *config.Problems) {
	if r.Attempts < 0 || r.Attempts > 100 {
		p.Add("retries.attempts", r.Attempts, "want 0..100")
	}
	if r.PerTryTimeout < 0 {
		p.Add("retries.per_try_timeout", r.PerTryTimeout, "must not be negative")
	}
	for _, on := range r.RetryOn {
		for _, one := range strings.Split(on, ",") {
			if one = strings.TrimSpace(one); !retryOnName(one) {
				p.Add("retries.retry_on", one, "want 5xx, gateway-error, reset, connect-failure, refused-stream or retriable-status-codes")
			}
		}
	}
	for _, s := range r.RetriableStatusCodes {
		if s < 100 || s > 599 {
			p.Add("retries.retriable_status_codes", s, "want an HTTP status 100..599")
		}
	}
	if r.BackoffBase < 0 {
		p.Add("retries.backoff_base_interval", r.BackoffBase, "must not be negative")
	}
	if r.BackoffMax < 0 || (r.BackoffMax > 0 && r.BackoffMax < r.BackoffBase) {
		p.Add("retries.backoff_max_interval", r.BackoffMax, "must be at least backoff_base_interval")
	}
	if r.MaxReplayBytes < 0 {
		p.Add("retries.max_replay_bytes", r.MaxReplayBytes, "must not be negative")
	}
}

func checkHostPort(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("want host:port: %v", err)
	}
	if host == "" {
		return fmt.Errorf("empty host")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("want a port 1..65535")
	}
	return nil
}

// idempotent reports whether RFC 9110 calls method idempotent.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete, "":
		return true
	}
	return false
}
