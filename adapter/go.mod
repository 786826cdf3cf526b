module github.com/sidecarkit/sidecarkit/adapter

go 1.26.7

require (
	github.com/fsnotify/fsnotify v1.10.1
	github.com/olivere/elastic/v7 v7.0.32
	github.com/prometheus/client_golang v1.23.2
	github.com/sidecarkit/sidecarkit/integration v0.0.0
	github.com/sidecarkit/sidecarkit/shared v0.0.0
	golang.org/x/image v0.47.0
)

require (
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/josharian/intern v1.0.0 // indirect
	github.com/kylelemons/godebug v1.1.0 // indirect
	github.com/mailru/easyjson v0.7.7 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/prometheus/client_model v0.6.2 // indirect
	github.com/prometheus/common v0.66.1 // indirect
	github.com/prometheus/procfs v0.16.1 // indirect
	go.yaml.in/yaml/v2 v2.4.2 // indirect
	golang.org/x/sys v0.49.0 // indirect
	google.golang.org/protobuf v1.36.8 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)

replace github.com/sidecarkit/sidecarkit/shared => ../shared

replace github.com/sidecarkit/sidecarkit/integration => ../integration
