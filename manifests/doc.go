// Package manifests holds sidecarkit's Kubernetes manifests (kustomize
// layout: base/, native/, legacy/, snippets/) and the test that decodes every
// one of them strictly into k8s.io/api types and checks the pod rules.
package manifests
