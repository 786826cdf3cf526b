// Package auth gets the ambassador a Vault token and keeps it alive: login by
// Kubernetes service-account JWT, AppRole or a given token; renewal with the
// Vault API's LifetimeWatcher; a fresh login when the token cannot be renewed
// any further (max TTL reached, revoked — the Vault Agent bug
// hashicorp/vault#6659); backoff with jitter while Vault is unreachable; and
// an optional token sink file for apps that want the token itself.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// Conn says how to reach Vault.
type Conn struct {
	Addr       string
	CACert     string
	CAPath     string
	ClientCert string
	ClientKey  string
	ServerName string
	Insecure   bool
	Namespace  string
	Timeout    time.Duration
}

// NewClient builds a Vault client from c alone: no token, and the process
// environment's VAULT_* variables play no part beyond what c says.
func NewClient(c Conn) (*vault.Client, error) {
	// DefaultConfig (and NewClient) also read VAULT_* variables: a malformed
	// one is reported by NewClient as a configuration error; everything that
	// matters is set from c below.
	cfg := vault.DefaultConfig()
	cfg.Address = c.Addr
	if c.Timeout > 0 {
		cfg.Timeout = c.Timeout
	}
	cfg.MaxRetries = 0 // we retry with our own backoff
	if strings.HasPrefix(c.Addr, "https://") || c.CACert != "" || c.ClientCert != "" {
		if err := cfg.ConfigureTLS(&vault.TLSConfig{
			CACert: c.CACert, CAPath: c.CAPath, ClientCert: c.ClientCert, ClientKey: c.ClientKey,
			TLSServerName: c.ServerName, Insecure: c.Insecure,
		}); err != nil {
			return nil, fmt.Errorf("vault TLS settings: %w", err)
		}
	}
	cl, err := vault.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault client for %s: %w", c.Addr, err)
	}
	cl.ClearToken() // NewClient reads VAULT_TOKEN; the token comes from a Method
	cl.SetNamespace(c.Namespace)
	return cl, nil
}

// Method logs in to Vault.
type Method interface {
	// Login returns the auth secret (Auth set) of a fresh token. c carries no token.
	Login(ctx context.Context, c *vault.Client) (*vault.Secret, error)
	// Revocable says whether the token came from a login (and may be revoked
	// on shutdown) rather than from the operator.
	Revocable() bool
	String() string
}

func readTrim(path, what string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s file %s is empty", what, path)
	}
	return s, nil
}

// loginPath is auth/<mount>/login.
func loginPath(mount string) string { return "auth/" + strings.Trim(mount, "/") + "/login" }

func checkAuth(s *vault.Secret, what string) (*vault.Secret, error) {
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return nil, fmt.Errorf("%s: Vault answered without a token", what)
	}
	return s, nil
}

// Kubernetes logs in with the pod's service-account JWT.
type Kubernetes struct {
	Mount   string // default "kubernetes"
	Role    string
	JWTFile string // default /var/run/secrets/kubernetes.io/serviceaccount/token
}

func (k *Kubernetes) String() string  { return "kubernetes" }
func (k *Kubernetes) Revocable() bool { return true }

// Login reads the JWT (it is rotated by the kubelet, so each time) and logs in.
func (k *Kubernetes) Login(ctx context.Context, c *vault.Client) (*vault.Secret, error) {
	jwt, err := readTrim(k.JWTFile, "service account token")
	if err != nil {
		return nil, err
	}
	s, err := c.Logical().WriteWithContext(ctx, loginPath(k.Mount), map[string]any{"role": k.Role, "jwt": jwt})
	if err != nil {
		return nil, fmt.Errorf("kubernetes login (role %s): %w", k.Role, err)
	}
	return checkAuth(s, "kubernetes login")
}

// AppRole logs in with a role ID and a secret ID read from files.
type AppRole struct {
	Mount          string // default "approle"
	RoleIDFile     string
	SecretIDFile   string
	RemoveSecretID bool // delete the secret-id file after reading it

	secretID string // kept in memory once the file is removed
}

func (a *AppRole) String() string  { return "approle" }
func (a *AppRole) Revocable() bool { return true }

// Login reads the files and logs in. With RemoveSecretID the secret ID is
// read once, the file deleted, and the value kept in memory for later logins.
func (a *AppRole) Login(ctx context.Context, c *vault.Client) (*vault.Secret, error) {
	roleID, err := readTrim(a.RoleIDFile, "role-id")
	if err != nil {
		return nil, err
	}
	secretID := a.secretID
	if a.SecretIDFile != "" {
		s, err := readTrim(a.SecretIDFile, "secret-id")
		switch {
		case err == nil:
			secretID = s
			if a.RemoveSecretID {
				a.secretID = s
				if err := os.Remove(a.SecretIDFile); err != nil {
					return nil, fmt.Errorf("remove secret-id file: %w", err)
				}
			}
		case secretID == "" || !errors.Is(err, os.ErrNotExist):
			return nil, err
		}
	}
	data := map[string]any{"role_id": roleID}
	if secretID != "" {
		data["secret_id"] = secretID
	}
	s, err := c.Logical().WriteWithContext(ctx, loginPath(a.Mount), data)
	if err != nil {
		return nil, fmt.Errorf("approle login: %w", err)
	}
	return checkAuth(s, "approle login")
}

// Token uses a token the operator provides, from a file (re-read at every
// "login", so a rotated file is picked up) or a value (VAULT_TOKEN).
type Token struct {
	File  string
	Value string
}

func (t *Token) String() string  { return "token" }
func (t *Token) Revocable() bool { return false }

// Login looks the token up to learn its TTL and whether it renews.
func (t *Token) Login(ctx context.Context, c *vault.Client) (*vault.Secret, error) {
	tok := t.Value
	if t.File != "" {
		var err error
		if tok, err = readTrim(t.File, "token"); err != nil {
			return nil, err
		}
	}
	cc, err := c.Clone()
	if err != nil {
		return nil, err
	}
	cc.SetToken(tok)
	s, err := cc.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("token lookup-self: %w", err)
	}
	if s == nil {
		return nil, errors.New("token lookup-self: empty answer")
	}
	ttl, _ := s.TokenTTL()
	renewable, _ := s.TokenIsRenewable()
	accessor, _ := s.TokenAccessor()
	return &vault.Secret{Auth: &vault.SecretAuth{
		ClientToken: tok, Accessor: accessor, LeaseDuration: int(ttl / time.Second), Renewable: renewable,
	}}, nil
}

// Permanent reports whether err is Vault refusing (a 4xx other than 429:
// bad credentials, no such role, permission denied), as opposed to Vault or
// the network being unavailable, which is worth retrying.
func Permanent(err error) bool {
	var re *vault.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode >= 400 && re.StatusCode < 500 && re.StatusCode != http.StatusTooManyRequests
	}
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission)
}

// Denied reports whether err is Vault answering 403 (bad or revoked token).
func Denied(err error) bool {
	var re *vault.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusForbidden
}
