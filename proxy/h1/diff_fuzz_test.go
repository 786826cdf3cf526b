package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"reflect"
	"strings"
	"testing"
)

// FuzzHeadVsNetHTTP: where the proxy accepts a request head, net/http's
// parser accepts it too and sees the same method, target, version and
// fields; where net/http accepts one the proxy refuses, the reason is one
// of the proxy's deliberate extra rules.
func FuzzHeadVsNetHTTP(f *testing.F) {
	for _, s := range []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "get / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 || b[0] == '\r' || b[0] == '\n' {
			return // leading empty lines: the proxy skips them (RFC 9112 §2.2), net/http does not
		}
		head, _, err := readHead(bufio.NewReader(bytes.NewReader(b)), 1<<16, nil)
		if err != nil {
			return
		}
		goReq, goErr := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		fr := scanHead(head)
		ours, ourErr := parseHead(head)
		if ourErr == nil && goErr != nil {
			t.Fatalf("proxy accepts what net/http refuses (%v): %q", goErr, head)
		}
		if ourErr == nil {
			if ours.Method != goReq.Method || ours.RequestURI != goReq.RequestURI || ours.Proto != goReq.Proto || !reflect.DeepEqual(ours.Header, goReq.Header) {
				t.Fatalf("parsed differently: %q", head)
			}
			return
		}
		if goErr == nil && KnownMethod(goReq.Method) && !(fr.cl && fr.te) && (!fr.te || fr.chunkedOnly()) {
			t.Fatalf("proxy refuses (%v) what net/http accepts: %q", ourErr, head)
		}
	})
}

// FuzzChunkedVsNetHTTP: where the proxy's chunked decoder accepts a body,
// net/http's decodes the same bytes (except chunk extensions after BWS,
// which RFC 9112 allows and net/http refuses).
func FuzzChunkedVsNetHTTP(f *testing.F) {
	for _, s := range []string{"5\r\nhello\r\n0\r\n\r\n", "5 ; e=1\r\nhello\r\n0\r\n\r\n", "0x5\r\nhello\r\n0\r\n\r\n", "5\nhello\n0\n\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ours, ourErr := io.ReadAll(&chunkedBody{br: bufio.NewReader(bytes.NewReader(b))})
		theirs, goErr := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(b)))
		if ourErr != nil {
			return
		}
		if goErr != nil {
			if strings.Contains(string(b), " ;") || strings.Contains(string(b), "\t;") {
				return
			}
			t.Fatalf("proxy accepts what net/http refuses (%v): %q", goErr, b)
		}
		if !bytes.Equal(ours, theirs) {
			t.Fatalf("decoded differently: %q vs %q from %q", ours, theirs, b)
		}
	})
}
