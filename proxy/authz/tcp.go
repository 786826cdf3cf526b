package authz

import "strings"

// DecideTCP decides a connection that is not HTTP (raw TCP, or TLS passed
// through) with Istio's TCP semantics: HTTP-only fields (hosts, methods,
// paths, requestPrincipals, request.* conditions) cannot be evaluated, so
//
//   - a DENY rule ignores them and matches on its remaining fields (it is
//     more restrictive, never less);
//   - an ALLOW rule that has any of them never matches.
//
// Nothing reaches the app over raw TCP that the same policies would refuse
// as HTTP. in carries the connection's source (peer principal, namespace,
// IP); its HTTP fields are ignored.
func (e *Engine) DecideTCP(in Input) (bool, string) {
	in.Method, in.Path, in.Host, in.Header, in.Auth, in.RequestPrincipal = "", "", "", nil, nil, ""
	for _, p := range e.deny {
		for _, r := range p.Rules {
			if r.withoutHTTP().matches(in) {
				return false, p.Name
			}
		}
	}
	if len(e.allow) == 0 {
		return true, ""
	}
	for _, p := range e.allow {
		for _, r := range p.Rules {
			if !r.hasHTTP() && r.matches(in) {
				return true, p.Name
			}
		}
	}
	return false, ""
}

// hasHTTP reports whether r uses a field only an HTTP request has.
func (r Rule) hasHTTP() bool {
	for _, f := range r.From {
		if len(f.Source.RequestPrincipals) > 0 || len(f.Source.NotRequestPrincipals) > 0 {
			return true
		}
	}
	for _, t := range r.To {
		o := t.Operation
		if len(o.Hosts)+len(o.NotHosts)+len(o.Methods)+len(o.NotMethods)+len(o.Paths)+len(o.NotPaths) > 0 {
			return true
		}
	}
	for _, c := range r.When {
		if httpKey(c.Key) {
			return true
		}
	}
	return false
}

// withoutHTTP returns r with its HTTP-only fields removed.
func (r Rule) withoutHTTP() Rule {
	var out Rule
	for _, f := range r.From {
		f.Source.RequestPrincipals, f.Source.NotRequestPrincipals = nil, nil
		out.From = append(out.From, f)
	}
	if len(r.To) > 0 {
		// Every operation field is HTTP-only: each operation matches any connection.
		out.To = nil
	}
	for _, c := range r.When {
		if !httpKey(c.Key) {
			out.When = append(out.When, c)
		}
	}
	return out
}

func httpKey(k string) bool { return strings.HasPrefix(k, "request.") }
