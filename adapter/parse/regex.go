package parse

import (
	"fmt"
	"regexp"
)

// Regex parses lines with a regular expression's named groups: time (or
// timestamp), level (or severity), message (or msg) fill the slots, every
// other named group becomes a field.
type Regex struct {
	re    *regexp.Regexp
	names []string
	keys  [][]byte
}

// NewRegex compiles pattern; it must have at least one named group.
func NewRegex(pattern string) (*Regex, error) {
	if pattern == "" {
		return nil, fmt.Errorf("regex parser needs a pattern")
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %v", pattern, err)
	}
	named := 0
	for _, n := range re.SubexpNames() {
		if n != "" {
			named++
		}
	}
	if named == 0 {
		return nil, fmt.Errorf("regex %q has no named groups (?P<name>...)", pattern)
	}
	p := &Regex{re: re, names: re.SubexpNames()}
	for _, n := range p.names {
		p.keys = append(p.keys, []byte(n))
	}
	return p, nil
}

// Parse implements Parser.
func (p *Regex) Parse(line []byte, r *Record) error {
	line = trimCR(line)
	m := p.re.FindSubmatchIndex(line)
	if m == nil {
		return fail("regex: no match")
	}
	for g := 1; g < len(p.names); g++ {
		if p.names[g] == "" || m[2*g] < 0 {
			continue
		}
		k, v := p.keys[g], line[m[2*g]:m[2*g+1]]
		if assign(r, k, v, String) {
			continue
		}
		r.Add(k, v, String)
	}
	if r.Message == nil {
		r.Message = line
	}
	return nil
}
