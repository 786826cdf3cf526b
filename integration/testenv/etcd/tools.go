//go:build tools

// Package tools pins etcd v3.6.4 (the etcd line Kubernetes 1.34 is tested
// with); build.sh builds its server, whose main package is the module root.
package tools

import _ "go.etcd.io/etcd/server/v3"
