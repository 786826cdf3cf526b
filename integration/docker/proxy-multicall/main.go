//go:build ignore

// Command proxy-multicall is the one binary of the sidecarkit/proxy image: run
// through the /usr/local/bin/initnet symlink it is initnet, otherwise the
// proxy. One Go runtime and one copy of the shared code instead of two static
// binaries keeps the image small. It mirrors proxy/cmd/proxy and
// initnet/cmd/initnet; images.sh builds it in a temporary workspace of those
// modules (the "ignore" build tag keeps it out of the integration module and
// its go mod tidy; images.sh drops that line in its staged copy) and falls
// back to the two binaries if it does not build.
package main

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/sidecarkit/sidecarkit/initnet"
	"github.com/sidecarkit/sidecarkit/proxy/server"
	"github.com/sidecarkit/sidecarkit/shared/app"
)

func main() {
	if filepath.Base(os.Args[0]) == "initnet" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		code := initnet.Main(ctx, initnet.Env{Args: os.Args[1:], Environ: os.Environ(), Stdout: os.Stdout, Stderr: os.Stderr,
			Reexec: initnet.ReexecIn(os.Args[0], os.Args[1:], os.Environ())})
		stop()
		os.Exit(code)
	}
	app.Main(server.Helper(os.Args[1:], os.Environ()))
}
