package sniff

import (
	"crypto/tls"
	"net"
	"testing"
)

func TestDetect(t *testing.T) {
	cases := []struct {
		in   string
		want Protocol
	}{
		{"", Unknown},
		{"G", Unknown},
		{"GE", Unknown},
		{"GET ", HTTP1},
		{"GET / HTTP/1.1\r\n", HTTP1},
		{"POST /x HTTP/1.1", HTTP1},
		{"OPTIONS * HTTP/1.1", HTTP1},
		{"CONNECT a:1 HTTP/1.1", HTTP1},
		{"MKCALENDAR /", HTTP1},
		{"PRI * HTTP/2.0\r\n", Unknown},
		{Preface, HTTP2},
		{Preface + "\x00\x00", HTTP2},
		{"PRI * HTTP/1.1\r\n\r\n", HTTP1},
		{"\x16\x03\x01\x00", TLS},
		{"\x16", Unknown},
		{"\x16\x00", TCP},
		{"SSH-2.0-OpenSSH", Unknown},
		{"SSH-2.0-OpenSSH_9.6\r\n", TCP},
		{"get / HTTP/1.1", HTTP1},
		{"FOO /admin HTTP/1.1", HTTP1},
		{"QUERY /admin HTTP/1.1", HTTP1},
		{"\r\nGET / HTTP/1.1", HTTP1},
		{"\r\n", Unknown},
		{"\r\n\r\n\r\n", TCP},
		{" GET / HTTP/1.1", TCP},
		{"*1\r\n$4\r\nPING\r\n", TCP},
		{"PING\r\n", TCP},
		{"HELLO world", HTTP1},
		{"\x00\x01\x02", TCP},
		{"GETX / HTTP/1.1", HTTP1},
		{"ABCDEFGHIJKLMNOP", Unknown},
		{"ABCDEFGHIJKLMNOPQRSTU", TCP},
	}
	for _, c := range cases {
		if got := Detect([]byte(c.in)); got != c.want {
			t.Errorf("Detect(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

// clientHello records the first flight of a real crypto/tls client.
func clientHello(t testing.TB, sni string) []byte {
	a, b := net.Pipe()
	go func() {
		c := tls.Client(a, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
		c.Handshake()
		a.Close()
	}()
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 4096)
	for {
		n, err := b.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if RecordLen(buf) > 0 && len(buf) >= RecordLen(buf) || err != nil {
			break
		}
	}
	b.Close()
	return buf
}

func TestServerName(t *testing.T) {
	hello := clientHello(t, "api.example.com")
	if Detect(hello) != TLS {
		t.Fatalf("a ClientHello is not detected as TLS")
	}
	name, err := ServerName(hello[:RecordLen(hello)])
	if err != nil || name != "api.example.com" {
		t.Fatalf("ServerName = %q, %v", name, err)
	}
	if _, err := ServerName(hello[:20]); err == nil {
		t.Fatalf("a truncated hello parsed")
	}
	if _, err := ServerName([]byte("GET / HTTP/1.1\r\n\r\n")); err == nil {
		t.Fatalf("HTTP parsed as a hello")
	}
}

func FuzzDetect(f *testing.F) {
	for _, s := range []string{"GET / HTTP/1.1\r\n", Preface, "\x16\x03\x01", "SSH-2.0", "", "PRI * HTTP/1.1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p := Detect(b)
		if len(b) >= MaxDetectBytes && p == Unknown {
			t.Fatalf("undecided with %d bytes: %q", len(b), b)
		}
		// More bytes never change a decision.
		if p != Unknown {
			if q := Detect(append(append([]byte(nil), b...), 'x')); q != p {
				t.Fatalf("Detect(%q)=%v but with one more byte %v", b, p, q)
			}
		}
	})
}

func FuzzServerName(f *testing.F) {
	f.Add(clientHello(f, "a.example"))
	f.Add([]byte("\x16\x03\x01\x00\x05hello"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ServerName(b) // must not panic or hang
	})
}
