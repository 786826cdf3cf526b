package h1

import "testing"

func TestConflict(t *testing.T) {
	for head, want := range map[string]bool{
		"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n":  true,
		"POST / HTTP/1.1\r\ncontent-length : 1\r\ntransfer-encoding: chunked\r\n\r\n": true,
		"POST / HTTP/1.1\r\nContent-Length: 1\r\n\r\n":                                false,
		"GET /a:b HTTP/1.1\r\nX-Transfer-Encoding: x\r\nContent-Length: 0\r\n\r\n":    false,
	} {
		if got := Conflict([]byte(head)); got != want {
			t.Errorf("Conflict(%q) = %v", head, got)
		}
	}
}

func FuzzConflict(f *testing.F) {
	f.Add([]byte("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) { Conflict(b) })
}
