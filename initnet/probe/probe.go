// Package probe proves that installed rules redirect, the way Istio's
// validation does: it listens on the proxy's inbound port, connects to a
// test address as the proxy's UID/GID (which the rules send to the inbound
// listener), and checks that the connection landed there with the test
// address as its original destination (SO_ORIGINAL_DST). It also holds the
// SO_ORIGINAL_DST reader itself.
package probe

import (
	"github.com/sidecarkit/sidecarkit/shared/origdst"

	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Config says what to prove.
type Config struct {
	ListenPort uint16         // the proxy's inbound port (rules redirect the probe there)
	Target     netip.AddrPort // the test address dialled (127.0.0.6:15002)
	UID, GID   uint32         // the proxy's; the probe socket is created with these
	Timeout    time.Duration
}

// Result is what the probe saw.
type Result struct {
	Landed      bool           // the connection reached the validation listener
	OriginalDst netip.AddrPort // as read on the accepted connection
}

// Run listens on 127.0.0.1:ListenPort, dials Target from a socket owned by
// UID/GID and reports whether the connection arrived with Target as its
// original destination. An error says what was seen instead.
func Run(ctx context.Context, c Config) (Result, error) {
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	ln, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(c.ListenPort))))
	if err != nil {
		return Result{}, fmt.Errorf("validation listener on the inbound port %d: %w (is the proxy already running?)", c.ListenPort, err)
	}
	defer ln.Close()
	token := make([]byte, 16) // tells the probe's connection from any other
	rand.Read(token)

	type accepted struct {
		dst netip.AddrPort
		tok []byte
		err error
	}
	got := make(chan accepted, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- accepted{err: err}
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(c.Timeout))
		dst, derr := origdst.Get(conn.(*net.TCPConn))
		buf := make([]byte, len(token))
		_, rerr := io.ReadFull(conn, buf)
		got <- accepted{dst: dst, tok: buf, err: errors.Join(derr, rerr)}
	}()

	fd, err := socketAs(c.UID, c.GID, c.Target.Addr().Is6())
	if err != nil {
		return Result{}, err
	}
	f := os.NewFile(uintptr(fd), "probe")
	defer f.Close()
	tv := unix.NsecToTimeval(c.Timeout.Nanoseconds())
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	var sa unix.Sockaddr
	if c.Target.Addr().Is4() {
		sa = &unix.SockaddrInet4{Port: int(c.Target.Port()), Addr: c.Target.Addr().As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(c.Target.Port()), Addr: c.Target.Addr().As16()}
	}
	if err := unix.Connect(fd, sa); err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return Result{}, fmt.Errorf("connection to %s as uid %d was refused: it was not redirected to the inbound listener on :%d (rules missing or not matching)", c.Target, c.UID, c.ListenPort)
		}
		return Result{}, fmt.Errorf("connect to %s as uid %d: %w", c.Target, c.UID, err)
	}
	if _, err := unix.Write(fd, token); err != nil {
		return Result{}, fmt.Errorf("write to %s: %w", c.Target, err)
	}
	select {
	case a := <-got:
		if a.err != nil {
			return Result{}, fmt.Errorf("validation listener: %w", a.err)
		}
		res := Result{Landed: string(a.tok) == string(token), OriginalDst: a.dst}
		switch {
		case !res.Landed:
			return res, fmt.Errorf("validation listener got a connection, but not the probe's")
		case a.dst != c.Target:
			return res, fmt.Errorf("probe landed on the inbound listener with original destination %s, want %s", a.dst, c.Target)
		}
		return res, nil
	case <-time.After(c.Timeout):
		return Result{}, fmt.Errorf("connection to %s was accepted by something other than the validation listener on :%d (nothing arrived within %s)", c.Target, c.ListenPort, c.Timeout)
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// socketAs creates a TCP socket owned by uid/gid: the owner match of the
// rules reads the socket's creator fsuid/fsgid, so it is set on this
// thread only (setfsuid is per thread), and restored before the thread goes
// back to the scheduler.
func socketAs(uid, gid uint32, v6 bool) (int, error) {
	runtime.LockOSThread()
	domain := unix.AF_INET
	if v6 {
		domain = unix.AF_INET6
	}
	oldGID, _, _ := unix.RawSyscall(unix.SYS_SETFSGID, uintptr(gid), 0, 0)
	oldUID, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, uintptr(uid), 0, 0)
	// setfsuid/setfsgid never fail loudly: read back what took effect.
	nowUID, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, ^uintptr(0), 0, 0)
	nowGID, _, _ := unix.RawSyscall(unix.SYS_SETFSGID, ^uintptr(0), 0, 0)
	fd, err := -1, error(nil)
	if nowUID == uintptr(uid) && nowGID == uintptr(gid) {
		fd, err = unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	} else {
		err = fmt.Errorf("cannot act as uid %d gid %d (needs CAP_SETUID and CAP_SETGID)", uid, gid)
	}
	unix.RawSyscall(unix.SYS_SETFSUID, oldUID, 0, 0)
	unix.RawSyscall(unix.SYS_SETFSGID, oldGID, 0, 0)
	// Only give the thread back if both ids are restored.
	if now, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, ^uintptr(0), 0, 0); now == oldUID {
		if nowg, _, _ := unix.RawSyscall(unix.SYS_SETFSGID, ^uintptr(0), 0, 0); nowg == oldGID {
			runtime.UnlockOSThread()
		}
	}
	if err != nil {
		return -1, fmt.Errorf("probe socket: %w", err)
	}
	return fd, nil
}
