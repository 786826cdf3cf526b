package parse

// Syslog parses RFC 5424 and RFC 3164 lines, with or without the <PRI>
// header (files written by syslog daemons usually have none). Only, when
// set to 3164 or 5424, restricts it to that format. RFC 3164 timestamps may
// also be RFC 3339 (rsyslog's default file format).
type Syslog struct{ Only int }

var (
	kFacility = []byte("syslog.facility")
	kSeverity = []byte("syslog.severity")
	kHost     = []byte("syslog.hostname")
	kApp      = []byte("syslog.appname")
	kProcID   = []byte("syslog.procid")
	kMsgID    = []byte("syslog.msgid")
	kSD       = []byte("syslog.structured_data")

	facilities = [...]string{"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp", "security", "console", "solaris-cron", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"}
	severities = [...]string{"EMERG", "ALERT", "CRIT", "ERROR", "WARN", "NOTICE", "INFO", "DEBUG"}
	digits     = [...]string{"0", "1", "2", "3", "4", "5", "6", "7"}

	facB, sevB, digB = toBytes(facilities[:]), toBytes(severities[:]), toBytes(digits[:])
)

func toBytes(ss []string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

// Parse implements Parser.
func (s Syslog) Parse(line []byte, r *Record) error {
	line = trimSpace(line)
	i := 0
	pri := -1
	if len(line) > 0 && line[0] == '<' {
		n, j := 0, 1
		for j < len(line) && j < 5 && line[j] >= '0' && line[j] <= '9' {
			n = n*10 + int(line[j]-'0')
			j++
		}
		if j == 1 || j >= len(line) || line[j] != '>' || n > 191 {
			return fail("syslog: bad <PRI>")
		}
		pri, i = n, j+1
	}
	if pri >= 0 {
		fac := pri / 8
		r.Add(kFacility, facB[fac], String)
		r.Add(kSeverity, digB[pri%8], String)
		r.Level = sevB[pri%8]
	}
	is5424 := len(line) > i+1 && line[i] == '1' && line[i+1] == ' '
	switch {
	case is5424 && s.Only != 3164:
		return parse5424(line[i+2:], r)
	case s.Only == 5424:
		return fail("syslog5424: want \"<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG\"")
	}
	return parse3164(line[i:], r)
}

func nextToken(b []byte) (tok, rest []byte, ok bool) {
	i := 0
	for i < len(b) && b[i] != ' ' {
		i++
	}
	if i == 0 {
		return nil, b, false
	}
	tok = b[:i]
	for i < len(b) && b[i] == ' ' {
		i++
	}
	return tok, b[i:], true
}

func nilValue(b []byte) bool { return len(b) == 1 && b[0] == '-' }

func parse5424(b []byte, r *Record) error {
	var ts, host, app, proc, msgid []byte
	var ok bool
	for _, p := range []*[]byte{&ts, &host, &app, &proc, &msgid} {
		if *p, b, ok = nextToken(b); !ok {
			return fail("syslog5424: missing header field")
		}
	}
	if !nilValue(ts) {
		r.Time = ts
	}
	for _, f := range []struct {
		k, v []byte
	}{{kHost, host}, {kApp, app}, {kProcID, proc}, {kMsgID, msgid}} {
		if !nilValue(f.v) {
			r.Add(f.k, f.v, String)
		}
	}
	// structured data: "-" or one or more [id k="v" ...]
	switch {
	case len(b) > 0 && b[0] == '-':
		b = b[1:]
	case len(b) > 0 && b[0] == '[':
		i := 0
		for i < len(b) && b[i] == '[' {
			j := i + 1
			for j < len(b) && b[j] != ']' {
				if b[j] == '\\' {
					j++
				} else if b[j] == '"' {
					j = endQuoted(b, j) - 1
				}
				j++
			}
			if j >= len(b) {
				return fail("syslog5424: unterminated structured data")
			}
			i = j + 1
		}
		r.Add(kSD, b[:i], String)
		b = b[i:]
	default:
		if len(b) > 0 {
			return fail("syslog5424: bad structured data")
		}
	}
	if len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	// a UTF-8 BOM may start the message
	if len(b) >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		b = b[3:]
	}
	r.Message = b
	return nil
}

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

func parse3164(b []byte, r *Record) error {
	// timestamp: "Mmm dd hh:mm:ss" (dd space-padded) or RFC 3339
	switch {
	case len(b) >= 15 && isMonth(b[:3]) && b[3] == ' ' && b[6] == ' ' && b[9] == ':' && b[12] == ':':
		r.Time = b[:15]
		b = b[15:]
	case len(b) >= 19 && b[4] == '-' && b[7] == '-' && b[10] == 'T':
		i := 0
		for i < len(b) && b[i] != ' ' {
			i++
		}
		r.Time = b[:i]
		b = b[i:]
	default:
		return fail("syslog3164: want \"Mmm dd hh:mm:ss host tag: msg\"")
	}
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	host, rest, ok := nextToken(b)
	if !ok {
		return fail("syslog3164: no hostname")
	}
	r.Add(kHost, host, String)
	b = rest
	// tag[pid]: (optional)
	i := 0
	for i < len(b) && i < 64 && b[i] != ':' && b[i] != '[' && b[i] != ' ' {
		i++
	}
	if i > 0 && i < len(b) && (b[i] == ':' || b[i] == '[') {
		r.Add(kApp, b[:i], String)
		if b[i] == '[' {
			j := i + 1
			for j < len(b) && b[j] != ']' {
				j++
			}
			if j < len(b) {
				r.Add(kProcID, b[i+1:j], String)
				i = j + 1
			}
		}
		if i < len(b) && b[i] == ':' {
			i++
		}
		b = b[i:]
		for len(b) > 0 && b[0] == ' ' {
			b = b[1:]
		}
	}
	r.Message = b
	return nil
}

func isMonth(b []byte) bool {
	for _, m := range months {
		if string(b) == m {
			return true
		}
	}
	return false
}
