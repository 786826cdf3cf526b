package jwtauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/sidecarkit/sidecarkit/shared/backoff"
)

// provider holds one issuer's current key set, refreshed in the background.
type provider struct {
	cfg   Provider
	keys  atomic.Pointer[jose.JSONWebKeySet]
	hc    *http.Client
	log   *slog.Logger
	kick  chan struct{} // an unknown kid asks for an early refresh
	done  chan struct{}
	wg    sync.WaitGroup
	mtime time.Time
}

// maxJWKS bounds a fetched key set.
const maxJWKS = 1 << 20

func newProvider(cfg Provider, hc *http.Client, log *slog.Logger) (*provider, error) {
	p := &provider{cfg: cfg, hc: hc, log: log.With("issuer", cfg.Issuer), kick: make(chan struct{}, 1), done: make(chan struct{})}
	if cfg.JWKSFile != "" {
		if err := p.load(); err != nil {
			return nil, err
		}
	} else if err := p.load(); err != nil {
		p.log.Warn("JWKS not available yet, retrying", "jwks_uri", cfg.JWKSURI, "err", err)
	}
	p.wg.Add(1)
	go p.refresh()
	return p, nil
}

func (p *provider) close() {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	p.wg.Wait()
}

func (p *provider) interval() time.Duration {
	if p.cfg.Refresh > 0 {
		return p.cfg.Refresh
	}
	if p.cfg.JWKSFile != "" {
		return 10 * time.Second
	}
	return 5 * time.Minute
}

func (p *provider) refresh() {
	defer p.wg.Done()
	bo := backoff.Backoff{Policy: backoff.Policy{Initial: time.Second, Max: p.interval()}}
	wait := p.interval()
	if p.keys.Load() == nil {
		wait = bo.Next()
	}
	lastKick := time.Time{}
	for {
		t := time.NewTimer(wait)
		select {
		case <-p.done:
			t.Stop()
			return
		case <-t.C:
		case <-p.kick:
			t.Stop()
			// At most one early refresh every 10s, whatever tokens arrive.
			if time.Since(lastKick) < 10*time.Second {
				continue
			}
			lastKick = time.Now()
		}
		if err := p.load(); err != nil {
			wait = bo.Next()
			p.log.Warn("JWKS refresh failed, keeping the previous keys", "err", err, "retry_in", wait)
			continue
		}
		bo.Reset()
		wait = p.interval()
	}
}

// load reads the key set from the file (when it changed) or the URL.
func (p *provider) load() error {
	var data []byte
	if p.cfg.JWKSFile != "" {
		st, err := os.Stat(p.cfg.JWKSFile)
		if err != nil {
			return fmt.Errorf("jwks_file: %w", err)
		}
		if p.keys.Load() != nil && st.ModTime().Equal(p.mtime) {
			return nil
		}
		if data, err = os.ReadFile(p.cfg.JWKSFile); err != nil {
			return fmt.Errorf("jwks_file: %w", err)
		}
		p.mtime = st.ModTime()
	} else {
		resp, err := p.hc.Get(p.cfg.JWKSURI)
		if err != nil {
			return fmt.Errorf("fetch jwks_uri: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("fetch jwks_uri %s: HTTP %d", p.cfg.JWKSURI, resp.StatusCode)
		}
		if data, err = io.ReadAll(io.LimitReader(resp.Body, maxJWKS+1)); err != nil {
			return fmt.Errorf("fetch jwks_uri: %w", err)
		}
	}
	set, err := ParseJWKS(data)
	if err != nil {
		where := p.cfg.JWKSFile
		if where == "" {
			where = p.cfg.JWKSURI
		}
		return fmt.Errorf("JWKS %s: %w", where, err)
	}
	p.keys.Store(set)
	p.log.Info("JWKS loaded", "keys", len(set.Keys))
	return nil
}

// ParseJWKS parses a JSON Web Key Set, keeping the RSA and EC public keys
// usable for signatures.
func ParseJWKS(data []byte) (*jose.JSONWebKeySet, error) {
	if len(data) > maxJWKS {
		return nil, fmt.Errorf("larger than %d bytes", maxJWKS)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	var keep []jose.JSONWebKey
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if !k.Valid() || !k.IsPublic() {
			continue
		}
		keep = append(keep, k)
	}
	if len(keep) == 0 {
		return nil, errors.New("no public signing key in it")
	}
	return &jose.JSONWebKeySet{Keys: keep}, nil
}

// verify checks the signature with the key named by kid (every key when the
// token names none).
func (p *provider) verify(tok *jwt.JSONWebToken, dest ...any) error {
	set := p.keys.Load()
	if set == nil {
		return fmt.Errorf("%w: no keys for issuer yet", ErrInvalid)
	}
	kid := ""
	if len(tok.Headers) > 0 {
		kid = tok.Headers[0].KeyID
	}
	cands := set.Keys
	if kid != "" {
		cands = set.Key(kid)
		if len(cands) == 0 {
			select {
			case p.kick <- struct{}{}:
			default:
			}
			return fmt.Errorf("%w: unknown key id", ErrInvalid)
		}
	}
	var last error
	for _, k := range cands {
		if err := tok.Claims(k.Key, dest...); err == nil {
			return nil
		} else {
			last = err
		}
	}
	return fmt.Errorf("%w: %v", ErrInvalid, last)
}
