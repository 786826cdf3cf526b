package admin

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// DefaultControlFrom is who may use the control endpoints by default: a
// process in the pod talking to 127.0.0.1 or ::1. Not all of 127.0.0.0/8:
// the proxy forwards captured inbound traffic to local ports from
// 127.0.0.6 (::6), so a remote client would arrive from there.
var DefaultControlFrom = []string{"127.0.0.1/32", "::1/128"}

// Control reports whether r is for a control endpoint: anything that
// changes the helper's state (every method but GET and HEAD: /drain,
// /quitquitquit, the proxy's /healthcheck/fail|ok and /drain_listeners)
// or shows its inside (/debug/pprof/..., the proxy's /config_dump). The
// rest — probes, /metrics, /version, /stats, /status — is read-only and may
// be served to the pod network (the kubelet and Prometheus come from there).
func Control(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return true
	}
	p := r.URL.Path
	return strings.HasPrefix(p, "/debug/") || p == "/config_dump"
}

// ParseControlFrom parses --admin-control-from: CIDRs or single addresses.
func ParseControlFrom(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Guard serves control endpoints (see Control) only to clients whose
// address is in allow and answers 403 to everyone else; read-only
// endpoints pass to everyone.
func Guard(next http.Handler, allow []netip.Prefix) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if Control(r) && !allowed(r.RemoteAddr, allow) {
			http.Error(w, fmt.Sprintf("%s %s is served only to clients in --admin-control-from (%s)", r.Method, r.URL.Path, prefixes(allow)), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func allowed(remote string, allow []netip.Prefix) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func prefixes(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return "nobody"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
