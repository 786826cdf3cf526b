package watch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/sidecarkit/sidecarkit/configsync/brain"
	"github.com/sidecarkit/sidecarkit/configsync/render"
)

// ConsulOptions say how to reach Consul.
type ConsulOptions struct {
	Address       string // host:port or http(s)://host:port
	Scheme        string // http or https ("" from Address, else http)
	Token         string
	TokenFile     string
	Datacenter    string
	CACert        string
	ClientCert    string
	ClientKey     string
	TLSServerName string
	TLSSkipVerify bool
	Stale         bool
	Consistent    bool
}

// Consul fetches dependencies from a Consul agent with blocking queries.
type Consul struct {
	c    *api.Client
	tr   *http.Transport
	opts ConsulOptions
}

// Close drops idle connections to Consul (call after the watchers stopped).
func (c *Consul) Close() { c.tr.CloseIdleConnections() }

// NewConsul builds a client; it does not contact Consul.
func NewConsul(o ConsulOptions) (*Consul, error) {
	tls := api.TLSConfig{Address: o.TLSServerName, CAFile: o.CACert, CertFile: o.ClientCert, KeyFile: o.ClientKey, InsecureSkipVerify: o.TLSSkipVerify}
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   false,
	}
	hc, err := api.NewHttpClient(tr, tls)
	if err != nil {
		return nil, fmt.Errorf("consul TLS setup: %w", err)
	}
	cfg := &api.Config{
		Address: o.Address, Scheme: o.Scheme, Datacenter: o.Datacenter,
		Token: o.Token, TokenFile: o.TokenFile, HttpClient: hc, Transport: tr, TLSConfig: tls,
	}
	if cfg.Scheme == "" {
		cfg.Scheme = "http"
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul client for %s: %w", o.Address, err)
	}
	return &Consul{c: c, tr: tr, opts: o}, nil
}

// Client is the underlying API client (tests use it to write keys).
func (c *Consul) Client() *api.Client { return c.c }

// Fetch reads d once. With index > 0 and wait > 0 it is a blocking query that
// returns when d's index passes index or wait ends.
func (c *Consul) Fetch(ctx context.Context, d brain.Dep, index uint64, wait time.Duration) (brain.Data, uint64, error) {
	q := &api.QueryOptions{AllowStale: c.opts.Stale, RequireConsistent: c.opts.Consistent}
	if index > 0 && wait > 0 {
		q.WaitIndex, q.WaitTime = index, wait
	}
	q = q.WithContext(ctx)
	var out brain.Data
	var meta *api.QueryMeta
	var err error
	switch d.Kind {
	case brain.Key:
		var p *api.KVPair
		p, meta, err = c.c.KV().Get(d.Name, q)
		if err == nil && p != nil {
			out.Exists, out.Value = true, p.Value
			if out.Value == nil {
				out.Value = []byte{}
			}
		}
	case brain.Prefix:
		// List without the trailing slash and keep what is below it: a
		// `consul kv delete -recurse config/app` leaves its tombstone at
		// "config/app", which a listing of "config/app/" does not see —
		// Consul then neither wakes the blocking query nor keeps the
		// index from going backwards (it answers an older tombstone's).
		var ps api.KVPairs
		ps, meta, err = c.c.KV().List(strings.TrimSuffix(d.Name, "/"), q)
		if err == nil && meta.ResultsFilteredByACLs && strings.HasSuffix(d.Name, "/") {
			// The filtered keys may be beside the prefix ("config/apple"
			// for a token that may read only "config/app/"): ask for
			// exactly the prefix, without waiting, before calling it a
			// refusal.
			exact := &api.QueryOptions{AllowStale: c.opts.Stale, RequireConsistent: c.opts.Consistent}
			var emeta *api.QueryMeta
			ps, emeta, err = c.c.KV().List(d.Name, exact.WithContext(ctx))
			if err == nil {
				meta.ResultsFilteredByACLs = emeta.ResultsFilteredByACLs
			}
		}
		if err == nil {
			out.Pairs = make([]brain.KV, 0, len(ps))
			for _, p := range ps {
				if !strings.HasPrefix(p.Key, d.Name) {
					continue // "config/apple" beside "config/app/"
				}
				out.Pairs = append(out.Pairs, brain.KV{Key: p.Key, Value: p.Value})
			}
			sort.Slice(out.Pairs, func(i, j int) bool { return out.Pairs[i].Key < out.Pairs[j].Key })
		}
	case brain.Service:
		name, tag, serr := render.SplitService(d.Name)
		if serr != nil {
			return out, 0, serr
		}
		var es []*api.ServiceEntry
		es, meta, err = c.c.Health().Service(name, tag, true, q)
		if err == nil {
			out.Instances = make([]brain.Instance, 0, len(es))
			for _, e := range es {
				if e.Service == nil {
					continue
				}
				in := brain.Instance{ID: e.Service.ID, Name: e.Service.Service, Address: e.Service.Address, Port: e.Service.Port, Tags: e.Service.Tags, Meta: e.Service.Meta}
				if e.Node != nil {
					in.Node = e.Node.Node
					if in.Address == "" {
						in.Address = e.Node.Address
					}
				}
				out.Instances = append(out.Instances, in)
			}
			sort.Slice(out.Instances, func(i, j int) bool {
				a, b := out.Instances[i], out.Instances[j]
				if a.Node != b.Node {
					return a.Node < b.Node
				}
				return a.ID < b.ID
			})
		}
	default:
		return out, 0, fmt.Errorf("unknown dependency kind %v", d.Kind)
	}
	if err != nil {
		return out, 0, fmt.Errorf("read %s from consul: %w", d, err)
	}
	if meta != nil && meta.ResultsFilteredByACLs {
		// Consul hid entries the token may not read and answered with what
		// is left (maybe nothing): that is not the data, it is a refusal.
		return brain.Data{}, 0, fmt.Errorf("read %s from consul: %w", d, ErrACLFiltered)
	}
	return out, meta.LastIndex, nil
}

// ErrACLFiltered is a listing Consul filtered by ACL (the answer carried
// X-Consul-Results-Filtered-By-ACLs): the token lacks read permission on
// some or all of what was asked, so the answer must not be taken as the
// content (an empty tree, a missing key).
var ErrACLFiltered = errors.New("permission denied: Consul filtered the answer by ACL (X-Consul-Results-Filtered-By-ACLs); the token may not read some or all of it")

// Permanent reports whether err will not go away by retrying with the same
// configuration (ACL denied, not found datacenter, bad request).
func Permanent(err error) bool {
	if errors.Is(err, ErrACLFiltered) {
		return true
	}
	var se api.StatusError
	if errors.As(err, &se) {
		return se.Code == http.StatusForbidden || se.Code == http.StatusUnauthorized || se.Code == http.StatusBadRequest
	}
	// Consul's certificate does not verify against the configured CA (or
	// name): retrying will not help.
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci)
}
