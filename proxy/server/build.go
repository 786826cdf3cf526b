package server

import (
	"fmt"
	"net"
	"net/http"
	"reflect"
	"time"

	"github.com/sidecarkit/sidecarkit/proxy/authz"
	"github.com/sidecarkit/sidecarkit/proxy/config"
	"github.com/sidecarkit/sidecarkit/proxy/fault"
	"github.com/sidecarkit/sidecarkit/proxy/httpproxy"
	"github.com/sidecarkit/sidecarkit/proxy/jwtauth"
	"github.com/sidecarkit/sidecarkit/proxy/listener"
	"github.com/sidecarkit/sidecarkit/proxy/mtls"
	"github.com/sidecarkit/sidecarkit/proxy/ratelimit"
	"github.com/sidecarkit/sidecarkit/proxy/route"
	"github.com/sidecarkit/sidecarkit/proxy/upstream"
)

// clusterEntry is a running cluster and the config it was built from, so a
// reload keeps (with its pools and outlier state) every cluster whose
// configuration did not change.
type clusterEntry struct {
	cfg upstream.ClusterConfig
	c   *upstream.Cluster
}

// build turns a validated configuration into a routing snapshot, reusing
// unchanged clusters of the current snapshot. Clusters it replaced are
// returned so the caller can close them once requests on them are done.
func (s *Server) build(c *config.Config) (*httpproxy.Snapshot, error) {
	snap := &httpproxy.Snapshot{
		Tables:        map[string]*route.Table{},
		Clusters:      map[string]httpproxy.Cluster{},
		Middleware:    map[string]http.Handler{},
		ListenerChain: map[string]http.Handler{},
		Limiters:      map[string]*ratelimit.Limiter{},
		StreamCheck:   map[string]func(*listener.Conn) (bool, string){},
		Listeners:     map[string]config.Listener{},
		Config:        c,
	}
	for _, l := range c.Effective() {
		snap.Listeners[l.Name] = l
		snap.Tables[l.Name] = route.Compile(c.Routes, l.Name, l.Direction)
	}
	if err := s.buildMiddleware(c, snap); err != nil {
		for _, f := range snap.Closers {
			f()
		}
		return nil, err
	}
	s.mu.Lock()
	old := s.clusters
	s.mu.Unlock()
	next := map[string]*clusterEntry{}
	for _, cc := range c.EffectiveClusters() {
		if e, ok := old[cc.Name]; ok && reflect.DeepEqual(e.cfg, cc) {
			next[cc.Name] = e
			snap.Clusters[cc.Name] = e.c
			continue
		}
		cl, err := upstream.New(cc, upstream.Deps{Log: s.log, Registry: s.rt.Registry, Kubernetes: s.opts.Kubernetes})
		if err != nil {
			for name, e := range next {
				if old[name] != e {
					e.c.Close()
				}
			}
			return nil, fmt.Errorf("cluster %s: %w", cc.Name, err)
		}
		next[cc.Name] = &clusterEntry{cfg: cc, c: cl}
		snap.Clusters[cc.Name] = cl
	}
	// Retire replaced clusters after the drain timeout: requests in flight
	// on them finish first.
	var retired []*upstream.Cluster
	for name, e := range old {
		if next[name] != e {
			retired = append(retired, e.c)
		}
	}
	s.mu.Lock()
	s.clusters = next
	s.mu.Unlock()
	if cur := s.state.Load(); cur != nil && len(cur.Closers) > 0 {
		closers := cur.Closers
		time.AfterFunc(s.grace(), func() {
			for _, f := range closers {
				f()
			}
		})
	}
	if len(retired) > 0 {
		time.AfterFunc(s.grace(), func() {
			for _, cl := range retired {
				cl.Close()
			}
		})
	}
	return snap, nil
}

// streamCheck returns how a listener's HTTP policies judge a connection
// that is not HTTP (nil: they do not): a listener that requires a JWT
// refuses it (there is no request to carry one), authorization applies
// Istio's TCP semantics (authz.DecideTCP).
func streamCheck(e *authz.Engine, requireJWT bool) func(*listener.Conn) (bool, string) {
	if e == nil && !requireJWT {
		return nil
	}
	return func(c *listener.Conn) (bool, string) {
		if requireJWT {
			return false, "jwt required"
		}
		in := authz.Input{SourceIP: net.ParseIP(c.ClientIP())}
		if p, ok := c.Peer.(*mtls.Peer); ok && p != nil {
			in.Principal, in.Namespace = p.Identity.Principal(), p.Identity.Namespace
		}
		return e.DecideTCP(in)
	}
}

// clustersReady is the readiness check: every cluster knows its endpoints.
func (s *Server) clustersReady() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, e := range s.clusters {
		select {
		case <-e.c.Ready():
		default:
			return fmt.Errorf("cluster %s: no endpoints known yet", name)
		}
	}
	return nil
}

// closeClusters closes every cluster (at exit).
func (s *Server) closeClusters() {
	s.mu.Lock()
	cs := s.clusters
	s.clusters = nil
	s.mu.Unlock()
	for _, e := range cs {
		e.c.Close()
	}
}

func (s *Server) grace() time.Duration {
	if g := s.rt.Common.DrainTimeout; g > 0 {
		return g
	}
	return 30 * time.Second
}

// buildMiddleware builds the listeners' chains (JWT → authorization →
// Route) and the routes' chains (rate limit → fault → Forward).
func (s *Server) buildMiddleware(c *config.Config, snap *httpproxy.Snapshot) error {
	for _, l := range c.Effective() {
		var h http.Handler = http.HandlerFunc(httpproxy.Route)
		wrapped := false
		var engine *authz.Engine
		if l.Authorization != nil {
			e, err := authz.New(*l.Authorization, authz.Deps{Log: s.log, Registry: s.rt.Registry})
			if err != nil {
				return fmt.Errorf("listener %s authorization: %w", l.Name, err)
			}
			h, wrapped, engine = e.Middleware(h), true, e
		}
		if check := streamCheck(engine, l.JWT != nil && l.JWT.Require); check != nil {
			snap.StreamCheck[l.Name] = check
		}
		if l.JWT != nil {
			a, err := jwtauth.New(*l.JWT, jwtauth.Deps{Log: s.log, Registry: s.rt.Registry})
			if err != nil {
				return fmt.Errorf("listener %s jwt: %w", l.Name, err)
			}
			snap.Closers = append(snap.Closers, func() { a.Close() })
			h, wrapped = a.Middleware(h), true
		}
		if wrapped {
			snap.ListenerChain[l.Name] = h
		}
	}
	for _, r := range c.Routes {
		var h http.Handler = http.HandlerFunc(httpproxy.Forward)
		wrapped := false
		if r.Fault != nil {
			f, err := fault.New(*r.Fault)
			if err != nil {
				return fmt.Errorf("route %s fault: %w", r.Name, err)
			}
			f.OnInject = httpproxy.AddFlag
			h, wrapped = f.Middleware(h), true
		}
		if r.RateLimit != nil {
			var old *ratelimit.Limiter
			if cur := s.state.Load(); cur != nil {
				old = cur.Limiters[r.Name]
			}
			rl, err := ratelimit.Reuse(old, *r.RateLimit)
			if err != nil {
				return fmt.Errorf("route %s rate_limit: %w", r.Name, err)
			}
			snap.Limiters[r.Name] = rl
			h, wrapped = rl.Middleware(h), true
		}
		if wrapped {
			snap.Middleware[r.Name] = h
		}
	}
	return nil
}
