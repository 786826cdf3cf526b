package upstream

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sidecarkit/sidecarkit/proxy/mtls"
	"github.com/sidecarkit/sidecarkit/proxy/mtls/mtlstest"
)

const (
	serverID = "spiffe://cluster.local/ns/shop/sa/checkout"
	clientID = "spiffe://cluster.local/ns/shop/sa/frontend"
)

// mtlsBackend is a real HTTP server behind an mtls STRICT listener that
// answers with the caller's SPIFFE identity.
func mtlsBackend(t testing.TB, ca *mtlstest.CA, proto string) string {
	t.Helper()
	s, err := mtls.NewServer(mtls.ServerConfig{Mode: mtls.Strict, Files: ca.Workload(t, serverID)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ConnContext: mtls.ConnContext, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		p := mtls.PeerFrom(r.Context())
		if p == nil {
			w.WriteHeader(500)
			return
		}
		fmt.Fprintf(w, "%s %s", r.Proto, p.Identity.URI)
	})}
	if proto == HTTP2 {
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP2(true)
		srv.Protocols.SetHTTP1(true)
		srv.TLSConfig = s.TLSConfig()
	}
	l := mtls.NewListener(inner, s, nil)
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return inner.Addr().String()
}

func TestMTLSOrigination(t *testing.T) {
	ca := mtlstest.NewCA(t, "mesh")
	addr := mtlsBackend(t, ca, HTTP1)
	client := ca.Workload(t, clientID)
	c := newCluster(t, ClusterConfig{Endpoints: []EndpointConfig{{Address: addr}}, TLS: &mtls.ClientConfig{Files: client, MatchSANs: []string{serverID}}})
	for range 5 {
		_, body, _, err := get(t, c, context.Background(), "GET", "/", nil)
		if err != nil || body != "HTTP/1.1 "+clientID {
			t.Fatalf("mTLS origination: %q %v", body, err)
		}
	}
	if n := testCounter(c.m.cxTotal); n != 1 {
		t.Fatalf("%v TLS connections for 5 sequential requests, want 1 kept alive", n)
	}
	// The wrong expected identity fails the connection: UF.
	bad := newCluster(t, ClusterConfig{Name: "bad", Endpoints: []EndpointConfig{{Address: addr}}, TLS: &mtls.ClientConfig{Files: client, MatchSANs: []string{"spiffe://cluster.local/ns/x/sa/y"}}})
	_, _, att, err := get(t, bad, withPolicy(&RoutePolicy{Retries: fastRetry(0)}), "GET", "/", nil)
	if StatusOf(err) != 503 || !hasFlag(att, FlagConnectFail) || !strings.Contains(err.Error(), "match_sans") {
		t.Fatalf("unexpected server identity: %v %+v", err, att)
	}
	// A plaintext cluster to the STRICT listener fails.
	plain := newCluster(t, ClusterConfig{Name: "plain", Endpoints: []EndpointConfig{{Address: addr}}})
	if _, _, _, err := get(t, plain, withPolicy(&RoutePolicy{Retries: fastRetry(0)}), "GET", "/", nil); err == nil {
		t.Fatal("plaintext request to a STRICT listener succeeded")
	}
	// HTTP/2 over mTLS, and DialTCP with TLS origination.
	h2 := newCluster(t, ClusterConfig{Name: "h2", Protocol: HTTP2, Endpoints: []EndpointConfig{{Address: mtlsBackend(t, ca, HTTP2)}}, TLS: &mtls.ClientConfig{Files: client}})
	if _, body, _, err := get(t, h2, context.Background(), "GET", "/", nil); err != nil || body != "HTTP/2.0 "+clientID {
		t.Fatalf("h2 over mTLS: %q %v", body, err)
	}
	conn, host, err := c.DialTCP(context.Background())
	if err != nil || host != addr {
		t.Fatalf("DialTCP: %v %s", err, host)
	}
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	raw, _ := io.ReadAll(conn)
	conn.Close()
	if !strings.Contains(string(raw), clientID) {
		t.Fatalf("DialTCP over mTLS read %q", raw)
	}
}

// BenchmarkRoundTrip compares a request through Cluster.RoundTrip to a real
// loopback server in plaintext and over mTLS (HTTP/1.1 keep-alive), and the
// plain net/http Transport as the baseline. Run with -bench RoundTrip.
func BenchmarkRoundTrip(b *testing.B) {
	ca := mtlstest.NewCA(b, "mesh")
	plainSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer plainSrv.Close()
	plainAddr := strings.TrimPrefix(plainSrv.URL, "http://")
	tlsAddr := mtlsBackend(b, ca, HTTP1)
	client := ca.Workload(b, clientID)
	run := func(b *testing.B, rt http.RoundTripper, url string) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest("GET", url, nil)
				resp, err := rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	b.Run("net-http-transport", func(b *testing.B) {
		run(b, &http.Transport{MaxIdleConnsPerHost: 64}, plainSrv.URL+"/")
	})
	b.Run("cluster-plaintext", func(b *testing.B) {
		c, _ := New(ClusterConfig{Name: "p", Endpoints: []EndpointConfig{{Address: plainAddr}}}, Deps{Registry: prometheus.NewRegistry()})
		defer c.Close()
		run(b, c, "http://svc/")
	})
	b.Run("cluster-mtls", func(b *testing.B) {
		c, _ := New(ClusterConfig{Name: "m", Endpoints: []EndpointConfig{{Address: tlsAddr}}, TLS: &mtls.ClientConfig{Files: client}}, Deps{Registry: prometheus.NewRegistry()})
		defer c.Close()
		run(b, c, "http://svc/")
	})
}
