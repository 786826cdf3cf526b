// Package e2e proves initnet end to end as root: real network namespaces
// (`ip netns add`, a veth pair to an "outside" namespace), the real proxy
// running as UID 1337 in transparent mode, and initnet applied with each
// backend. The helpers here enter a named namespace for one socket (dial or
// listen) on a locked OS thread, so the test process can act as the app,
// the outside server and the outside client at once.
package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// inNS runs f on an OS thread switched into the named network namespace;
// sockets f creates stay in that namespace. The thread is given back to the
// scheduler only once it is back in its own namespace.
func inNS(name string, f func() error) error {
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer self.Close()
	target, err := os.Open("/var/run/netns/" + name)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", name, err)
	}
	ferr := f()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err == nil {
		runtime.UnlockOSThread()
	} // else: the thread stays locked and dies with this goroutine
	return ferr
}

// listen opens a TCP listener inside netns name.
func listen(name, network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNS(name, func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// dialer returns a DialContext that dials from inside netns name.
func dialer(name string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNS(name, func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}
