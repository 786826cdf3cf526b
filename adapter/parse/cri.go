package parse

// CRI parses the Kubernetes CRI container log format written by containerd
// and CRI-O:
//
//	2016-10-06T00:17:09.669794202Z stdout F the log line
//
// The tag is F (full) or P (partial); partial lines are joined by Joiner
// before they reach the parser.
type CRI struct{}

var kStream = []byte("stream")

// SplitCRI splits a CRI line into its parts.
func SplitCRI(line []byte) (ts, stream []byte, partial bool, msg []byte, ok bool) {
	ts, rest, ok := nextToken(line)
	if !ok || len(ts) < 20 || ts[4] != '-' || ts[10] != 'T' {
		return nil, nil, false, nil, false
	}
	stream, rest, ok = nextToken(rest)
	if !ok || (string(stream) != "stdout" && string(stream) != "stderr") {
		return nil, nil, false, nil, false
	}
	// the tag may carry more flags after ':' in future versions (F:x)
	if len(rest) == 0 || (rest[0] != 'F' && rest[0] != 'P') {
		return nil, nil, false, nil, false
	}
	partial = rest[0] == 'P'
	i := 1
	for i < len(rest) && rest[i] != ' ' {
		i++
	}
	if i < len(rest) {
		i++
	}
	return ts, stream, partial, rest[i:], true
}

// Parse implements Parser.
func (CRI) Parse(line []byte, r *Record) error {
	ts, stream, _, msg, ok := SplitCRI(trimCR(line))
	if !ok {
		return fail("cri: want \"TIMESTAMP stdout|stderr F|P message\"")
	}
	r.Time = ts
	r.Add(kStream, stream, String)
	r.Message = msg
	return nil
}

func trimCR(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\r' {
		return b[:len(b)-1]
	}
	return b
}
