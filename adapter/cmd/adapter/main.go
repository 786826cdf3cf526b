// Command adapter is sidecarkit's adapter (see the package doc of the module root).
package main

import (
	"os"

	"github.com/sidecarkit/sidecarkit/adapter"
	"github.com/sidecarkit/sidecarkit/shared/app"
)

func main() {
	h := adapter.Helper()
	if adapter.DocumentsOnStdout(os.Args[1:], os.Environ()) {
		// the documents own stdout: every log line (the framework's too)
		// goes to stderr
		h = adapter.HelperWithDocuments(os.Stdout)
		os.Stdout = os.Stderr
	}
	app.Main(h)
}
