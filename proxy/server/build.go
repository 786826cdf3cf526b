package server

import (
	"fmt"
	"net/http"
	"reflect"
	"time"

	"github.com/sidecarkit/sidecarkit/proxy/config"
	"github.com/sidecarkit/sidecarkit/proxy/httpproxy"
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
		Tables:     map[string]*route.Table{},
		Clusters:   map[string]httpproxy.Cluster{},
		Middleware: map[string]http.Handler{},
		Listeners:  map[string]config.Listener{},
		Config:     c,
	}
	for _, l := range c.Effective() {
		snap.Listeners[l.Name] = l
		snap.Tables[l.Name] = route.Compile(c.Routes, l.Name, l.Direction)
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
		cl, err := upstream.New(cc, upstream.Deps{Log: s.log, Registry: s.rt.Registry})
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
	if len(retired) > 0 {
		grace := s.rt.Common.DrainTimeout
		if grace <= 0 {
			grace = 30 * time.Second
		}
		time.AfterFunc(grace, func() {
			for _, cl := range retired {
				cl.Close()
			}
		})
	}
	return snap, nil
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
