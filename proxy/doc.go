// Package proxy is sidecarkit's proxy: the traffic sidecar: inbound and outbound listeners in front of and behind the app.
// The binary is cmd/proxy; its outside face is CONTRACT.md.
package proxy
