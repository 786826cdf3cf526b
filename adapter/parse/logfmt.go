package parse

// Logfmt parses key=value pairs (values bare or double-quoted). Bare words
// without '=' become part of the message when no msg key is present.
type Logfmt struct{}

// Parse implements Parser.
func (Logfmt) Parse(line []byte, r *Record) error {
	line = trimSpace(line)
	if len(line) == 0 {
		return fail("logfmt: empty line")
	}
	words := parseKV(line, r)
	if r.Message == nil {
		if words {
			r.Message = line
		} else if len(r.Fields) == 0 {
			return fail("logfmt: no key=value pairs")
		} else {
			r.Message = line
		}
	}
	return nil
}

// parseKV reads key=value pairs from b into r and reports whether it met
// bare words (tokens without '=').
func parseKV(b []byte, r *Record) (words bool) {
	i := 0
	for i < len(b) {
		for i < len(b) && isSpace(b[i]) {
			i++
		}
		if i >= len(b) {
			break
		}
		ks := i
		for i < len(b) && b[i] != '=' && !isSpace(b[i]) && b[i] != '"' {
			i++
		}
		if i >= len(b) || b[i] != '=' || i == ks {
			// a bare word: skip it (quoted words whole)
			words = true
			if i < len(b) && b[i] == '"' {
				i = endQuoted(b, i)
			}
			for i < len(b) && !isSpace(b[i]) {
				i++
			}
			continue
		}
		key := b[ks:i]
		i++ // '='
		var val []byte
		kind := String
		if i < len(b) && b[i] == '"' {
			e := endQuoted(b, i)
			if e-1 > i && b[e-1] == '"' {
				val, kind = b[i+1:e-1], Quoted
			} else { // unterminated quote: keep the rest as text
				val = b[i:e]
			}
			i = e
		} else {
			vs := i
			for i < len(b) && !isSpace(b[i]) {
				i++
			}
			val = b[vs:i]
		}
		if assign(r, key, val, kind) {
			continue
		}
		if hasKey(r, key) { // keep the first of duplicated keys: JSON objects must not repeat keys
			continue
		}
		r.Add(key, val, kind)
	}
	return words
}

func hasKey(r *Record, k []byte) bool {
	for i := range r.Fields {
		if string(r.Fields[i].Key) == string(k) {
			return true
		}
	}
	return false
}

// endQuoted returns the index after the closing quote of the quoted string
// at b[i], or len(b) when it is unterminated.
func endQuoted(b []byte, i int) int {
	i++
	for i < len(b) {
		switch b[i] {
		case '\\':
			i += 2
			continue
		case '"':
			return i + 1
		}
		i++
	}
	return len(b)
}

// Legacy parses the seed application's format:
//
//	2024-01-15 14:32:01 INFO order_id=ORD-9921 status=FULFILLED
//
// date, time, level, then logfmt pairs and free text (the message is
// everything after the level).
type Legacy struct{}

// Parse implements Parser.
func (Legacy) Parse(line []byte, r *Record) error {
	line = trimSpace(line)
	// "2006-01-02 15:04:05" with optional fraction (.123 or ,123)
	if len(line) < 19 || line[4] != '-' || line[7] != '-' || (line[10] != ' ' && line[10] != 'T') || line[13] != ':' || line[16] != ':' {
		return fail("legacy: want \"YYYY-MM-DD hh:mm:ss LEVEL ...\"")
	}
	for _, p := range [...]int{0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18} {
		if line[p] < '0' || line[p] > '9' {
			return fail("legacy: bad timestamp")
		}
	}
	i := 19
	if i < len(line) && (line[i] == '.' || line[i] == ',') {
		i++
		for i < len(line) && line[i] >= '0' && line[i] <= '9' {
			i++
		}
	}
	if i < len(line) && (line[i] == 'Z' || line[i] == '+' || line[i] == '-') {
		for i < len(line) && !isSpace(line[i]) {
			i++
		}
	}
	r.Time = line[:i]
	if i >= len(line) || !isSpace(line[i]) {
		return fail("legacy: no level after timestamp")
	}
	for i < len(line) && isSpace(line[i]) {
		i++
	}
	ls := i
	for i < len(line) && !isSpace(line[i]) {
		i++
	}
	lvl := line[ls:i]
	if len(lvl) > 0 && lvl[0] == '[' && lvl[len(lvl)-1] == ']' {
		lvl = lvl[1 : len(lvl)-1]
	}
	if len(lvl) == 0 {
		return fail("legacy: no level after timestamp")
	}
	r.Level = lvl
	for i < len(line) && isSpace(line[i]) {
		i++
	}
	rest := line[i:]
	head := rest
	if nl := indexNL(head); nl >= 0 {
		// a multi-line record (stack trace): pairs come from its first
		// line only, not from frames and exception text
		head = head[:nl]
	}
	parseKV(head, r) // a msg= pair becomes the message
	if r.Message == nil {
		r.Message = rest
	}
	return nil
}

func indexNL(b []byte) int {
	for i, c := range b {
		if c == '\n' {
			return i
		}
	}
	return -1
}
