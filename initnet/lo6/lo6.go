// Package lo6 puts ::6/128 on lo, as Istio's init does, so the proxy can
// dial the app over IPv6 from ::6 — the address initnet's rules exempt, the
// IPv6 twin of 127.0.0.6. The address is tagged with IFA_PROTO, so cleanup
// removes it only when initnet added it (kernels before 5.18 ignore the tag;
// there cleanup leaves ::6 alone).
package lo6

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Proto is the IFA_PROTO value marking the address as initnet's.
const Proto = 0x5c

// ifaProto is IFA_PROTO (linux/if_addr.h, 5.18+), not named in x/sys/unix.
const ifaProto = 11

// six is the address managed here.
func six() netip.Addr { return netip.AddrFrom16([16]byte{15: 6}) }

func msg(index uint32, flags uint8) []byte {
	b := make([]byte, unix.SizeofIfAddrmsg)
	b[0] = unix.AF_INET6
	b[1] = 128
	b[2] = flags
	b[3] = unix.RT_SCOPE_HOST
	binary.NativeEndian.PutUint32(b[4:], index)
	return b
}

func dial() (*netlink.Conn, uint32, error) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return nil, 0, fmt.Errorf("lo: %w", err)
	}
	c, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("rtnetlink: %w", err)
	}
	return c, uint32(lo.Index), nil
}

// Ensure adds ::6/128 to lo unless it is there, and reports whether it
// added it.
func Ensure() (bool, error) {
	c, lo, err := dial()
	if err != nil {
		return false, err
	}
	defer c.Close()
	ae := netlink.NewAttributeEncoder()
	a16 := six().As16()
	ae.Bytes(unix.IFA_ADDRESS, a16[:])
	ae.Bytes(unix.IFA_LOCAL, a16[:])
	ae.Uint32(unix.IFA_FLAGS, unix.IFA_F_NODAD)
	ae.Uint8(ifaProto, Proto)
	attrs, err := ae.Encode()
	if err != nil {
		return false, err
	}
	_, err = c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_NEWADDR, Flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl},
		Data:   append(msg(lo, unix.IFA_F_NODAD), attrs...),
	})
	if errors.Is(err, unix.EEXIST) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("add ::6/128 to lo: %w", err)
	}
	return true, nil
}

// Remove deletes ::6/128 from lo if initnet added it (IFA_PROTO says so),
// and reports whether it did.
func Remove() (bool, error) {
	c, lo, err := dial()
	if err != nil {
		return false, err
	}
	defer c.Close()
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETADDR, Flags: netlink.Request | netlink.Dump},
		Data:   msg(0, 0)[:1:1],
	})
	if err != nil {
		return false, fmt.Errorf("list addresses: %w", err)
	}
	for _, m := range msgs {
		if len(m.Data) < unix.SizeofIfAddrmsg || m.Data[0] != unix.AF_INET6 || m.Data[1] != 128 ||
			binary.NativeEndian.Uint32(m.Data[4:8]) != lo {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[unix.SizeofIfAddrmsg:])
		if err != nil {
			continue
		}
		var a []byte
		proto := -1
		for ad.Next() {
			switch ad.Type() {
			case unix.IFA_ADDRESS:
				a = ad.Bytes()
			case ifaProto:
				proto = int(ad.Uint8())
			}
		}
		if ip, ok := netip.AddrFromSlice(a); !ok || ip != six() || proto != Proto {
			continue
		}
		ae := netlink.NewAttributeEncoder()
		a16 := six().As16()
		ae.Bytes(unix.IFA_ADDRESS, a16[:])
		attrs, err := ae.Encode()
		if err != nil {
			return false, err
		}
		if _, err := c.Execute(netlink.Message{
			Header: netlink.Header{Type: unix.RTM_DELADDR, Flags: netlink.Request | netlink.Acknowledge},
			Data:   append(msg(lo, 0), attrs...),
		}); err != nil {
			return false, fmt.Errorf("remove ::6/128 from lo: %w", err)
		}
		return true, nil
	}
	return false, nil
}
