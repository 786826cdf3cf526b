package secrets

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/sidecarkit/sidecarkit/ambassador/lease"
	"github.com/sidecarkit/sidecarkit/ambassador/render"
)

// Vault fetches secrets from a Vault client (whose token the auth manager keeps).
type Vault struct {
	Client *vault.Client

	mu     sync.Mutex
	mounts map[string]mountInfo // path -> its mount
}

type mountInfo struct {
	path string
	kv2  bool
}

// Fetch reads path (a write when params are given, as pki/issue/<role> needs).
// A KV v2 path without its data/ segment ("secret/app") is read as
// "secret/data/app". "?version=N" pins a KV v2 version.
func (v *Vault) Fetch(ctx context.Context, path string, params []string) (*render.Secret, lease.State, error) {
	// The lease (and the refresh period) counts from before the request:
	// renewals come a little early rather than late, and static polling keeps
	// a steady period however long a read takes.
	now := time.Now()
	p, query, _ := strings.Cut(path, "?")
	p = strings.Trim(p, "/")
	kv2, p := v.kvPath(ctx, p)
	var (
		s   *vault.Secret
		err error
	)
	switch {
	case len(params) > 0:
		data := map[string]any{}
		for _, kv := range params {
			k, val, _ := strings.Cut(kv, "=")
			data[k] = val
		}
		s, err = v.Client.Logical().WriteWithContext(ctx, p, data)
	default:
		var q url.Values
		if query != "" {
			if q, err = url.ParseQuery(query); err != nil {
				return nil, lease.State{}, fmt.Errorf("secret %s: bad query: %w", path, err)
			}
		}
		s, err = v.Client.Logical().ReadWithDataWithContext(ctx, p, q)
	}
	if err != nil {
		return nil, lease.State{}, fmt.Errorf("read secret %s: %w", p, err)
	}
	if s == nil {
		return nil, lease.State{}, fmt.Errorf("read secret %s: %w", p, ErrNotFound)
	}
	if kv2 {
		if d, ok := s.Data["data"]; !ok || d == nil { // deleted or destroyed version
			what := "the version is deleted (vault kv undelete brings it back)"
			if md, ok := s.Data["metadata"].(map[string]any); ok && md["destroyed"] == true {
				what = "the version is destroyed (its data is gone for good)"
			}
			return nil, lease.State{}, fmt.Errorf("read secret %s: %w: %s", p, ErrNotFound, what)
		}
	}
	sec := &render.Secret{
		RequestID: s.RequestID, LeaseID: s.LeaseID, LeaseDuration: s.LeaseDuration,
		Renewable: s.Renewable, Data: s.Data, Warnings: s.Warnings, KV2: kv2,
	}
	return sec, Classify(sec, now), nil
}

// Canonical returns path with a KV v2 mount's data/ segment added.
func (v *Vault) Canonical(ctx context.Context, path string) string {
	p, query, hasQuery := strings.Cut(path, "?")
	_, p = v.kvPath(ctx, strings.Trim(p, "/"))
	if hasQuery {
		return p + "?" + query
	}
	return p
}

// Classify says how a fetched secret stays fresh.
func Classify(s *render.Secret, now time.Time) lease.State {
	switch {
	case s.LeaseID != "" && s.LeaseDuration > 0:
		k := lease.Expiring
		if s.Renewable {
			k = lease.Renewable
		}
		return lease.State{Kind: k, Obtained: now, Duration: time.Duration(s.LeaseDuration) * time.Second}
	case s.Data["certificate"] != nil && s.Data["expiration"] != nil:
		if exp, ok := number(s.Data["expiration"]); ok && exp > 0 {
			return lease.State{Kind: lease.Expiring, Obtained: now, Duration: time.Unix(exp, 0).Sub(now)}
		}
	}
	return lease.State{Kind: lease.Static, Obtained: now}
}

func number(v any) (int64, bool) {
	switch n := v.(type) {
	case float64:
		return int64(n), true
	case int64:
		return n, true
	case int:
		return int64(n), true
	case interface{ Int64() (int64, error) }: // json.Number
		x, err := n.Int64()
		return x, err == nil
	}
	return 0, false
}

// kvPath finds path's mount; for a KV v2 mount it returns the data path.
func (v *Vault) kvPath(ctx context.Context, p string) (bool, string) {
	m, ok := v.mount(ctx, p)
	if !ok || !m.kv2 {
		return false, p
	}
	rel := strings.TrimPrefix(p, m.path)
	if strings.HasPrefix(rel, "data/") {
		return true, p
	}
	if strings.HasPrefix(rel, "metadata/") || rel == "config" {
		return false, p
	}
	return true, m.path + "data/" + rel
}

func (v *Vault) mount(ctx context.Context, p string) (mountInfo, bool) {
	v.mu.Lock()
	for mp, m := range v.mounts {
		if strings.HasPrefix(p+"/", mp) {
			v.mu.Unlock()
			return m, true
		}
	}
	v.mu.Unlock()
	s, err := v.Client.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+p)
	if err != nil || s == nil || s.Data == nil {
		return mountInfo{}, false
	}
	mp, _ := s.Data["path"].(string)
	typ, _ := s.Data["type"].(string)
	if mp == "" {
		return mountInfo{}, false
	}
	m := mountInfo{path: mp}
	if opts, ok := s.Data["options"].(map[string]any); ok && (typ == "kv" || typ == "generic") {
		m.kv2 = opts["version"] == "2"
	}
	v.mu.Lock()
	if v.mounts == nil {
		v.mounts = map[string]mountInfo{}
	}
	v.mounts[mp] = m
	v.mu.Unlock()
	return m, true
}

// Renew renews a lease, asking for increment, and returns what Vault granted.
func (v *Vault) Renew(ctx context.Context, leaseID string, increment time.Duration) (time.Duration, error) {
	s, err := v.Client.Sys().RenewWithContext(ctx, leaseID, int(increment/time.Second))
	if err != nil {
		return 0, fmt.Errorf("renew lease: %w", err)
	}
	if s == nil {
		return 0, fmt.Errorf("renew lease: empty answer")
	}
	return time.Duration(s.LeaseDuration) * time.Second, nil
}

// Revoke revokes a lease.
func (v *Vault) Revoke(ctx context.Context, leaseID string) error {
	if err := v.Client.Sys().RevokeWithContext(ctx, leaseID); err != nil {
		return fmt.Errorf("revoke lease: %w", err)
	}
	return nil
}
