package normalize

import (
	"fmt"
	"strings"
	"time"
)

// layouts are tried, in order, for timestamps the fast ISO 8601 path does
// not take. Layouts without a zone are read in the configured time zone.
var layouts = []string{
	time.RFC3339Nano,
	"02/Jan/2006:15:04:05 -0700", // nginx/apache
	"Jan _2 15:04:05",            // syslog 3164 (no year)
	"Jan _2 15:04:05.000000",
	"Jan _2 2006 15:04:05",
	"2006/01/02 15:04:05.000000", // Go's log package
	"2006/01/02 15:04:05",
	"02-Jan-2006 15:04:05.000", // Tomcat
	"02-Jan-2006 15:04:05",
	"Mon Jan _2 15:04:05 2006", // ANSIC
	"Mon Jan _2 15:04:05 MST 2006",
	"Mon Jan 02 15:04:05 -0700 2006",
	time.RFC1123,
	time.RFC1123Z,
	time.RFC850,
	"2006-01-02T15:04:05.999999999-0700",
	"2006-01-02 15:04:05.999999999 -0700 MST", // Go's time.String
	"20060102T150405Z",
	"060102 15:04:05",   // MySQL
	"06/01/02 15:04:05", // Spark (log4j yy/MM/dd HH:mm:ss)
	"060102 150405",     // HDFS (yyMMdd HHmmss)
}

// ParseTime reads a timestamp in one of many layouts: ISO 8601 / RFC 3339
// (T or space, fraction with . or ,, Z or ±hh:mm or none), epoch seconds,
// milliseconds, microseconds or nanoseconds, and the layouts above. Times
// without a zone are in loc; times without a year get the year that puts
// them nearest before now.
func ParseTime(b []byte, loc *time.Location, now time.Time) (time.Time, bool) {
	if t, ok := parseISO(b, loc); ok {
		return t, true
	}
	if t, ok := parseEpoch(b); ok {
		return t, true
	}
	s := string(b)
	for _, l := range layouts {
		if t, ok := parseLayout(l, s, loc, now); ok {
			return t, true
		}
	}
	return time.Time{}, false
}

func parseLayout(l, s string, loc *time.Location, now time.Time) (time.Time, bool) {
	t, err := time.ParseInLocation(l, s, loc)
	if err != nil {
		return time.Time{}, false
	}
	if t.Year() == 0 { // no year in the layout
		n := now.In(loc)
		t = time.Date(n.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), loc)
		if t.After(n.Add(48 * time.Hour)) {
			t = t.AddDate(-1, 0, 0)
		}
	}
	return t, true
}

// Layout turns a timestamp pattern into a Go time layout: Go layouts
// (2006-01-02 15:04:05) are returned as they are; Java/log4j-style
// patterns (yyyy-MM-dd HH:mm:ss.SSS, yy/MM/dd HH:mm:ss, yyMMdd HHmmss) are
// converted. It fails on a pattern that holds no date or time field.
func Layout(p string) (string, error) {
	if strings.Contains(p, "2006") || strings.Contains(p, "15:04") || strings.Contains(p, "Jan") || strings.Contains(p, "06") && strings.Contains(p, "01") {
		return p, nil
	}
	repl := []struct{ from, to string }{
		{"yyyy", "2006"}, {"yy", "06"}, {"MMMM", "January"}, {"MMM", "Jan"}, {"MM", "01"}, {"dd", "02"}, {"d", "2"},
		{"HH", "15"}, {"hh", "03"}, {"mm", "04"}, {"ss", "05"}, {"SSSSSSSSS", "000000000"}, {"SSSSSS", "000000"}, {"SSS", "000"},
		{"a", "PM"}, {"XXX", "Z07:00"}, {"Z", "-0700"}, {"EEE", "Mon"},
	}
	var out strings.Builder
	fields := 0
	for i := 0; i < len(p); {
		matched := false
		for _, r := range repl {
			if strings.HasPrefix(p[i:], r.from) {
				out.WriteString(r.to)
				i += len(r.from)
				matched, fields = true, fields+1
				break
			}
		}
		if !matched {
			c := p[i]
			if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' {
				return "", fmt.Errorf("timestamp pattern %q: unknown letter %q", p, c)
			}
			out.WriteByte(c)
			i++
		}
	}
	if fields == 0 {
		return "", fmt.Errorf("timestamp pattern %q has no date or time field", p)
	}
	return out.String(), nil
}

