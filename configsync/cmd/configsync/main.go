// Command configsync keeps config files in a shared volume in step with
// Consul KV and tells the app (see the configsync module's README).
package main

import (
	"github.com/sidecarkit/sidecarkit/configsync"
	"github.com/sidecarkit/sidecarkit/shared/app"
)

func main() { app.Main(configsync.Helper()) }
