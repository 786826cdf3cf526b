// Package configsync is sidecarkit's configsync: keeps config files in a shared volume in step with Consul KV and tells the app.
// The binary is cmd/configsync; its outside face is CONTRACT.md.
package configsync
