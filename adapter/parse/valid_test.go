package parse

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzValidJSON checks the fast validator against encoding/json.Valid.
func FuzzValidJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":[1,2.5e-3,-0,true,false,null,"x\u00e9\n"]}`, `{"a":01}`, `{"a":1.}`, `[`, `"\x01"`, `{"a" 1}`, `-`, `1e+`, ` {"a":{"b":{}}} `, `{"a":1,}`, `"\ud800"`, strings.Repeat("[", 600) + strings.Repeat("]", 600)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, encoding/json says %v", b, got, want)
		}
	})
}