func num(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func parseISO(b []byte, loc *time.Location) (time.Time, bool) {
	if len(b) < 19 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != ' ' && b[10] != 't') || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	y, ok1 := num(b[0:4])
	mo, ok2 := num(b[5:7])
	d, ok3 := num(b[8:10])
	h, ok4 := num(b[11:13])
	mi, ok5 := num(b[14:16])
	s, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 24 || mi > 59 || s > 60 {
		return time.Time{}, false
	}
	i := 19
	ns := 0
	if i < len(b) && (b[i] == '.' || b[i] == ',') {
		i++
		digits := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if digits < 9 {
				ns = ns*10 + int(b[i]-'0')
				digits++
			}
			i++
		}
		if digits == 0 {
			return time.Time{}, false
		}
		for ; digits < 9; digits++ {
			ns *= 10
		}
	}
	zone := loc
	if i < len(b) && b[i] == ' ' && i+1 < len(b) { // "2024-01-15 14:32:01 +0100" or " UTC"
		if b[i+1] == '+' || b[i+1] == '-' || b[i+1] == 'Z' || string(b[i+1:]) == "UTC" {
			i++
		}
	}
	switch {
	case i == len(b):
	case b[i] == 'Z' || b[i] == 'z':
		zone = time.UTC
		i++
	case string(b[i:]) == "UTC":
		zone = time.UTC
		i = len(b)
	case b[i] == '+' || b[i] == '-':
		z := b[i+1:]
		var zh, zm int
		var ok bool
		switch {
		case len(z) == 5 && z[2] == ':':
			zh, ok = num(z[0:2])
			m, ok2 := num(z[3:5])
			zm, ok = m, ok && ok2
		case len(z) == 4:
			zh, ok = num(z[0:2])
			m, ok2 := num(z[2:4])
			zm, ok = m, ok && ok2
		case len(z) == 2:
			zh, ok = num(z)
		}
		if !ok || zh > 23 || zm > 59 {
			return time.Time{}, false
		}
		off := zh*3600 + zm*60
		if b[i] == '-' {
			off = -off
		}
		zone = fixedZone(off)
		i = len(b)
	}
	if i != len(b) {
		return time.Time{}, false
	}
	t := time.Date(y, time.Month(mo), d, h, mi, s, ns, zone)
	if t.Day() != d { // Feb 31 and friends
		return time.Time{}, false
	}
	return t, true
}

func fixedZone(off int) *time.Location {
	if off == 0 {
		return time.UTC
	}
	return time.FixedZone("", off)
}

func parseEpoch(b []byte) (time.Time, bool) {
	if len(b) < 9 || len(b) > 20 {
		return time.Time{}, false
	}
	ip, frac := b, []byte(nil)
	for i, c := range b {
		if c == '.' {
			ip, frac = b[:i], b[i+1:]
			break
		}
	}
	n, ok := num(ip)
	if !ok {
		return time.Time{}, false
	}
	switch len(ip) {
	case 9, 10:
		ns := 0
		if len(frac) > 0 {
			digits := 0
			for _, c := range frac {
				if c < '0' || c > '9' {
					return time.Time{}, false
				}
				if digits < 9 {
					ns = ns*10 + int(c-'0')
					digits++
				}
			}
			for ; digits < 9; digits++ {
				ns *= 10
			}
		}
		return time.Unix(int64(n), int64(ns)), true
	case 13:
		return time.UnixMilli(int64(n)), len(frac) == 0
	case 16:
		return time.UnixMicro(int64(n)), len(frac) == 0
	case 19:
		return time.Unix(0, int64(n)), len(frac) == 0
	}
	return time.Time{}, false
}

// AppendTime appends t as RFC 3339 in UTC (fraction only when non-zero).
func AppendTime(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, time.RFC3339Nano)
}

var daysIn = [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// isoUTC rewrites "YYYY-MM-DD[T ]hh:mm:ss[.frac][Z]" (a UTC or zone-less
// time read as UTC) straight into RFC 3339 without going through
// time.Time: the hot path for most log timestamps.
func isoUTC(dst, b []byte) ([]byte, bool) {
	if len(b) < 19 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != ' ') || b[13] != ':' || b[16] != ':' {
		return dst, false
	}
	y, ok1 := num(b[0:4])
	mo, ok2 := num(b[5:7])
	d, ok3 := num(b[8:10])
	h, ok4 := num(b[11:13])
	mi, ok5 := num(b[14:16])
	s, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || d < 1 || d > daysIn[mo] || h > 23 || mi > 59 || s > 59 {
		return dst, false
	}
	if mo == 2 && d == 29 && !(y%4 == 0 && (y%100 != 0 || y%400 == 0)) {
		return dst, false
	}
	rest := b[19:]
	var frac []byte
	if len(rest) > 0 && (rest[0] == '.' || rest[0] == ',') {
		i := 1
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 1 || i > 10 {
			return dst, false
		}
		frac = rest[1:i]
		rest = rest[i:]
	}
	if len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z') {
		rest = nil
	}
	if len(rest) != 0 {
		return dst, false
	}
	for len(frac) > 0 && frac[len(frac)-1] == '0' {
		frac = frac[:len(frac)-1]
	}
	dst = append(dst, b[:10]...)
	dst = append(dst, 'T')
	dst = append(dst, b[11:19]...)
	if len(frac) > 0 {
		dst = append(dst, '.')
		dst = append(dst, frac...)
	}
	return append(dst, 'Z'), true
}
