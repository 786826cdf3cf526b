package parse

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// JSON parses one JSON object per line. Top-level time/level/message keys
// fill the record's slots; every other member is kept as a raw JSON value.
type JSON struct{}

// Parse implements Parser.
func (JSON) Parse(line []byte, r *Record) error {
	line = trimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return fail("json: not an object")
	}
	if !validJSON(line) {
		return fail("json: invalid JSON")
	}
	if !utf8.Valid(line) {
		return fail("json: invalid UTF-8")
	}
	i := 1
	for {
		i = skipWS(line, i)
		if line[i] == '}' {
			return nil
		}
		if line[i] == ',' {
			i = skipWS(line, i+1)
		}
		// key
		ks := i + 1
		ke := endString(line, i)
		key := line[ks : ke-1]
		i = skipWS(line, ke)
		i = skipWS(line, i+1) // ':'
		vs := i
		i = endValue(line, i)
		val := line[vs:i]
		if bytes.IndexByte(key, '\\') >= 0 { // rare: decode the key's escapes
			var k string
			if json.Unmarshal(line[ks-1:ke], &k) == nil {
				key = []byte(k)
			}
		}
		if val[0] == '"' && assign(r, key, val[1:len(val)-1], Quoted) {
			continue
		}
		if (val[0] == '-' || (val[0] >= '0' && val[0] <= '9')) && isTimeKey(key) && r.Time == nil {
			r.Time = val
			continue
		}
		if hasKey(r, key) { // JSON allows repeated keys; Elasticsearch does not: keep the first
			continue
		}
		r.Add(key, val, Raw)
	}
}

func isTimeKey(k []byte) bool {
	switch string(k) {
	case "time", "ts", "timestamp", "@timestamp":
		return true
	}
	return false
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// endString returns the index after the closing quote of the string at b[i].
func endString(b []byte, i int) int {
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
	return i
}

// endValue returns the index after the (valid) JSON value starting at b[i].
func endValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return endString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = endString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}
