// Command injector is sidecarkit's mutating admission webhook (see
// ../../README.md); `injector inject -f FILE` injects offline.
package main

import (
	"os"

	"github.com/sidecarkit/sidecarkit/injector"
	"github.com/sidecarkit/sidecarkit/shared/app"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "inject" {
		os.Exit(injector.InjectCommand(os.Args[2:], os.Environ(), os.Stdin, os.Stdout, os.Stderr))
	}
	app.Main(injector.Helper())
}
