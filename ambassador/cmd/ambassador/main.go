// Command ambassador is sidecarkit's Vault ambassador (see the package doc of the module root).
package main

import (
	"github.com/sidecarkit/sidecarkit/ambassador"
	"github.com/sidecarkit/sidecarkit/shared/app"
)

func main() { app.Main(ambassador.Helper()) }
