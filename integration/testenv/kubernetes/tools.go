//go:build tools

// Package tools pins the Kubernetes v1.34.3 commands that build.sh builds
// (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
// kube-proxy, kubectl), so go mod tidy records every module they need.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
