package istio

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sidecarkit/sidecarkit/proxy/config"
	"github.com/sidecarkit/sidecarkit/proxy/mtls"
	"github.com/sidecarkit/sidecarkit/proxy/upstream"
)

var certs = mtls.Files{CertFile: "/etc/certs/cert-chain.pem", KeyFile: "/etc/certs/key.pem", CAFile: "/etc/certs/root-cert.pem"}

func translate(t *testing.T, yml string, o Options) (*Result, Problems) {
	t.Helper()
	rs, ps := Decode("test.yaml", []byte(yml))
	res, tps := Translate(rs, o)
	return res, append(ps, tps...)
}

func TestSeedTranslates(t *testing.T) {
	rs, ps := LoadDir("testdata/seed")
	if len(ps) > 0 {
		t.Fatal(ps.Err())
	}
	res, ps := Translate(rs, Options{Namespace: "production", Labels: map[string]string{"app": "payment-service"}, Certs: certs})
	if len(ps) > 0 {
		t.Fatal(ps.Err())
	}
	const fq = "payment-service.production.svc.cluster.local"
	cl := "outbound|80||" + fq
	want := []config.Route{{
		Name:    "production/payment-service/0",
		Match:   config.Match{Hosts: []string{fq, "payment-service.production.svc", "payment-service.production", "payment-service"}},
		Cluster: cl,
		Policy: upstream.RoutePolicy{
			Timeout:         10 * time.Second,
			Retries:         &upstream.RetryPolicy{Attempts: 3, PerTryTimeout: 2 * time.Second, RetryOn: []string{"5xx", "reset"}, RetryNonIdempotent: true},
			WeightedSubsets: []upstream.WeightedSubset{{Subset: "v1", Weight: 90}, {Subset: "v2", Weight: 10}},
		},
	}}
	if !reflect.DeepEqual(res.Routes, want) {
		t.Errorf("routes:\n got %+v\nwant %+v", res.Routes, want)
	}
	wantCl := []upstream.ClusterConfig{{
		Name:            cl,
		DNS:             &upstream.DNSConfig{Name: fq, Port: 80},
		Protocol:        upstream.HTTP2,
		CircuitBreakers: upstream.BreakerConfig{MaxConnections: 100, MaxPendingRequests: 100, MaxRequests: 1000},
		OutlierDetection: &upstream.OutlierConfig{Consecutive5xx: 5, Interval: 30 * time.Second,
			BaseEjectionTime: 30 * time.Second, MaxEjectionPercent: 50},
		Subsets: []upstream.SubsetConfig{{Name: "v1", Labels: map[string]string{"version": "v1"}}, {Name: "v2", Labels: map[string]string{"version": "v2"}}},
	}}
	if !reflect.DeepEqual(res.Clusters, wantCl) {
		t.Errorf("clusters:\n got %+v\nwant %+v", res.Clusters, wantCl)
	}
	if res.MTLS == nil || res.MTLS.Mode != mtls.Strict || res.MTLS.Files != certs {
		t.Errorf("mtls: %+v", res.MTLS)
	}
	if res.Passthrough == nil || *res.Passthrough {
		t.Errorf("REGISTRY_ONLY: passthrough %v", res.Passthrough)
	}
	a := res.Authorization
	if a == nil || len(a.Policies) != 1 || a.Policies[0].Action != "ALLOW" ||
		a.Policies[0].Rules[0].From[0].Source.Principals[0] != "cluster.local/ns/production/sa/order-service" ||
		a.Policies[0].Rules[0].To[0].Operation.Paths[0] != "/api/v1/charge" {
		t.Errorf("authorization: %+v", a)
	}
	// Another workload in the namespace: the selector does not pick it.
	res, _ = Translate(rs, Options{Namespace: "production", Labels: map[string]string{"app": "order-service"}, Certs: certs})
	if res.Authorization != nil {
		t.Errorf("AuthorizationPolicy applied to a workload its selector does not name: %+v", res.Authorization)
	}
}

