package h1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrFraming marks a request body whose framing is broken (a bad chunk
// size line, missing CRLF after chunk data, oversized trailers): the
// connection cannot be read further — nothing after it is parsed.
var ErrFraming = errors.New("h1: bad request body framing")

var (
	errHeadTooLarge = errors.New("request head too large")
	errBlankLines   = errors.New("too many empty lines before the request line")
)

// maxLeadingBlank is how many empty lines may precede a request line (RFC
// 9112 §2.2: a server SHOULD ignore at least one).
const maxLeadingBlank = 4

// readHead reads one request head — request line to the empty line, with
// the line endings — from br into buf[:0]. It skips up to maxLeadingBlank
// empty lines first. A head longer than max bytes (leading empty lines not
// counted) is errHeadTooLarge, exactly at max+1. got reports whether any
// byte of the head was read (for 408 versus a silent close).
func readHead(br *bufio.Reader, max int, buf []byte) (head []byte, got bool, err error) {
	head = buf[:0]
	blank := 0
	partial := false // the last segment read was not a whole line
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			got = true
		}
		if len(head)+len(line) > max {
			return nil, got, errHeadTooLarge
		}
		if err == bufio.ErrBufferFull {
			head = append(head, line...)
			partial = true
			continue
		}
		if err != nil {
			return nil, got || len(head) > 0, err
		}
		empty := !partial && (len(line) == 1 || len(line) == 2 && line[0] == '\r')
		partial = false
		if empty && len(head) == 0 {
			if blank++; blank > maxLeadingBlank {
				return nil, got, errBlankLines
			}
			continue
		}
		head = append(head, line...)
		if empty {
			return head, true, nil
		}
	}
}

// framing is what a raw head says about the body.
type framing struct {
	cl, te   bool     // Content-Length / Transfer-Encoding fields present
	teValues []string // every Transfer-Encoding field value
}

// scanHead reads the framing fields of a raw request head. A field name
// with whitespace before the colon is left to the parser (it refuses it).
func scanHead(head []byte) framing {
	var f framing
	first := true
	for len(head) > 0 {
		line := head
		if i := bytes.IndexByte(head, '\n'); i >= 0 {
			line, head = head[:i], head[i+1:]
		} else {
			head = nil
		}
		if first {
			first = false
			continue
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		switch {
		case len(name) == 14 && strings.EqualFold(string(name), "content-length"):
			f.cl = true
		case len(name) == 17 && strings.EqualFold(string(name), "transfer-encoding"):
			f.te = true
			f.teValues = append(f.teValues, string(bytes.TrimSpace(value)))
		}
	}
	return f
}

// chunkedOnly reports whether the Transfer-Encoding is exactly "chunked",
// the one coding the proxy forwards (anything else: 501, RFC 9112 §6.1).
func (f framing) chunkedOnly() bool {
	return len(f.teValues) == 1 && strings.EqualFold(f.teValues[0], "chunked")
}

// Conflict reports whether a request head has both Content-Length and
// Transfer-Encoding fields.
func Conflict(head []byte) bool {
	f := scanHead(append([]byte("X\n"), head...))
	return f.cl && f.te
}

// lengthBody is a Content-Length body: exactly n bytes; an earlier EOF is
// io.ErrUnexpectedEOF (the client aborted).
type lengthBody struct {
	br     *bufio.Reader
	remain int64
}

func (b *lengthBody) Read(p []byte) (int, error) {
	if b.remain <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := b.br.Read(p)
	b.remain -= int64(n)
	if err == io.EOF {
		if b.remain > 0 {
			return n, io.ErrUnexpectedEOF
		}
		err = nil
	}
	if err == nil && b.remain == 0 {
		err = io.EOF
	}
	return n, err
}

func (b *lengthBody) Close() error { return nil }

// chunkedBody decodes a chunked body strictly (RFC 9112 §7.1): chunk-size
// is 1–16 hex digits, then optional whitespace (BWS) and extensions, then
// CRLF; data is followed by CRLF; trailers are read and dropped. Anything
// else is ErrFraming and sticks.
type chunkedBody struct {
	br     *bufio.Reader
	remain int64 // data left in the current chunk
	state  int
	err    error
}

const (
	chSize = iota
	chData
	chDataEnd
	chDone
)

const maxChunkLine = 4096
const maxTrailerBytes = 16 << 10

func (b *chunkedBody) Read(p []byte) (int, error) {
	for b.err == nil {
		switch b.state {
		case chSize:
			line, err := readCRLFLine(b.br, maxChunkLine)
			if err != nil {
				b.err = err
				break
			}
			n, err := parseChunkSize(line)
			if err != nil {
				b.err = err
				break
			}
			if n == 0 {
				if err := b.skipTrailers(); err != nil {
					b.err = err
					break
				}
				b.state, b.err = chDone, io.EOF
				break
			}
			b.remain, b.state = n, chData
		case chData:
			if len(p) == 0 {
				return 0, nil
			}
			if int64(len(p)) > b.remain {
				p = p[:b.remain]
			}
			n, err := b.br.Read(p)
			b.remain -= int64(n)
			if b.remain == 0 {
				b.state = chDataEnd
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				b.err = err
			}
			return n, err
		case chDataEnd:
			var crlf [2]byte
			if _, err := io.ReadFull(b.br, crlf[:]); err != nil {
				b.err = unexpected(err)
				break
			}
			if crlf != [2]byte{'\r', '\n'} {
				b.err = fmt.Errorf("%w: chunk data not followed by CRLF", ErrFraming)
				break
			}
			b.state = chSize
		default:
			b.err = io.EOF
		}
	}
	return 0, b.err
}

func (b *chunkedBody) Close() error { return nil }

func (b *chunkedBody) skipTrailers() error {
	total := 0
	for {
		line, err := readCRLFLine(b.br, maxChunkLine)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
		if total += len(line); total > maxTrailerBytes {
			return fmt.Errorf("%w: trailers too large", ErrFraming)
		}
		if !bytes.Contains(line, []byte(":")) || line[0] == ' ' || line[0] == '\t' {
			return fmt.Errorf("%w: malformed trailer field", ErrFraming)
		}
	}
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readCRLFLine reads a line ending in CRLF (without it). A bare LF, a CR
// inside, or a line over max is ErrFraming.
func readCRLFLine(br *bufio.Reader, max int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) > max {
		return nil, fmt.Errorf("%w: chunk line too long", ErrFraming)
	}
	if err != nil {
		return nil, unexpected(err)
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("%w: chunk line not ended by CRLF", ErrFraming)
	}
	line = line[:len(line)-2]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, fmt.Errorf("%w: CR inside a chunk line", ErrFraming)
	}
	return line, nil
}

