// Package ambassador is sidecarkit's Vault ambassador: it logs in to Vault,
// renders secrets to files (atomically, 0400, optionally only on tmpfs),
// keeps them fresh — renewing leases and tokens, replacing credentials before
// they expire — tells the app when a file changed, and serves a Vault API
// proxy on 127.0.0.1:8200 that adds its token. The binary is cmd/ambassador;
// its outside face is CONTRACT.md.
//
// This package holds the one Config (flags, env, YAML with a "secrets:"
// list), its validation, and Run, which wires the parts:
//
//	auth     — login methods and the token manager (LifetimeWatcher, re-login)
//	secrets  — the store that fetches and keeps secrets fresh, and the renderer
//	lease    — when to renew or refetch (pure)
//	render   — raw / JSON / env / template file contents (pure)
//	dest     — destination checks (tmpfs) and atomic writes
//	apiproxy — the :8200 reverse proxy
package ambassador
