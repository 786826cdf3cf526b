package parse

// Combined parses the nginx/apache "combined" access log format:
//
//	1.2.3.4 - user [10/Oct/2000:13:55:36 -0700] "GET /a HTTP/1.1" 200 2326 "http://ref/" "Mozilla/5.0"
//
// (the "common" format, without referrer and user agent, is accepted too).
// Fields use Elastic Common Schema names; the message is the whole line.
type Combined struct{}

var (
	kSource  = []byte("source.address")
	kUser    = []byte("user.name")
	kMethod  = []byte("http.request.method")
	kURL     = []byte("url.original")
	kVersion = []byte("http.version")
	kStatus  = []byte("http.response.status_code")
	kBytes   = []byte("http.response.body.bytes")
	kRef     = []byte("http.request.referrer")
	kUA      = []byte("user_agent.original")
	lvlInfo  = []byte("INFO")
	lvlWarn  = []byte("WARN")
	lvlError = []byte("ERROR")
)

// Parse implements Parser.
func (Combined) Parse(line []byte, r *Record) error {
	line = trimSpace(line)
	b := line
	addr, b, ok := nextToken(b)
	if !ok {
		return fail("combined: no client address")
	}
	_, b, ok = nextToken(b) // ident
	if !ok {
		return fail("combined: no ident")
	}
	user, b, ok := nextToken(b)
	if !ok {
		return fail("combined: no user")
	}
	if len(b) == 0 || b[0] != '[' {
		return fail("combined: want [time]")
	}
	j := 1
	for j < len(b) && b[j] != ']' {
		j++
	}
	if j >= len(b) {
		return fail("combined: unterminated [time]")
	}
	r.Time = b[1:j]
	b = b[j+1:]
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	req, b, ok := quoted(b)
	if !ok {
		return fail("combined: want \"request\"")
	}
	status, b, ok := nextToken(b)
	if !ok || len(status) != 3 || status[0] < '1' || status[0] > '5' {
		return fail("combined: bad status")
	}
	size, b, ok := nextToken(b)
	if !ok {
		return fail("combined: no size")
	}
	r.Add(kSource, addr, String)
	if !nilValue(user) {
		r.Add(kUser, user, String)
	}
	// request: METHOD URL PROTO (may be garbage for bad requests)
	if m, rest, ok := nextToken(req); ok && len(rest) > 0 {
		u, rest2, _ := nextToken(rest)
		r.Add(kMethod, m, String)
		r.Add(kURL, u, Quoted)
		if len(rest2) > 5 && string(rest2[:5]) == "HTTP/" {
			r.Add(kVersion, rest2[5:], String)
		}
	} else if len(req) > 0 {
		r.Add(kURL, req, Quoted)
	}
	r.Add(kStatus, status, numKind(status)) // numbers in the document
	if !nilValue(size) {
		r.Add(kBytes, size, numKind(size))
	}
	if ref, rest, ok := quoted(b); ok {
		if !nilValue(ref) {
			r.Add(kRef, ref, Quoted)
		}
		if ua, _, ok := quoted(rest); ok && !nilValue(ua) {
			r.Add(kUA, ua, Quoted)
		}
	}
	switch status[0] {
	case '5':
		r.Level = lvlError
	case '4':
		r.Level = lvlWarn
	default:
		r.Level = lvlInfo
	}
	r.Message = line
	return nil
}

// quoted reads a "..." token (backslash escapes kept) and the rest after it.
func quoted(b []byte) (v, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return nil, b, false
	}
	e := endQuoted(b, 0)
	if e < 2 || b[e-1] != '"' {
		return nil, b, false
	}
	v, rest = b[1:e-1], b[e:]
	for len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	return v, rest, true
}

// numKind is Raw (a JSON number) for plain digits, String otherwise.
func numKind(b []byte) Kind {
	if len(b) == 0 || len(b) > 18 || (len(b) > 1 && b[0] == '0') {
		return String
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return String
		}
	}
	return Raw
}
