// Command proxy is sidecarkit's traffic sidecar (see ../../README.md).
package main

import (
	"fmt"
	"os"

	"github.com/sidecarkit/sidecarkit/proxy/config"
	"github.com/sidecarkit/sidecarkit/proxy/server"
	"github.com/sidecarkit/sidecarkit/shared/app"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "validate" {
		// Valid but probably not meant (an HTTP policy on a sniffing listener).
		if c, _, err := app.ParseConfig(config.Helper(), os.Args[1:], os.Environ()); err == nil {
			for _, w := range config.Warnings(c) {
				fmt.Fprintln(os.Stderr, "proxy: warning: "+w)
			}
		}
	}
	app.Main(server.Helper(os.Args[1:], os.Environ()))
}
