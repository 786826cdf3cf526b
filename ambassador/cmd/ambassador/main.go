// Command ambassador is sidecarkit's ambassador (see the package doc of the module root).
package main

import (
	"context"

	"github.com/sidecarkit/sidecarkit/shared/app"
)

type config struct{}

func main() {
	app.Main(app.Helper[config]{
		Name:      "ambassador",
		AdminAddr: ":15100",
		Run: func(ctx context.Context, rt *app.Runtime, c *config) error {
			<-rt.Stopping()
			return nil
		},
	})
}
