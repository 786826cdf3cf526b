// Package nft installs initnet's rule sets through nf_tables netlink
// (github.com/google/nftables): no binaries needed, so it works from a
// FROM-scratch image. Each family's rules live in initnet's own table
// (ip sidecarkit, ip6 sidecarkit), replaced atomically in one transaction;
// cleanup deletes exactly those tables.
package nft

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/sidecarkit/sidecarkit/initnet/rules"
)

// Backend talks to nf_tables in the current network namespace.
type Backend struct{}

// Name is the backend's name for flags and logs.
func (Backend) Name() string { return "nftables" }

func conn() (*nftables.Conn, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: open netlink: %w", err)
	}
	return c, nil
}

// Available reports whether nf_tables answers over netlink here (kernel
// support and the privilege to use it).
func (Backend) Available() error {
	c, err := conn()
	if err != nil {
		return err
	}
	if _, err := c.ListTables(); err != nil {
		return fmt.Errorf("nftables: list tables: %w", err)
	}
	return nil
}

func family(f rules.Family) nftables.TableFamily {
	if f == rules.IPv6 {
		return nftables.TableFamilyIPv6
	}
	return nftables.TableFamilyIPv4
}

// Apply replaces initnet's tables with sets in one transaction: a second
// run leaves the same rules. A family not in sets keeps no initnet table.
func (b Backend) Apply(sets []rules.RuleSet) error {
	c, err := conn()
	if err != nil {
		return err
	}
	existing, err := c.ListTables()
	if err != nil {
		return fmt.Errorf("nftables: list tables: %w", err)
	}
	have := map[rules.Family]bool{}
	for _, rs := range sets {
		have[rs.Family] = true
		t := &nftables.Table{Name: rules.TableName, Family: family(rs.Family)}
		// add+delete+add: replace whether or not it exists, atomically.
		c.AddTable(t)
		c.DelTable(t)
		c.AddTable(t)
		chains := map[string]*nftables.Chain{}
		for _, ch := range rs.Chains {
			nc := &nftables.Chain{Name: ch.Name, Table: t}
			if ch.Hook != rules.HookNone {
				accept := nftables.ChainPolicyAccept
				nc.Type = nftables.ChainType(rules.NftChainType(ch.Table, ch.Hook))
				nc.Priority = nftables.ChainPriorityRef(nftables.ChainPriority(rules.NftPriority(ch.Table)))
				nc.Policy = &accept
				nc.Hooknum = nftables.ChainHookPrerouting
				if ch.Hook == rules.HookOutput {
					nc.Hooknum = nftables.ChainHookOutput
				}
			}
			chains[ch.Name] = c.AddChain(nc)
		}
		for _, ch := range rs.Chains {
			for _, r := range ch.Rules {
				exprs, err := Exprs(rs.Family, r)
				if err != nil {
					return err
				}
				c.AddRule(&nftables.Rule{Table: t, Chain: chains[ch.Name], Exprs: exprs})
			}
		}
	}
	// A family no longer wanted loses the table of an earlier run (only if
	// there is one: a kernel without that family must not fail the apply).
	for _, t := range existing {
		if t.Name == rules.TableName && (t.Family == nftables.TableFamilyIPv4 && !have[rules.IPv4] || t.Family == nftables.TableFamilyIPv6 && !have[rules.IPv6]) {
			c.DelTable(t)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: install table %s: %w", rules.TableName, err)
	}
	return nil
}

// Installed reports whether any initnet table exists.
func (Backend) Installed() (bool, error) {
	c, err := conn()
	if err != nil {
		return false, err
	}
	ts, err := c.ListTables()
	if err != nil {
		return false, fmt.Errorf("nftables: list tables: %w", err)
	}
	for _, t := range ts {
		if t.Name == rules.TableName && (t.Family == nftables.TableFamilyIPv4 || t.Family == nftables.TableFamilyIPv6) {
			return true, nil
		}
	}
	return false, nil
}

// Cleanup deletes initnet's tables and reports whether there were any.
func (Backend) Cleanup() (bool, error) {
	c, err := conn()
	if err != nil {
		return false, err
	}
	ts, err := c.ListTables()
	if err != nil {
		return false, fmt.Errorf("nftables: list tables: %w", err)
	}
	found := false
	for _, t := range ts {
		if t.Name == rules.TableName && (t.Family == nftables.TableFamilyIPv4 || t.Family == nftables.TableFamilyIPv6) {
			c.DelTable(t)
			found = true
		}
	}
	if !found {
		return false, nil
	}
	if err := c.Flush(); err != nil {
		return false, fmt.Errorf("nftables: delete table %s: %w", rules.TableName, err)
	}
	return true, nil
}

func ifname(n string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, n)
	return b
}

func addrMatch(f rules.Family, p netip.Prefix, dst, not bool) []expr.Any {
	var off uint32
	switch {
	case f == rules.IPv4 && !dst:
		off = 12
	case f == rules.IPv4 && dst:
		off = 16
	case !dst:
		off = 8
	default:
		off = 24
	}
	a := p.Addr().AsSlice()
	n := uint32(len(a))
	out := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n}}
	if p.Bits() < p.Addr().BitLen() {
		mask := make([]byte, n)
		for i := 0; i < p.Bits(); i++ {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		out = append(out, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: n, Mask: mask, Xor: make([]byte, n)})
		a = p.Masked().Addr().AsSlice()
	}
	op := expr.CmpOpEq
	if not {
		op = expr.CmpOpNeq
	}
	return append(out, &expr.Cmp{Op: op, Register: 1, Data: a})
}

