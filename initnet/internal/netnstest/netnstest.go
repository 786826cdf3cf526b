// Package netnstest runs test code inside a fresh, private network
// namespace (unshare on a locked OS thread that is thrown away afterwards),
// for the backend tests that need a kernel ruleset of their own.
package netnstest

import (
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sidecarkit/sidecarkit/integration/testenv"
)

// Run calls f on an OS thread in a new network namespace; processes f
// starts (exec.Command) inherit it. The thread is never returned to the Go
// scheduler, so the namespace dies with it. Needs root: calls
// testenv.RequireRoot (fails in CI, skips elsewhere).
func Run(t testing.TB, f func()) {
	t.Helper()
	testenv.RequireRoot(t)
	done := make(chan any, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
		defer func() { done <- recover() }()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare network namespace: %v", err)
			return
		}
		f()
	}()
	if p := <-done; p != nil {
		panic(p)
	}
}

// Sh runs a command (from inside Run's namespace, when called there) and
// returns its output in the error when it fails.
func Sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}
