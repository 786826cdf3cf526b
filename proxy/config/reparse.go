package config

import (
	"strings"

	skconfig "github.com/sidecarkit/sidecarkit/shared/config"
)

// commonFlags are the lifecycle flags shared/app binds; Reparse accepts and
// ignores them (they cannot change without a restart).
var commonFlags = []string{"admin-addr", "log-format", "log-level", "drain-delay", "drain-timeout", "startup-timeout"}

// Reparse loads the configuration again from the process's arguments and
// environment (the YAML file named by --config is read afresh) and
// validates it. It is how a changed file is reloaded: flags and env still
// win over the file, exactly as at start.
func Reparse(args, env []string) (*Config, error) {
	args = stripSubcommand(args)
	l := skconfig.NewLoader("proxy")
	ignored := make([]string, len(commonFlags))
	for i, n := range commonFlags {
		l.String(&ignored[i], n, "", "")
	}
	c := &Config{}
	Bind(l, c)
	if _, err := l.Parse(args, env); err != nil {
		return nil, err
	}
	if err := Validate(c); err != nil {
		return nil, err
	}
	return c, nil
}

// Path returns the YAML file --config (or PROXY_CONFIG) names, "" if none.
func Path(args, env []string) string {
	args = stripSubcommand(args)
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "config" {
			continue
		}
		if hasVal {
			return val
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PROXY_CONFIG="); ok {
			return v
		}
	}
	return ""
}

func stripSubcommand(args []string) []string {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[1:]
	}
	return args
}
