module github.com/sidecarkit/sidecarkit/initnet

go 1.26.7

require github.com/sidecarkit/sidecarkit/shared v0.0.0

require (
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/kr/pretty v0.3.1 // indirect
	github.com/mdlayher/socket v0.5.0 // indirect
	github.com/rogpeppe/go-internal v1.10.0 // indirect
	golang.org/x/net v0.59.0 // indirect
	golang.org/x/sync v0.13.0 // indirect
	gopkg.in/check.v1 v1.0.0-20201130134442-10cb98267c6c // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)

replace github.com/sidecarkit/sidecarkit/shared => ../shared

require (
	github.com/google/nftables v0.3.0
	github.com/mdlayher/netlink v1.7.3-0.20250113171957-fbb4dce95f42
	github.com/sidecarkit/sidecarkit/integration v0.0.0
	golang.org/x/sys v0.48.0
)

replace github.com/sidecarkit/sidecarkit/integration => ../integration
