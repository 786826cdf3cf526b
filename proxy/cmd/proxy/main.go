// Command proxy is sidecarkit's proxy (see the package doc of the module root).
package main

import (
	"context"

	"github.com/sidecarkit/sidecarkit/shared/app"
)

type config struct{}

func main() {
	app.Main(app.Helper[config]{
		Name:      "proxy",
		AdminAddr: ":15000",
		Run: func(ctx context.Context, rt *app.Runtime, c *config) error {
			<-rt.Stopping()
			return nil
		},
	})
}
