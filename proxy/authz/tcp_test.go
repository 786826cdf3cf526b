package authz

import (
	"net"
	"testing"
)

// Istio's TCP semantics for connections that are not HTTP.
func TestDecideTCP(t *testing.T) {
	paths := []To{{Operation: Operation{Paths: []string{"/admin*"}}}}
	cases := []struct {
		name string
		pols []Policy
		in   Input
		want bool
	}{
		{"no policy", nil, Input{}, true},
		{"DENY with paths matches", []Policy{{Action: "DENY", Rules: []Rule{{To: paths}}}}, Input{}, false},
		{"DENY with methods matches", []Policy{{Action: "DENY", Rules: []Rule{{To: []To{{Operation: Operation{Methods: []string{"DELETE"}}}}}}}}, Input{}, false},
		{"DENY with header condition matches", []Policy{{Action: "DENY", Rules: []Rule{{When: []Condition{{Key: "request.headers[x-a]", Values: []string{"b"}}}}}}}, Input{}, false},
		{"DENY with paths and other source does not match", []Policy{{Action: "DENY", Rules: []Rule{{From: []From{{Source: Source{IPBlocks: []string{"10.0.0.0/8"}}}}, To: paths}}}}, Input{SourceIP: net.ParseIP("127.0.0.1")}, true},
		{"ALLOW with paths never matches", []Policy{{Action: "ALLOW", Rules: []Rule{{To: paths}}}}, Input{}, false},
		{"ALLOW with requestPrincipals never matches", []Policy{{Action: "ALLOW", Rules: []Rule{{From: []From{{Source: Source{RequestPrincipals: []string{"*"}}}}}}}}, Input{}, false},
		{"ALLOW by principal matches", []Policy{{Action: "ALLOW", Rules: []Rule{{From: []From{{Source: Source{Principals: []string{"cluster.local/ns/a/sa/b"}}}}}}}}, Input{Principal: "cluster.local/ns/a/sa/b"}, true},
		{"ALLOW by principal, other peer", []Policy{{Action: "ALLOW", Rules: []Rule{{From: []From{{Source: Source{Principals: []string{"cluster.local/ns/a/sa/b"}}}}}}}}, Input{Principal: "cluster.local/ns/a/sa/c"}, false},
		{"HTTP fields in the input are ignored", []Policy{{Action: "ALLOW", Rules: []Rule{{To: paths}}}}, Input{Path: "/admin"}, false},
	}
	for _, c := range cases {
		e, err := New(Config{Policies: c.pols}, Deps{})
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := e.DecideTCP(c.in); got != c.want {
			t.Errorf("%s: DecideTCP = %v, want %v", c.name, got, c.want)
		}
	}
}
