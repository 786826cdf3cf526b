package upstream

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	consul "github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

func TestConsulDiscovery(t *testing.T) {
	agent := testenv.StartConsul(t)
	t.Setenv("CONSUL_HTTP_ADDR", agent.Addr) // the cluster reads it like the Consul CLI
	cc := consul.DefaultConfig()
	api, err := consul.NewClient(cc)
	if err != nil {
		t.Fatal(err)
	}
	v1, v2 := newBackend(t, "v1", nil), newBackend(t, "v2", nil)
	register := func(id string, b *backend, tags []string, meta map[string]string) {
		host, port, _ := net.SplitHostPort(b.addr())
		p, _ := strconv.Atoi(port)
		err := api.Agent().ServiceRegister(&consul.AgentServiceRegistration{ID: id, Name: "web", Address: host, Port: p, Tags: tags, Meta: meta,
			Check: &consul.AgentServiceCheck{CheckID: "check-" + id, TTL: "1h", Status: consul.HealthPassing}})
		if err != nil {
			t.Fatalf("register %s: %v", id, err)
		}
	}
	setHealth := func(id, status string) {
		if err := api.Agent().UpdateTTL("check-"+id, "test", status); err != nil {
			t.Fatalf("update TTL %s: %v", id, err)
		}
	}
	register("web-1", v1, []string{"version=v1"}, map[string]string{"zone": "a"})

	var logs bytes.Buffer
	const secret = "c0nsul-t0ken-never-logged"
	t.Setenv("CONSUL_HTTP_TOKEN", secret) // ACLs are off in dev mode: accepted, ignored
	c, err := New(ClusterConfig{Name: "web", Consul: &ConsulConfig{Service: "web"},
		Subsets: []SubsetConfig{{Name: "v1", Labels: map[string]string{"version": "v1"}}, {Name: "canary", Labels: map[string]string{"canary": "true"}}}},
		Deps{Registry: prometheus.NewRegistry(), Log: slog.New(slog.NewJSONHandler(&syncWriter{w: &logs}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-c.Ready()
	addrs := func() []string {
		var out []string
		for _, e := range c.Endpoints() {
			out = append(out, e.Address)
		}
		slices.Sort(out)
		return out
	}
	waitFor(t, "web-1", func() bool { return slices.Equal(addrs(), []string{v1.addr()}) })
	if _, body, _, err := get(t, c, context.Background(), "GET", "/", nil); err != nil || body != "hello from v1" {
		t.Fatalf("via Consul: %q %v", body, err)
	}

	// A second instance registers: tags/meta become subset labels.
	register("web-2", v2, []string{"canary"}, map[string]string{"version": "v2"})
	both := []string{v1.addr(), v2.addr()}
	slices.Sort(both)
	waitFor(t, "web-2 to appear", func() bool { return slices.Equal(addrs(), both) })
	if _, body, _, err := get(t, c, withPolicy(&RoutePolicy{Subset: "canary"}), "GET", "/", nil); err != nil || body != "hello from v2" {
		t.Fatalf("canary subset from Consul tags: %q %v", body, err)
	}

	// Its health check fails: it leaves; passes again: it returns.
	setHealth("web-2", consul.HealthCritical)
	waitFor(t, "web-2 to leave on a failing check", func() bool { return slices.Equal(addrs(), []string{v1.addr()}) })
	setHealth("web-2", consul.HealthPassing)
	waitFor(t, "web-2 to return", func() bool { return slices.Equal(addrs(), both) })

	// Deregistered: gone.
	if err := api.Agent().ServiceDeregister("web-2"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "web-2 to be deregistered", func() bool { return slices.Equal(addrs(), []string{v1.addr()}) })

	// Consul goes away: the last endpoints stay and traffic flows.
	agent.Stop()
	waitFor(t, "a failed Consul query", func() bool { return testCounter(c.m.discoveryErrors) > 0 })
	if !slices.Equal(addrs(), []string{v1.addr()}) {
		t.Fatalf("endpoints changed while Consul was down: %v", addrs())
	}
	if _, body, _, err := get(t, c, context.Background(), "GET", "/", nil); err != nil || body != "hello from v1" {
		t.Fatalf("while Consul is down: %q %v", body, err)
	}
	// It comes back empty (dev agent, in memory): the cluster follows.
	agent.Start()
	waitFor(t, "the restarted, empty Consul", func() bool { return len(addrs()) == 0 })
	c.Close()
	if strings.Contains(logs.String(), secret) || !strings.Contains(logs.String(), "Consul discovery failed") {
		t.Fatalf("logs leak the token or miss the failure:\n%s", logs.String())
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
