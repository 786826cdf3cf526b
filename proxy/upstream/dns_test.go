package upstream

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsServer is a real DNS server on loopback UDP answering A queries for
// one name with addresses the test changes, or SERVFAIL.
type dnsServer struct {
	conn  net.PacketConn
	mu    sync.Mutex
	addrs []net.IP
	fail  bool
}

func startDNS(t *testing.T) *dnsServer {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{conn: pc}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			s.mu.Lock()
			addrs, fail := s.addrs, s.fail
			s.mu.Unlock()
			rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RCode: dnsmessage.RCodeSuccess}
			if fail {
				rh.RCode = dnsmessage.RCodeServerFailure
			}
			b := dnsmessage.NewBuilder(nil, rh)
			b.EnableCompression()
			b.StartQuestions()
			b.Question(q)
			b.StartAnswers()
			if !fail && q.Type == dnsmessage.TypeA {
				for _, ip := range addrs {
					var a [4]byte
					copy(a[:], ip.To4())
					b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}, dnsmessage.AResource{A: a})
				}
			}
			msg, err := b.Finish()
			if err == nil {
				pc.WriteTo(msg, from)
			}
		}
	}()
	return s
}

func (s *dnsServer) set(fail bool, ips ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail, s.addrs = fail, nil
	for _, ip := range ips {
		s.addrs = append(s.addrs, net.ParseIP(ip))
	}
}

// resolver is Go's own DNS client pointed at the test server.
func (s *dnsServer) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", s.conn.LocalAddr().String())
	}}
}

func TestDNSDiscoveryRealServer(t *testing.T) {
	l1, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l1.Addr().(*net.TCPAddr).Port
	l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.3:%d", port))
	if err != nil {
		t.Fatalf("127.0.0.3: %v", err)
	}
	for i, l := range []net.Listener{l1, l2} {
		s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "s%d", i+1) }))
		s.Listener = l
		s.Start()
		t.Cleanup(s.Close)
	}
	dns := startDNS(t)
	dns.set(false, "127.0.0.1")
	c := newClusterDeps(t, ClusterConfig{Name: "dns-real", DNS: &DNSConfig{Name: "backend.test", Port: port, Refresh: 100 * time.Millisecond}}, Deps{Resolver: dns.resolver()})
	<-c.Ready()
	if _, body, _, err := get(t, c, context.Background(), "GET", "/", nil); err != nil || body != "s1" {
		t.Fatalf("first: %q %v", body, err)
	}
	dns.set(false, "127.0.0.1", "127.0.0.3")
	waitFor(t, "two A records", func() bool { return len(c.Endpoints()) == 2 })
	dns.set(false, "127.0.0.3")
	waitFor(t, "the answer to change", func() bool {
		e := c.Endpoints()
		return len(e) == 1 && e[0].Address == fmt.Sprintf("127.0.0.3:%d", port)
	})
	dns.set(true)
	waitFor(t, "SERVFAIL to be seen", func() bool { return testCounter(c.m.discoveryErrors) > 0 })
	if _, body, _, err := get(t, c, context.Background(), "GET", "/", nil); err != nil || body != "s2" {
		t.Fatalf("after SERVFAIL the last endpoints must stay: %q %v", body, err)
	}
}
