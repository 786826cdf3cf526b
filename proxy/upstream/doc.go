// Package upstream is the proxy's upstream side: clusters of endpoints with
// keep-alive connection pools (HTTP/1.1, or HTTP/2 when configured), load
// balancing, retries with a retry budget, circuit breakers, outlier
// detection, subsets with weighted and header-based selection, mTLS
// origination and discovery (static, DNS, Consul).
//
// # The seam with the request path
//
//	cfg := upstream.ClusterConfig{...}          // YAML "clusters:" entries
//	err := cfg.Validate()                        // every problem, naming field and value
//	c, err := upstream.New(cfg, upstream.Deps{Log: log, Registry: reg})
//	defer c.Close()
//
//	// per request (the router found the route and its cluster):
//	var att upstream.Attempt
//	ctx := upstream.WithRoute(r.Context(), route.Policy) // *RoutePolicy, may be nil
//	ctx = upstream.WithAttempt(ctx, &att)
//	resp, err := c.RoundTrip(outReq.WithContext(ctx))     // URL host/scheme are replaced
//	if err != nil {
//		status := upstream.StatusOf(err)                  // 503 (UH/UF/UO/UC), 504 (UT), 499 (DC)
//		// body: err.(*upstream.Error).Body(); access log flags: att.Flags
//	}
//	defer resp.Body.Close()                              // frees the connection slot
//	// access log: att.Host, att.Flags, att.Tries, att.UpstreamTime
//
//	// TCP passthrough:
//	conn, host, err := c.DialTCP(ctx)
//
// RoundTrip is an http.RoundTripper, so httputil.ReverseProxy{Transport: c}
// works too. It never adds Accept-Encoding, keeps req.Host as the authority
// and does not touch other headers (hop-by-hop handling is the caller's).
//
// # Behaviour
//
// Retries follow the route's RetryPolicy (nil: DefaultRetry(), Istio's two
// retries of connect-failure, refused-stream and 503). A failure that never
// reached the upstream (connect-failure, refused-stream) is retried for any
// method; anything else only for idempotent methods unless
// retry_non_idempotent. Retries wait with full-jitter exponential backoff,
// go to another endpoint when there is one, re-send up to max_replay_bytes
// of request body (a larger body is not retried) and need a slot under
// max_retries and, when set, the retry budget (percent of active requests,
// at least min_concurrency). A retry refused or exhausted adds flag URX.
//
// Circuit breakers: max_requests (in flight), max_connections (HTTP/1
// exchanges in flight, each holds one pooled connection until its response
// body is closed), max_pending_requests (waiting for such a slot),
// max_retries. A full breaker fails the request at once with UO (503).
//
// Outlier detection ejects an endpoint after consecutive_5xx (5xx and
// locally originated failures) or consecutive_gateway_errors (502/503/504
// and local failures) for base_ejection_time × its ejection count (capped
// at max_ejection_time; the count decays by one per interval in service),
// never more than max_ejection_percent of the endpoints but always allowing
// one. When every endpoint of a pool is ejected, requests go to all of them
// (Envoy's panic routing).
//
// Discovery: static endpoints; DNS A/AAAA re-resolved every refresh; Consul
// blocking queries on /v1/health/service/<service> (passing instances only;
// labels from service meta and tags) honouring CONSUL_HTTP_ADDR,
// CONSUL_HTTP_TOKEN and the other CONSUL_* variables. A failed lookup keeps
// the last endpoints. Ready() closes once endpoints are known.
//
// Metrics (registry from Deps, label cluster): sidecarkit_proxy_upstream_
// rq_total, rq_active, rq_completed_total{result}, rq_retry_total,
// rq_retry_overflow_total, rq_retry_success_total, rq_timeout_total,
// overflow_total{breaker}, cx_total, cx_active, cx_connect_fail_total,
// ejections_total, ejections_active, endpoints, discovery_errors_total,
// discovery_updates_total.
package upstream
