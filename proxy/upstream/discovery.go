package upstream

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	consul "github.com/hashicorp/consul/api"
	"github.com/sidecarkit/sidecarkit/shared/backoff"
)

// runDNS re-resolves the name every refresh; a failed lookup keeps the last
// endpoints.
func (c *Cluster) runDNS(ctx context.Context, d DNSConfig, res interface {
	LookupIPAddr(context.Context, string) ([]net.IPAddr, error)
}) {
	refresh := d.Refresh
	if refresh == 0 {
		refresh = 30 * time.Second
	}
	bo := backoff.Backoff{Policy: backoff.Policy{Initial: 250 * time.Millisecond, Max: refresh, Jitter: 0.2}}
	var last []string
	for {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		addrs, err := res.LookupIPAddr(lctx, d.Name)
		cancel()
		wait := refresh
		if err != nil || len(addrs) == 0 {
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				err = fmt.Errorf("no addresses")
			}
			c.m.discoveryErrors.Inc()
			wait = bo.Next()
			c.log.Warn("DNS discovery failed, keeping the last endpoints", "name", d.Name, "err", err, "endpoints", len(last), "retry_in", wait)
		} else {
			bo.Reset()
			var now []string
			for _, a := range addrs {
				now = append(now, net.JoinHostPort(a.IP.String(), strconv.Itoa(d.Port)))
			}
			slices.Sort(now)
			now = slices.Compact(now)
			if !slices.Equal(now, last) {
				eps := make([]EndpointConfig, len(now))
				for i, a := range now {
					eps[i] = EndpointConfig{Address: a, Labels: d.Labels}
				}
				c.setEndpoints(eps)
				c.m.discoveryUpdates.Inc()
				c.log.Info("DNS endpoints changed", "name", d.Name, "endpoints", now)
				last = now
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// consulWatch is a blocking query on /v1/health/service/<name>.
type consulWatch struct {
	cfg    ConsulConfig
	client *consul.Client
}

func newConsulWatch(cfg ConsulConfig) (*consulWatch, error) {
	cc := consul.DefaultConfig() // CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, CONSUL_CACERT, ...
	if cfg.Addr != "" {
		cc.Address = cfg.Addr
	}
	if cfg.Token != "" {
		cc.Token = cfg.Token
	}
	if cfg.Datacenter != "" {
		cc.Datacenter = cfg.Datacenter
	}
	client, err := consul.NewClient(cc)
	if err != nil {
		return nil, fmt.Errorf("consul client for %s: %w", cc.Address, err)
	}
	return &consulWatch{cfg: cfg, client: client}, nil
}

// runConsul follows the healthy instances of the service; while Consul is
// unreachable the last endpoints stay.
func (c *Cluster) runConsul(ctx context.Context, w *consulWatch) {
	wait := w.cfg.Wait
	if wait == 0 {
		wait = 5 * time.Minute
	}
	bo := backoff.Backoff{Policy: backoff.Policy{Initial: 250 * time.Millisecond, Max: 10 * time.Second, Jitter: 0.2}}
	var index uint64
	var last []EndpointConfig
	known := false
	for ctx.Err() == nil {
		q := (&consul.QueryOptions{WaitIndex: index, WaitTime: wait}).WithContext(ctx)
		entries, meta, err := w.client.Health().Service(w.cfg.Service, w.cfg.Tag, true, q)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.m.discoveryErrors.Inc()
			// After an error start over: a restarted Consul's index is lower
			// and a blocking query on the old one would hang for its wait.
			index = 0
			d := bo.Next()
			// The error text of consul/api never holds the token.
			c.log.Warn("Consul discovery failed, keeping the last endpoints", "service", w.cfg.Service, "err", err, "endpoints", len(last), "retry_in", d)
			if !sleepCtx(ctx, d) {
				return
			}
			continue
		}
		bo.Reset()
		// An index that goes backwards (Consul restarted) starts over.
		if meta.LastIndex < index {
			index = 0
		} else {
			index = meta.LastIndex
		}
		eps := consulEndpoints(entries)
		if !known || !sameEndpoints(eps, last) {
			known = true
			c.setEndpoints(eps)
			if len(eps) == 0 {
				c.readyOnce.Do(func() { close(c.ready) }) // Consul answered: no instance is a known state
			}
			c.m.discoveryUpdates.Inc()
			addrs := make([]string, len(eps))
			for i, e := range eps {
				addrs[i] = e.Address
			}
			c.log.Info("Consul endpoints changed", "service", w.cfg.Service, "endpoints", addrs)
			last = eps
		}
	}
}

// consulEndpoints turns health entries into endpoints: the service address
// (else the node's) and port; labels from the service meta, tags "k=v" as
// k: v, and any other tag t as t: "true". Weight is Consul's passing weight.
func consulEndpoints(entries []*consul.ServiceEntry) []EndpointConfig {
	var out []EndpointConfig
	for _, e := range entries {
		if e.Service == nil {
			continue
		}
		host := e.Service.Address
		if host == "" && e.Node != nil {
			host = e.Node.Address
		}
		if host == "" || e.Service.Port <= 0 {
			continue
		}
		labels := map[string]string{}
		for k, v := range e.Service.Meta {
			labels[k] = v
		}
		for _, t := range e.Service.Tags {
			if k, v, ok := strings.Cut(t, "="); ok {
				labels[k] = v
			} else {
				labels[t] = "true"
			}
		}
		w := e.Service.Weights.Passing
		if w <= 0 {
			w = 1
		}
		out = append(out, EndpointConfig{Address: net.JoinHostPort(host, strconv.Itoa(e.Service.Port)), Weight: min(w, 10000), Labels: labels})
	}
	slices.SortFunc(out, func(a, b EndpointConfig) int { return strings.Compare(a.Address, b.Address) })
	return out
}

func sameEndpoints(a, b []EndpointConfig) bool {
	return slices.EqualFunc(a, b, func(x, y EndpointConfig) bool {
		return x.Address == y.Address && x.Weight == y.Weight && sameLabels(x.Labels, y.Labels)
	})
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