// Exprs turns one rule into nf_tables expressions, in the order that
// rules.NftRule prints them.
func Exprs(f rules.Family, r rules.Rule) ([]expr.Any, error) {
	var e []expr.Any
	if r.InIface != "" {
		e = append(e, &expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(r.InIface)})
	}
	if r.OutIface != "" {
		e = append(e, &expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(r.OutIface)})
	}
	if r.Src.IsValid() {
		e = append(e, addrMatch(f, r.Src, false, false)...)
	}
	if r.Dst.IsValid() {
		e = append(e, addrMatch(f, r.Dst, true, r.NotDst)...)
	}
	switch r.Proto {
	case rules.ProtoTCP:
		e = append(e, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}})
	case rules.ProtoUDP:
		e = append(e, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}})
	}
	if (r.DPort != 0 || r.SPort != 0 || len(r.NotDPorts) > 0) && r.Proto == rules.ProtoAny {
		return nil, fmt.Errorf("nftables: rule %q: a port match needs a protocol", rules.NftRule(f, r))
	}
	port := func(off uint32, op expr.CmpOp, p uint16) {
		e = append(e, &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: off, Len: 2},
			&expr.Cmp{Op: op, Register: 1, Data: binaryutil.BigEndian.PutUint16(p)})
	}
	switch {
	case r.DPort != 0:
		port(2, expr.CmpOpEq, r.DPort)
	case r.SPort != 0:
		port(0, expr.CmpOpEq, r.SPort)
	default:
		for _, p := range r.NotDPorts {
			port(2, expr.CmpOpNeq, p)
		}
	}
	if r.Owner.Kind != rules.OwnerNone {
		key := expr.MetaKeySKUID
		if r.Owner.Kind == rules.OwnerGID {
			key = expr.MetaKeySKGID
		}
		op := expr.CmpOpEq
		if r.Owner.Not {
			op = expr.CmpOpNeq
		}
		id := make([]byte, 4)
		binary.NativeEndian.PutUint32(id, r.Owner.ID)
		e = append(e, &expr.Meta{Key: key, Register: 1}, &expr.Cmp{Op: op, Register: 1, Data: id})
	}
	for _, g := range r.NotGIDs {
		e = append(e, &expr.Meta{Key: expr.MetaKeySKGID, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(g)})
	}
	if r.CtInvalid {
		e = append(e, &expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitINVALID), Xor: binaryutil.NativeEndian.PutUint32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}})
	}
	if r.Mark != 0 {
		op := expr.CmpOpEq
		if r.NotMark {
			op = expr.CmpOpNeq
		}
		e = append(e, &expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Cmp{Op: op, Register: 1, Data: binaryutil.NativeEndian.PutUint32(r.Mark)})
	}
	if r.ConnMark != 0 {
		e = append(e, &expr.Ct{Key: expr.CtKeyMARK, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(r.ConnMark)})
	}
	if r.CtEstRel {
		e = append(e, &expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED), Xor: binaryutil.NativeEndian.PutUint32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}})
	}
	switch r.Verdict.Kind {
	case rules.SetMark:
		e = append(e, &expr.Immediate{Register: 1, Data: binaryutil.NativeEndian.PutUint32(r.Verdict.Mark)},
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true})
	case rules.Accept:
		e = append(e, &expr.Verdict{Kind: expr.VerdictAccept})
	case rules.TProxy:
		fam := byte(unix.NFPROTO_IPV4)
		if f == rules.IPv6 {
			fam = unix.NFPROTO_IPV6
		}
		e = append(e, &expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(r.Verdict.Port)},
			&expr.TProxy{Family: fam, TableFamily: fam, RegPort: 1},
			&expr.Immediate{Register: 1, Data: binaryutil.NativeEndian.PutUint32(r.Verdict.Mark)},
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true},
			&expr.Verdict{Kind: expr.VerdictAccept})
	case rules.SaveMark:
		e = append(e, &expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Ct{Key: expr.CtKeyMARK, Register: 1, SourceRegister: true})
	case rules.RestoreMark:
		e = append(e, &expr.Ct{Key: expr.CtKeyMARK, Register: 1},
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true})
	case rules.Drop:
		e = append(e, &expr.Verdict{Kind: expr.VerdictDrop})
	case rules.SetZone:
		e = append(e, &expr.Immediate{Register: 1, Data: binaryutil.NativeEndian.PutUint16(r.Verdict.Zone)},
			&expr.Ct{Key: expr.CtKeyZONE, Register: 1, SourceRegister: true})
	case rules.Return:
		e = append(e, &expr.Verdict{Kind: expr.VerdictReturn})
	case rules.Jump:
		e = append(e, &expr.Verdict{Kind: expr.VerdictJump, Chain: r.Verdict.Chain})
	case rules.Redirect:
		e = append(e, &expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(r.Verdict.Port)},
			&expr.Redir{RegisterProtoMin: 1})
	}
	return e, nil
}
