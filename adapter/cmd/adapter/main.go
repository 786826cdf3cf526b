// Command adapter is sidecarkit's adapter (see the package doc of the module root).
package main

import (
	"github.com/sidecarkit/sidecarkit/adapter"
	"github.com/sidecarkit/sidecarkit/shared/app"
)

func main() { app.Main(adapter.Helper()) }
