// Command configsync is sidecarkit's configsync (see the package doc of the module root).
package main

import (
	"context"

	"github.com/sidecarkit/sidecarkit/shared/app"
)

type config struct{}

func main() {
	app.Main(app.Helper[config]{
		Name:      "configsync",
		AdminAddr: ":15300",
		Run: func(ctx context.Context, rt *app.Runtime, c *config) error {
			<-rt.Stopping()
			return nil
		},
	})
}
