// Package version reports the build's version, set at link time with
// -ldflags "-X github.com/sidecarkit/sidecarkit/shared/version.Version=v1.2.3
// -X github.com/sidecarkit/sidecarkit/shared/version.Commit=abc123".
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by the linker.
var (
	Version = "dev"
	Commit  = ""
)

// Info is what /version and --version report.
type Info struct {
	Helper    string `json:"helper"`
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
}

// Get returns the build information for helper.
func Get(helper string) Info {
	commit := Commit
	if commit == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					commit = s.Value
				}
			}
		}
	}
	if commit == "" {
		commit = "unknown"
	}
	return Info{Helper: helper, Version: Version, Commit: commit, GoVersion: runtime.Version()}
}

// String is the one-line form printed by --version.
func (i Info) String() string {
	return fmt.Sprintf("%s %s (commit %s, %s)", i.Helper, i.Version, i.Commit, i.GoVersion)
}
