// Command initnet is sidecarkit's initnet (see the package doc of the module root).
package main

import (
	"context"

	"github.com/sidecarkit/sidecarkit/shared/app"
)

type config struct{}

func main() {
	app.Main(app.Helper[config]{
		Name:      "initnet",
		AdminAddr: "127.0.0.1:15010",
		Run: func(ctx context.Context, rt *app.Runtime, c *config) error {
			<-rt.Stopping()
			return nil
		},
	})
}
