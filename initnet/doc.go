// Package initnet is sidecarkit's initnet: the init step that installs the traffic-capture redirect into the pod's network namespace.
// The binary is cmd/initnet; its outside face is CONTRACT.md.
package initnet
