// Command initnet installs the traffic-capture rules of a sidecarkit pod and
// exits (see the initnet module README).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sidecarkit/sidecarkit/initnet"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := initnet.Main(ctx, initnet.Env{Args: os.Args[1:], Environ: os.Environ(), Stdout: os.Stdout, Stderr: os.Stderr,
		Reexec: initnet.ReexecIn(os.Args[0], os.Args[1:], os.Environ())})
	stop()
	os.Exit(code)
}