func TestSeedAsWrittenNamesTheLine(t *testing.T) {
	_, ps := LoadDir("testdata/seed-as-written")
	if len(ps) != 2 {
		t.Fatalf("want 2 problems (timeout, retries), got %v", ps)
	}
	for i, want := range []struct {
		line int
		path string
	}{{22, "spec.timeout"}, {23, "spec.retries"}} {
		p := ps[i]
		if p.Line != want.line || p.Path != want.path || !strings.Contains(p.Msg, "spec.http[]."+strings.TrimPrefix(want.path, "spec.")) {
			t.Errorf("problem %d: %v (want line %d, %s, pointing at spec.http[])", i, p, want.line, want.path)
		}
		if !strings.HasPrefix(p.Error(), "testdata/seed-as-written/virtualservice.yaml:") || !strings.Contains(p.Error(), "VirtualService production/payment-service") {
			t.Errorf("problem %d does not name file and resource: %v", i, p)
		}
	}
}

func TestProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		yml  string
		want []string // substrings, one problem each, in order
	}{
		{"unsupported fields with path and line", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match:
    - uri: {regex: "/v[0-9]+"}
    mirror: {host: shadow}
    route:
    - destination: {host: reviews}
`, []string{
			"test.yaml:9: VirtualService shop/r: spec.http[0].match[0].uri.regex: not supported",
			"test.yaml:9: VirtualService shop/r: spec.http[0].match[0].uri: only exact and prefix are supported",
			"test.yaml:10: VirtualService shop/r: spec.http[0].mirror: not supported",
		}},
		{"unknown field is refused strictly", `
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: d}
spec:
  host: reviews
  trafficPolicy:
    outlierDetection: {consecutive5xxError: 5}
`, []string{`test.yaml:8: DestinationRule d: spec.trafficPolicy.outlierDetection.consecutive5xxError: unknown field`}},
		{"bad value", `
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: d}
spec:
  host: reviews
  trafficPolicy:
    outlierDetection: {interval: soon}
`, []string{`DestinationRule d: spec: bad value: invalid google.protobuf.Duration value "soon"`}},
		{"CUSTOM is refused", `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: default}
spec:
  action: CUSTOM
  provider: {name: opa}
  rules: [{}]
`, []string{"spec.action: CUSTOM (external authorization) is not supported", "spec.provider: not supported"}},
		{"consistent hash, SIMPLE tls", `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: d}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-user}}
    tls: {mode: SIMPLE}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews}}]}]
`, []string{"spec.trafficPolicy.loadBalancer.consistentHash: not supported", "spec.trafficPolicy.tls.mode: SIMPLE is not supported"}},
		{"weights across hosts", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews}, weight: 50}
    - {destination: {host: ratings}, weight: 50}
`, []string{"spec.http[0].route[1].destination: weights across different hosts"}},
		{"undefined subset", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, subset: v9}}]}]
`, []string{`subset "v9" of reviews.default.svc.cluster.local: no DestinationRule defines it`}},
		{"port-level mTLS mode differing", `
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: p}
spec:
  selector: {matchLabels: {app: a}}
  mtls: {mode: STRICT}
  portLevelMtls:
    8081: {mode: DISABLE}
`, []string{"spec.portLevelMtls[8081]: DISABLE differs from the workload's STRICT"}},
		{"kind and apiVersion", `
