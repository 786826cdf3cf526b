package upstream

import (
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// refusingH2Server is a real HTTP/2 (h2c prior knowledge) server written on
// x/net's framer: it refuses the first stream with RST_STREAM
// REFUSED_STREAM once the client has started sending its body, then
// answers every later stream with 200 and the body it received.
type refusingH2Server struct {
	l       net.Listener
	mu      sync.Mutex
	streams int
}

func startRefusingH2(t *testing.T) *refusingH2Server {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &refusingH2Server{l: l}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *refusingH2Server) serve(c net.Conn) {
	defer c.Close()
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	refused := map[uint32]bool{}
	bodies := map[uint32]*bytes.Buffer{}
	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				fr.WritePing(true, f.Data)
			}
		case *http2.HeadersFrame:
			s.mu.Lock()
			s.streams++
			first := s.streams == 1
			s.mu.Unlock()
			if first {
				refused[f.StreamID] = true
			}
			bodies[f.StreamID] = new(bytes.Buffer)
		case *http2.DataFrame:
			id := f.StreamID
			if n := len(f.Data()); n > 0 {
				fr.WriteWindowUpdate(0, uint32(n))
			}
			if refused[id] {
				delete(refused, id)
				delete(bodies, id) // the stream is gone: its late frames are dropped
				fr.WriteRSTStream(id, http2.ErrCodeRefusedStream)
				continue
			}
			if b := bodies[id]; b != nil {
				b.Write(f.Data())
				if n := len(f.Data()); n > 0 {
					fr.WriteWindowUpdate(id, uint32(n))
				}
				if f.StreamEnded() {
					hbuf.Reset()
					enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
					fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hbuf.Bytes(), EndHeaders: true})
					data := b.Bytes()
					for len(data) > 16384 { // the default max frame size
						fr.WriteData(id, false, data[:16384])
						data = data[16384:]
					}
					fr.WriteData(id, true, data)
					delete(bodies, id)
				}
			}
		}
	}
}

func TestRetryRefusedStream(t *testing.T) {
	s := startRefusingH2(t)
	c := newCluster(t, ClusterConfig{Protocol: HTTP2, Endpoints: []EndpointConfig{{Address: s.l.Addr().String()}}})
	payload := strings.Repeat("refused-stream ", 2000) // 30 KB, sent before the refusal
	// A POST: refused-stream is safe to retry for any method (the server
	// did not process it). The body has no GetBody, as a server request's.
	resp, body, att, err := get(t, c, withPolicy(&RoutePolicy{Retries: fastRetry(2, "refused-stream")}), "POST", "/", io.NopCloser(strings.NewReader(payload)))
	if err != nil || resp.StatusCode != 200 || body != payload {
		t.Fatalf("POST after REFUSED_STREAM: %v status=%v len=%d attempt=%+v", err, resp, len(body), att)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams != 2 || att.Tries != 2 {
		t.Fatalf("streams=%d tries=%d, want the refused stream retried once by the cluster", s.streams, att.Tries)
	}
}