// parseChunkSize parses `chunk-size [BWS ; ext...]`.
func parseChunkSize(line []byte) (int64, error) {
	var n int64
	i := 0
	for ; i < len(line); i++ {
		c := line[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			goto rest
		}
		if i >= 16 || n > (1<<62)>>4 {
			return 0, fmt.Errorf("%w: chunk size too large", ErrFraming)
		}
		n = n<<4 | int64(d)
	}
rest:
	if i == 0 {
		return 0, fmt.Errorf("%w: bad chunk size %q", ErrFraming, trunc(line))
	}
	ext := line[i:]
	ext = bytes.TrimLeft(ext, " \t")
	if len(ext) == 0 {
		if len(line[i:]) > 0 {
			return 0, fmt.Errorf("%w: whitespace after chunk size without extension", ErrFraming)
		}
		return n, nil
	}
	if ext[0] != ';' {
		return 0, fmt.Errorf("%w: bad chunk size %q", ErrFraming, trunc(line))
	}
	for _, c := range ext {
		if c < ' ' && c != '\t' || c == 0x7f {
			return 0, fmt.Errorf("%w: control character in chunk extension", ErrFraming)
		}
	}
	return n, nil
}

func trunc(b []byte) string {
	if len(b) > 32 {
		b = b[:32]
	}
	return string(b)
}

// methods are the request methods the proxy accepts (Envoy's HTTP/1
// codec's set); anything else — "get", "FOO" — is 400, as Envoy answers.
var methods = func() map[string]bool {
	set := map[string]bool{}
	for _, m := range strings.Fields(`GET HEAD POST PUT DELETE CONNECT OPTIONS TRACE PATCH
		PROPFIND PROPPATCH MKCOL COPY MOVE LOCK UNLOCK SEARCH REPORT MKCALENDAR PURGE
		ACL BIND CHECKOUT LINK M-SEARCH MERGE MKACTIVITY MKWORKSPACE NOTIFY REBIND
		SUBSCRIBE UNBIND UNLINK UNSUBSCRIBE UNCHECKOUT VERSION-CONTROL LABEL BASELINE-CONTROL
		MKREDIRECTREF ORDERPATCH UPDATE UPDATEREDIRECTREF QUERY PRI`) {
		set[m] = true
	}
	return set
}()

// KnownMethod reports whether the proxy accepts method.
func KnownMethod(m string) bool { return methods[m] }
