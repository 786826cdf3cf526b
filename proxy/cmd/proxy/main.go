// Command proxy is sidecarkit's traffic sidecar (see ../../README.md).
package main

import (
	"os"

	"github.com/sidecarkit/sidecarkit/proxy/server"
	"github.com/sidecarkit/sidecarkit/shared/app"
)

func main() { app.Main(server.Helper(os.Args[1:], os.Environ())) }
