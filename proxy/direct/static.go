package direct

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
)

// Static is a minimal cluster of fixed endpoints picked round robin, used
// until the full upstream package (load balancing, retries, breakers) is
// wired in for a cluster.
type Static struct {
	f         *Forwarder
	endpoints []string
	h2        bool
	next      atomic.Uint64
}

// NewStatic returns a round-robin cluster over endpoints, speaking h2c to
// them when h2 is set.
func NewStatic(f *Forwarder, endpoints []string, h2 bool) *Static {
	return &Static{f: f, endpoints: endpoints, h2: h2}
}

func (s *Static) pick() (string, error) {
	if len(s.endpoints) == 0 {
		return "", errors.New("no endpoints")
	}
	return s.endpoints[int(s.next.Add(1)-1)%len(s.endpoints)], nil
}

// RoundTrip sends req to the next endpoint.
func (s *Static) RoundTrip(req *http.Request) (*http.Response, error) {
	ep, err := s.pick()
	if err != nil {
		return nil, err
	}
	req.URL.Host = ep
	if s.h2 && req.Header.Get("Upgrade") == "" {
		return s.f.h2.RoundTrip(req)
	}
	return s.f.h1.RoundTrip(req)
}

// DialTCP opens a stream to the next endpoint.
func (s *Static) DialTCP(ctx context.Context) (net.Conn, string, error) {
	ep, err := s.pick()
	if err != nil {
		return nil, "", err
	}
	c, err := s.f.DialTCP(ctx, ep)
	return c, ep, err
}
