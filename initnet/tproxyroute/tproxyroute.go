// Package tproxyroute installs TPROXY mode's policy routing, as Istio's
// init does: "ip rule add fwmark <mark> lookup <table>" and "ip route add
// local default dev lo table <table>", per family, so packets the mangle
// rules mark are delivered to the local (transparent) listener. Both are
// tagged with protocol Proto, so cleanup removes exactly what initnet added.
package tproxyroute

import (
	"errors"
	"fmt"
	"net"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Proto is the rule and route protocol marking them as initnet's (the
// same tag lo6 uses on ::6).
const Proto = 0x5c

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

// fibRuleHdr is struct fib_rule_hdr (family, dst_len, src_len, tos, table,
// res1, res2, action, flags).
func fibRuleHdr(family uint8) []byte {
	b := make([]byte, 12)
	b[0] = family
	b[7] = unix.FR_ACT_TO_TBL
	return b
}

// rtMsg is struct rtmsg for a local default route in table.
func rtMsg(family uint8, table uint32) []byte {
	b := make([]byte, unix.SizeofRtMsg)
	b[0] = family
	if table < 256 {
		b[4] = uint8(table)
	}
	b[5] = Proto
	b[6] = unix.RT_SCOPE_HOST
	b[7] = unix.RTN_LOCAL
	return b
}

func families(v6 bool) []uint8 {
	if v6 {
		return []uint8{unix.AF_INET, unix.AF_INET6}
	}
	return []uint8{unix.AF_INET}
}

// Ensure adds the rule and the route for each family (IPv6 too when v6)
// unless they are there.
func Ensure(mark, table uint32, v6 bool) error {
	c, lo, err := dial()
	if err != nil {
		return err
	}
	defer c.Close()
	for _, fam := range families(v6) {
		// NLM_F_EXCL does not catch a second copy (the kernel gives each
		// rule added without a priority a new one): look first.
		have, err := haveRule(c, fam, mark, table)
		if err != nil {
			return err
		}
		ae := netlink.NewAttributeEncoder()
		ae.Uint32(unix.FRA_FWMARK, mark)
		ae.Uint32(unix.FRA_TABLE, table)
		ae.Uint8(unix.FRA_PROTOCOL, Proto)
		attrs, err := ae.Encode()
		if err != nil {
			return err
		}
		if !have {
			if _, err := c.Execute(netlink.Message{
				Header: netlink.Header{Type: unix.RTM_NEWRULE, Flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl},
				Data:   append(fibRuleHdr(fam), attrs...),
			}); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("add rule fwmark %#x lookup %d (family %d): %w", mark, table, fam, err)
			}
		}
		ae = netlink.NewAttributeEncoder()
		ae.Uint32(unix.RTA_TABLE, table)
		ae.Uint32(unix.RTA_OIF, lo)
		if attrs, err = ae.Encode(); err != nil {
			return err
		}
		if _, err := c.Execute(netlink.Message{
			Header: netlink.Header{Type: unix.RTM_NEWROUTE, Flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl},
			Data:   append(rtMsg(fam, table), attrs...),
		}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add route local default dev lo table %d (family %d): %w", table, fam, err)
		}
	}
	return nil
}

// rule is one of initnet's policy rules, as dumped.
type rule struct {
	data        []byte
	mark, table uint32
}

// ourRules returns the family's rules tagged Proto.
func ourRules(c *netlink.Conn, fam uint8) ([]rule, error) {
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETRULE, Flags: netlink.Request | netlink.Dump},
		Data:   fibRuleHdr(fam),
	})
	if err != nil {
		return nil, fmt.Errorf("list rules: %w", err)
	}
	var out []rule
	for _, m := range msgs {
		if len(m.Data) < 12 || m.Data[0] != fam {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[12:])
		if err != nil {
			continue
		}
		r := rule{data: m.Data, table: uint32(m.Data[4])}
		ours := false
		for ad.Next() {
			switch ad.Type() {
			case unix.FRA_PROTOCOL:
				ours = ad.Uint8() == Proto
			case unix.FRA_FWMARK:
				r.mark = ad.Uint32()
			case unix.FRA_TABLE:
				r.table = ad.Uint32()
			}
		}
		if ours {
			out = append(out, r)
		}
	}
	return out, nil
}

func haveRule(c *netlink.Conn, fam uint8, mark, table uint32) (bool, error) {
	rs, err := ourRules(c, fam)
	if err != nil {
		return false, err
	}
	for _, r := range rs {
		if r.mark == mark && r.table == table {
			return true, nil
		}
	}
	return false, nil
}

// Remove deletes every rule and route tagged Proto (both families), and
// reports whether there were any.
func Remove() (bool, error) {
	c, _, err := dial()
	if err != nil {
		return false, err
	}
	defer c.Close()
	removed := false
	for _, fam := range families(true) {
		rs, err := ourRules(c, fam)
		if err != nil {
			if errors.Is(err, unix.EAFNOSUPPORT) {
				continue
			}
			return removed, err
		}
		for _, r := range rs {
			// The dump's message (header and attributes) names the rule exactly.
			if _, err := c.Execute(netlink.Message{
				Header: netlink.Header{Type: unix.RTM_DELRULE, Flags: netlink.Request | netlink.Acknowledge},
				Data:   r.data,
			}); err != nil && !errors.Is(err, unix.ENOENT) {
				return removed, fmt.Errorf("delete rule: %w", err)
			}
			removed = true
		}
		msgs, err := c.Execute(netlink.Message{
			Header: netlink.Header{Type: unix.RTM_GETROUTE, Flags: netlink.Request | netlink.Dump},
			Data:   make([]byte, unix.SizeofRtMsg)[:1:1],
		})
		if err != nil {
			return removed, fmt.Errorf("list routes: %w", err)
		}
		for _, m := range msgs {
			if len(m.Data) < unix.SizeofRtMsg || m.Data[0] != fam || m.Data[5] != Proto || m.Data[7] != unix.RTN_LOCAL || m.Data[1] != 0 {
				continue
			}
			table := uint32(m.Data[4])
			ad, err := netlink.NewAttributeDecoder(m.Data[unix.SizeofRtMsg:])
			if err != nil {
				continue
			}
			for ad.Next() {
				if ad.Type() == unix.RTA_TABLE {
					table = ad.Uint32()
				}
			}
			ae := netlink.NewAttributeEncoder()
			ae.Uint32(unix.RTA_TABLE, table)
			attrs, err := ae.Encode()
			if err != nil {
				return removed, err
			}
			if _, err := c.Execute(netlink.Message{
				Header: netlink.Header{Type: unix.RTM_DELROUTE, Flags: netlink.Request | netlink.Acknowledge},
				Data:   append(rtMsg(fam, table), attrs...),
			}); err != nil && !errors.Is(err, unix.ESRCH) {
				return removed, fmt.Errorf("delete route table %d: %w", table, err)
			}
			removed = true
		}
	}
	return removed, nil
}
