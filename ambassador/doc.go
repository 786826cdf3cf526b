// Package ambassador is sidecarkit's ambassador: the Vault ambassador: auth, secrets on tmpfs, rotation, a localhost:8200 API proxy.
// The binary is cmd/ambassador; its outside face is CONTRACT.md.
package ambassador
