// Command vault is Vault's own CLI, built here from the Go module proxy so the
// tests and benchmarks run against a real Vault server and a real Vault Agent.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() {
	os.Exit(command.Run(os.Args[1:]))
}
