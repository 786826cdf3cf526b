package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

func TestWebSocketThroughInbound(t *testing.T) {
	ws := httptest.NewServer(websocket.Handler(func(c *websocket.Conn) {
		for {
			var msg string
			if err := websocket.Message.Receive(c, &msg); err != nil {
				return
			}
			websocket.Message.Send(c, "echo:"+msg)
		}
	}))
	defer ws.Close()
	p := startProxy(t, "", "--app", strings.TrimPrefix(ws.URL, "http://"))
	cfg, _ := websocket.NewConfig("ws://"+p.addrs["inbound"].String()+"/ws", "http://localhost/")
	c, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatalf("websocket dial through proxy: %v", err)
	}
	for i := 0; i < 3; i++ {
		want := fmt.Sprintf("msg-%d", i)
		if err := websocket.Message.Send(c, want); err != nil {
			t.Fatal(err)
		}
		var got string
		if err := websocket.Message.Receive(c, &got); err != nil || got != "echo:"+want {
			t.Fatalf("got %q %v", got, err)
		}
	}
	c.Close()
	waitFor(t, func() bool {
		for _, l := range p.log.Lines("access") {
			if l["status"].(float64) == 101 && strings.Contains(l["protocol"].(string), "upgrade") {
				return true
			}
		}
		return false
	})
}

func TestConnectTunnel(t *testing.T) {
	// A raw TCP echo server the app reaches with CONNECT through the outbound listener.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	up, _ := startEcho(t, "up")
	p := startProxy(t, "", "--upstream", "http://"+up, "--mode", "explicit")
	c, err := net.Dial("tcp", p.addrs["outbound"].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", ln.Addr(), ln.Addr())
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	io.WriteString(c, "ping through tunnel")
	c.(*net.TCPConn).CloseWrite()
	got, _ := io.ReadAll(br)
	if string(got) != "ping through tunnel" {
		t.Fatalf("tunnel echo %q", got)
	}
}

func TestConnectHTTP2(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	up, _ := startEcho(t, "up")
	p := startProxy(t, "", "--upstream", "http://"+up)
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protos}
	defer tr.CloseIdleConnections()
	pr, pw := io.Pipe()
	req, _ := http.NewRequestWithContext(context.Background(), "CONNECT", "http://"+p.addrs["outbound"].String(), pr)
	req.Host = ln.Addr().String()
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("h2 CONNECT: %v %v", resp, err)
	}
	io.WriteString(pw, "h2 tunnel")
	buf := make([]byte, 9)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "h2 tunnel" {
		t.Fatalf("h2 tunnel echo %q %v", buf, err)
	}
	pw.Close()
	resp.Body.Close()
}

// TestDrainKeepsWebSocketsUntilDone: after accepting stops, an open
// WebSocket keeps working until it ends, and then the proxy finishes.
func TestDrainKeepsWebSocketsUntilDone(t *testing.T) {
	ws := httptest.NewServer(websocket.Handler(func(c *websocket.Conn) {
		for {
			var msg string
			if err := websocket.Message.Receive(c, &msg); err != nil {
				return
			}
			websocket.Message.Send(c, "echo:"+msg)
		}
	}))
	defer ws.Close()
	p := startProxy(t, "", "--app", strings.TrimPrefix(ws.URL, "http://"))
	cfg, _ := websocket.NewConfig("ws://"+p.addrs["inbound"].String()+"/ws", "http://localhost/")
	c, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.rt.Stop() // drain: stop accepting
	waitFor(t, func() bool {
		conn, err := net.DialTimeout("tcp", p.addrs["inbound"].String(), time.Second)
		if err != nil {
			return true
		}
		conn.Close()
		return false
	})
	for i := 0; i < 3; i++ {
		websocket.Message.Send(c, "during-drain")
		var got string
		if err := websocket.Message.Receive(c, &got); err != nil || got != "echo:during-drain" {
			t.Fatalf("websocket during drain: %q %v", got, err)
		}
	}
	select {
	case <-p.done:
		t.Fatal("the proxy finished while a WebSocket was open")
	case <-time.After(200 * time.Millisecond):
	}
	c.Close()
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatal(err)
		}
		p.done <- nil // for the cleanup
	case <-time.After(20 * time.Second):
		t.Fatal("the proxy did not finish after the WebSocket closed")
	}
}
