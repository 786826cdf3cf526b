package h1

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestParseChunkSize(t *testing.T) {
	for line, want := range map[string]int64{
		"5": 5, "a": 10, "FF": 255, "5;ext=1": 5, "5 ; ext=1": 5, "5\t;e": 5, "0": 0,
		"0x10": -1, "-5": -1, "+5": -1, " 5": -1, "5 ": -1, strings.Repeat("F", 18): -1,
		strings.Repeat("F", 16): -1, "": -1, "5;\x01": -1, "g": -1,
	} {
		n, err := parseChunkSize([]byte(line))
		if want < 0 {
			if !errors.Is(err, ErrFraming) {
				t.Errorf("parseChunkSize(%q) = %d, %v; want a framing error", line, n, err)
			}
			continue
		}
		if err != nil || n != want {
			t.Errorf("parseChunkSize(%q) = %d, %v; want %d", line, n, err, want)
		}
	}
}

func TestChunkedBody(t *testing.T) {
	read := func(s string) (string, error) {
		b, err := io.ReadAll(&chunkedBody{br: bufio.NewReader(strings.NewReader(s))})
		return string(b), err
	}
	if got, err := read("5 ; a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET /next"); got != "hello" || err != nil {
		t.Errorf("valid body: %q %v", got, err)
	}
	for _, bad := range []string{"5\nhello\r\n0\r\n\r\n", "5\r\nhelloX\r\n0\r\n\r\n", "0x5\r\nhello\r\n0\r\n\r\n", "5\r\nhello\r\n0\r\nbad trailer\r\n\r\n"} {
		if _, err := read(bad); !errors.Is(err, ErrFraming) {
			t.Errorf("%q: err %v, want framing", bad, err)
		}
	}
	if _, err := read("5\r\nhel"); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut short: %v", err)
	}
}

func TestReadHeadExactLimit(t *testing.T) {
	head := "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("x", 5000) + "\r\n\r\n"
	for _, c := range []struct {
		max  int
		fail bool
	}{{len(head), false}, {len(head) - 1, true}} {
		_, _, err := readHead(bufio.NewReaderSize(strings.NewReader("\r\n"+head), 4096), c.max, nil)
		if (err != nil) != c.fail {
			t.Errorf("max %d for a %d-byte head: err %v", c.max, len(head), err)
		}
	}
}
