// Command demoapp is the legacy application of sidecarkit's demo pod and the
// small tools around it, in one static binary:
//
//	demoapp serve     the app: HTTP on :8080, legacy log lines to a file, a DB
//	                  password from /vault/secrets, settings from a config
//	                  directory, both reloaded on SIGHUP, an upstream call
//	demoapp upstream  the upstream service the app calls (echoes what it saw)
//	demoapp seed      seeds Vault (KV secret, AppRole) and Consul (config keys)
//	demoapp get URL   prints a URL's body (the client outside the pod)
//	demoapp load      readiness-aware steady load; prints a JSON summary
//
// Every flag can also be set with an environment variable DEMOAPP_<FLAG>
// (upper case, dashes as underscores).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	sub := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT)
	defer stop()
	var err error
	switch sub {
	case "serve":
		err = serveCmd(ctx, args, stdout, stderr)
	case "upstream":
		err = upstreamCmd(ctx, args, stdout, stderr)
	case "seed":
		err = seedCmd(ctx, args, stdout, stderr)
	case "get":
		err = getCmd(ctx, args, stdout, stderr)
	case "load":
		err = loadCmd(ctx, args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "demoapp: unknown subcommand %q (want serve, upstream, seed, get or load)\n", sub)
		return 2
	}
	if err == flag.ErrHelp {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "demoapp %s: %v\n", sub, err)
		return 1
	}
	return 0
}

// newFlags returns a flag set whose flags default to DEMOAPP_<NAME> from the
// environment once parse is called.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("demoapp "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse applies DEMOAPP_* environment variables, then the arguments.
func parse(fs *flag.FlagSet, args []string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := "DEMOAPP_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok && err == nil {
			if serr := f.Value.Set(v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, serr)
			}
		}
	})
	if err != nil {
		return err
	}
	return fs.Parse(args)
}
