// Command consul is Consul's own CLI (the root main of hashicorp/consul), built
// here from the Go module proxy so tests run against a real Consul agent.
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/consul/command"
	"github.com/hashicorp/consul/command/cli"
	"github.com/hashicorp/consul/command/version"
	mcli "github.com/mitchellh/cli"
)

func main() {
	os.Exit(realMain())
}

func realMain() int {
	ui := &cli.BasicUI{BasicUi: mcli.BasicUi{Reader: os.Stdin, Writer: os.Stdout, ErrorWriter: os.Stderr}}
	cmds := command.RegisteredCommands(ui)
	var names []string
	for c := range cmds {
		names = append(names, c)
	}
	c := &mcli.CLI{
		Name:         "consul",
		Version:      version.New(ui).Version(),
		Args:         os.Args[1:],
		Commands:     cmds,
		Autocomplete: true,
		HelpFunc:     mcli.FilteredHelpFunc(names, mcli.BasicHelpFunc("consul")),
		HelpWriter:   os.Stdout,
		ErrorWriter:  os.Stderr,
	}
	exit, err := c.Run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error executing CLI: %v\n", err)
		return 1
	}
	return exit
}
