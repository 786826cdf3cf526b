// Package origdst reads the destination a TCP connection had before an
// iptables/nftables REDIRECT rewrote it: what the proxy's transparent
// listeners route by and what initnet's validation probe checks.
package origdst

import (
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// Get returns the destination a connection had before iptables
// REDIRECT/TPROXY rewrote it (SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST).
func Get(c *net.TCPConn) (netip.AddrPort, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var ap netip.AddrPort
	var serr error
	is6 := false
	if la, ok := c.LocalAddr().(*net.TCPAddr); ok && la.IP.To4() == nil {
		is6 = true
	}
	err = rc.Control(func(fd uintptr) {
		if !is6 {
			m, e := unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
			if e != nil {
				serr = os.NewSyscallError("getsockopt SO_ORIGINAL_DST", e)
				return
			}
			// struct sockaddr_in: family(2) port(2, big endian) addr(4)
			port := uint16(m.Multiaddr[2])<<8 | uint16(m.Multiaddr[3])
			ap = netip.AddrPortFrom(netip.AddrFrom4([4]byte(m.Multiaddr[4:8])), port)
			return
		}
		mi, e := unix.GetsockoptIPv6MTUInfo(int(fd), unix.SOL_IPV6, ip6tSOOriginalDst)
		if e != nil {
			serr = os.NewSyscallError("getsockopt IP6T_SO_ORIGINAL_DST", e)
			return
		}
		port := mi.Addr.Port>>8 | mi.Addr.Port<<8 // network to host order
		ap = netip.AddrPortFrom(netip.AddrFrom16(mi.Addr.Addr).Unmap(), port)
	})
	if err != nil {
		return netip.AddrPort{}, err
	}
	return ap, serr
}

// ip6tSOOriginalDst is IP6T_SO_ORIGINAL_DST from linux/netfilter_ipv6/ip6_tables.h.
const ip6tSOOriginalDst = 80
