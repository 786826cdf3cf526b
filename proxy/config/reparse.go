package config

import (
	"time"

	"github.com/sidecarkit/sidecarkit/shared/app"
	skconfig "github.com/sidecarkit/sidecarkit/shared/config"
)

// Helper is the proxy's configuration half of its app.Helper: name, default
// admin address and drain delay, flags and validation. The server package
// adds Run.
func Helper() app.Helper[Config] {
	return app.Helper[Config]{
		Name:       "proxy",
		AdminAddr:  ":15000",
		DrainDelay: 5 * time.Second,
		Bind:       Bind,
		Validate:   func(_ *skconfig.Loader, c *Config) error { return Validate(c) },
	}
}

// Reparse loads and validates the configuration from the process's arguments
// and environment exactly as at start (the YAML file named by --config is
// read afresh; flags and env still win over it). It is how a changed file is
// reloaded.
func Reparse(args, env []string) (*Config, error) {
	c, _, err := app.ParseConfig(Helper(), args, env)
	return c, err
}