apiVersion: networking.istio.io/v2
kind: VirtualService
metadata: {name: r}
spec: {hosts: [a], http: [{route: [{destination: {host: a}}]}]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: g}
`, []string{`apiVersion: "networking.istio.io/v2": want networking.istio.io/v1 | v1beta1 | v1alpha3`, `kind: kind "Gateway" is not one the proxy reads`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ps := translate(t, tc.yml, Options{Labels: map[string]string{"app": "a"}, Certs: certs})
			if len(ps) != len(tc.want) {
				t.Fatalf("want %d problems, got %d:\n%v", len(tc.want), len(ps), ps.Err())
			}
			for i, w := range tc.want {
				if !strings.Contains(ps[i].Error(), w) {
					t.Errorf("problem %d: %q does not contain %q", i, ps[i].Error(), w)
				}
			}
		})
	}
}

func TestSemantics(t *testing.T) {
	t.Run("short names qualify with the resource's namespace", func(t *testing.T) {
		res, ps := translate(t, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r, namespace: shop}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: reviews, port: {number: 9080}}}]}]
`, Options{Namespace: "production"})
		if len(ps) > 0 {
			t.Fatal(ps.Err())
		}
		want := []string{"reviews.shop.svc.cluster.local", "reviews.shop.svc", "reviews.shop"} // no bare "reviews": that is production's
		if got := res.Routes[0].Match.Hosts; !reflect.DeepEqual(got, want) {
			t.Errorf("hosts %v, want %v", got, want)
		}
		if res.Routes[0].Cluster != "outbound|9080||reviews.shop.svc.cluster.local" {
			t.Errorf("cluster %q", res.Routes[0].Cluster)
		}
	})
	t.Run("exact hosts before wildcards, rules in order", func(t *testing.T) {
		res, ps := translate(t, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wild}
spec:
  hosts: ["*.example.com"]
  http: [{route: [{destination: {host: all.example.com}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: exact}
spec:
  hosts: [api.example.com]
  http:
  - name: v2
    match: [{uri: {prefix: /v2/}}, {headers: {x-v2: {exact: "1"}}}]
    route: [{destination: {host: api.example.com, port: {number: 8080}}}]
    headers: {request: {set: {x-env: prod}, remove: [x-debug]}}
  - route: [{destination: {host: api.example.com, port: {number: 8080}}}]
    retries: {attempts: 2, retryOn: "503,retriable-4xx"}
    fault: {abort: {httpStatus: 503}}
`, Options{})
		if len(ps) > 0 {
			t.Fatal(ps.Err())
		}
		var names []string
		for _, r := range res.Routes {
			names = append(names, r.Name)
		}
		if want := []string{"default/exact/v2/0", "default/exact/v2/1", "default/exact/1", "default/wild/0"}; !reflect.DeepEqual(names, want) {
			t.Fatalf("route order %v, want %v", names, want)
		}
		r0 := res.Routes[0]
		if r0.Match.Path.Prefix != "/v2/" || len(r0.Match.Headers) != 0 || res.Routes[1].Match.Headers[0].Exact != "1" {
			t.Errorf("match alternatives: %+v / %+v", r0.Match, res.Routes[1].Match)
		}
		if !reflect.DeepEqual(r0.RequestHeadersRemove, []string{"x-env", "x-debug"}) || r0.RequestHeadersAdd[0] != (config.Header{Name: "x-env", Value: "prod"}) {
			t.Errorf("headers: %+v %+v", r0.RequestHeadersAdd, r0.RequestHeadersRemove)
		}
		rp := res.Routes[2].Policy.Retries
		if rp.Attempts != 2 || !reflect.DeepEqual(rp.RetryOn, []string{"retriable-status-codes"}) || !reflect.DeepEqual(rp.RetriableStatusCodes, []int{503, 409}) {
			t.Errorf("retries %+v", rp)
		}
		if f := res.Routes[2].Fault; f == nil || f.Abort.HTTPStatus != 503 || f.Abort.Percent != 100 {
			t.Errorf("fault %+v", f)
		}
		if res.Routes[3].Match.Hosts[0] != "*.example.com" {
			t.Errorf("wildcard hosts %v", res.Routes[3].Match.Hosts)
		}
	})
	t.Run("no retries given: Istio's default; attempts without retryOn: default conditions", func(t *testing.T) {
		res, ps := translate(t, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [a]
  http:
  - route: [{destination: {host: a}}]
  - route: [{destination: {host: a}}]
    retries: {attempts: 5}
  - route: [{destination: {host: a}}]
    retries: {attempts: 0}
`, Options{})
		if len(ps) > 0 {
			t.Fatal(ps.Err())
		}
		if res.Routes[0].Policy.Retries != nil {
			t.Errorf("unset retries: want nil (the cluster's Istio default), got %+v", res.Routes[0].Policy.Retries)
		}
		d := upstream.DefaultRetry()
		if r := res.Routes[1].Policy.Retries; r.Attempts != 5 || !reflect.DeepEqual(r.RetryOn, d.RetryOn) {
			t.Errorf("attempts only: %+v", r)
		}
		if r := res.Routes[2].Policy.Retries; r.Attempts != 0 {
			t.Errorf("attempts 0 must disable retries: %+v", r)
		}
	})
	t.Run("outlier: 5xx vs gateway errors, 0 disables 5xx", func(t *testing.T) {
		res, ps := translate(t, `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: d}
spec:
  host: a
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 0, consecutiveGatewayErrors: 3}
    portLevelSettings:
    - port: {number: 9090}
      outlierDetection: {consecutive5xxErrors: 7}
      loadBalancer: {simple: LEAST_REQUEST}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: a}
spec:
  hosts: [a.default.svc.cluster.local]
  ports: [{number: 8080, name: http}, {number: 9090, name: grpc}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1, labels: {version: v1}}]
`, Options{})
		if len(ps) > 0 {
			t.Fatal(ps.Err())
		}
		if len(res.Clusters) != 2 {
			t.Fatalf("clusters %+v", res.Clusters)
		}
		c8080, c9090 := res.Clusters[0], res.Clusters[1]
		if o := c8080.OutlierDetection; o.Consecutive5xx != math.MaxInt32 || o.ConsecutiveGatewayErrors != 3 {
			t.Errorf("8080 outlier %+v", o)
		}
		if o := c9090.OutlierDetection; o.Consecutive5xx != 7 || o.ConsecutiveGatewayErrors != 3 || c9090.LBPolicy != upstream.LeastRequest {
			t.Errorf("9090 outlier %+v lb %q", o, c9090.LBPolicy)
		}
		if c8080.Endpoints[0].Address != "10.0.0.1:8080" || c8080.Endpoints[0].Labels["version"] != "v1" {
			t.Errorf("endpoints %+v", c8080.Endpoints)
		}
		if len(res.Routes) != 2 || res.Routes[0].Match.Port != 8080 {
			t.Errorf("ServiceEntry routes %+v", res.Routes)
		}
	})
	t.Run("Sidecar scopes egress", func(t *testing.T) {
		res, ps := translate(t, `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: production}
spec:
  egress: [{hosts: ["./payments", "shop/*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: p, namespace: production}
spec: {hosts: [payments], http: [{route: [{destination: {host: payments}}]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: o, namespace: production}
spec: {hosts: [other], http: [{route: [{destination: {host: other}}]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r, namespace: shop}
spec: {hosts: [reviews], http: [{route: [{destination: {host: reviews}}]}]}
`, Options{Namespace: "production"})
		if len(ps) > 0 {
			t.Fatal(ps.Err())
		}
		var names []string
		for _, r := range res.Routes {
			names = append(names, r.Name)
		}
		if want := []string{"production/p/0", "shop/r/0"}; !reflect.DeepEqual(names, want) {
			t.Errorf("routes %v, want %v", names, want)
		}
		if res.Passthrough != nil {
			t.Errorf("no outboundTrafficPolicy: passthrough must stay as configured, got %v", *res.Passthrough)
		}
	})
	t.Run("exportTo and gateways hide resources", func(t *testing.T) {
		res, ps := translate(t, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: private, namespace: shop}
spec: {hosts: [a], exportTo: ["."], http: [{route: [{destination: {host: a}}]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge, namespace: production}
spec: {hosts: [b], gateways: [istio-system/ingress], http: [{route: [{destination: {host: b}}]}]}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mine, namespace: production}
spec:
  hosts: [c]
  http:
  - match: [{sourceLabels: {app: other}}]
    route: [{destination: {host: c}}]
  - match: [{sourceLabels: {app: me}}]
    route: [{destination: {host: c}}]
`, Options{Namespace: "production", Labels: map[string]string{"app": "me"}})
		if len(ps) > 0 {
			t.Fatal(ps.Err())
		}
		if len(res.Routes) != 1 || res.Routes[0].Name != "production/mine/1" {
			t.Errorf("routes %+v", res.Routes)
		}
	})
	t.Run("PeerAuthentication: workload over namespace over mesh, UNSET inherits", func(t *testing.T) {
		docs := `
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: mesh, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: ns, namespace: production}
spec: {mtls: {mode: UNSET}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: legacy, namespace: production}
spec: {selector: {matchLabels: {app: legacy}}, mtls: {mode: PERMISSIVE}}
`
		res, ps := translate(t, docs, Options{Namespace: "production", Labels: map[string]string{"app": "me"}, Certs: certs})
		if len(ps) > 0 || res.MTLS == nil || res.MTLS.Mode != mtls.Strict {
			t.Errorf("inherits the mesh's STRICT: %+v %v", res.MTLS, ps.Err())
		}
		res, _ = translate(t, docs, Options{Namespace: "production", Labels: map[string]string{"app": "legacy"}, Certs: certs})
		if res.MTLS == nil || res.MTLS.Mode != mtls.Permissive {
			t.Errorf("workload selector wins: %+v", res.MTLS)
		}
		res, _ = translate(t, docs, Options{Namespace: "elsewhere", Certs: certs})
		if res.MTLS == nil || res.MTLS.Mode != mtls.Strict {
			t.Errorf("mesh-wide applies elsewhere: %+v", res.MTLS)
		}
	})
	t.Run("AuthorizationPolicy: AUDIT never decides, DENY and ALLOW kept, root namespace applies", func(t *testing.T) {
		res, ps := translate(t, `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit, namespace: production}
spec: {action: AUDIT, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: istio-system}
spec: {action: DENY, rules: [{to: [{operation: {paths: ["/admin*"]}}]}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: production}
spec: {}
`, Options{Namespace: "production"})
		if len(ps) > 0 {
			t.Fatal(ps.Err())
		}
		a := res.Authorization
		if a == nil || len(a.Policies) != 2 || a.Policies[0].Action != "DENY" || a.Policies[1].Action != "ALLOW" || len(a.Policies[1].Rules) != 0 {
			t.Errorf("policies %+v", a)
		}
	})
}

func TestApplyMergesIntoFlags(t *testing.T) {
	c := &config.Config{Mode: config.ModeExplicit, App: "127.0.0.1:8080", InboundAddr: ":15006", OutboundPassthrough: true}
	res := &Result{
		Routes:        []config.Route{{Name: "r"}},
		MTLS:          &mtls.ServerConfig{Mode: mtls.Strict, Files: certs},
		Authorization: nil,
		Passthrough:   new(bool),
	}
	if err := Apply(c, res); err != nil {
		t.Fatal(err)
	}
	if len(c.Listeners) != 2 || c.Listeners[0].MTLS == nil || c.Listeners[1].MTLS != nil || c.OutboundPassthrough {
		t.Errorf("listeners %+v passthrough %v", c.Listeners, c.OutboundPassthrough)
	}
	if err := Apply(c, &Result{Routes: []config.Route{{Name: "r"}}, MTLS: res.MTLS}); err == nil || !strings.Contains(err.Error(), `route "r"`) || !strings.Contains(err.Error(), "mtls set by the proxy's config") {
		t.Errorf("conflicts not reported: %v", err)
	}
}

func TestEveryFieldIsInTheSchema(t *testing.T) {
	// A typo in the supported list would silently mark nothing.
	for kind, pats := range supported {
		all := map[string]bool{}
		for _, f := range AllFields(kind) {
			all[f] = true
		}
		for _, p := range pats {
			ok := all[p]
			for f := range all {
				ok = ok || strings.HasPrefix(f, p+".")
			}
			if !ok {
				t.Errorf("%s: supported field %q is not in Istio's schema", kind, p)
			}
		}
	}
}
