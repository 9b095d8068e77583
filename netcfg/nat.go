package netcfg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// NATTable is the nftables table (family ip) otok owns: DNAT for published
// ports, masquerade for otok0. OpenWrt 22.03+ (fw4) filters with nftables
// too; otok's chains run just before fw4's (priority -101 / 99) and touch
// nothing of fw4's. On OpenWrt, fw4's forward policy still applies: otok0
// must be in a zone allowed to forward (the agent's UCI integration).
const NATTable = "otok"

var natTable = &nftables.Table{Name: NATTable, Family: nftables.TableFamilyIPv4}

func natChains() (pre, out, post *nftables.Chain) {
	mk := func(name string, hook *nftables.ChainHook, prio nftables.ChainPriority) *nftables.Chain {
		return &nftables.Chain{Name: name, Table: natTable, Type: nftables.ChainTypeNAT, Hooknum: hook, Priority: nftables.ChainPriorityRef(prio)}
	}
	return mk("prerouting", nftables.ChainHookPrerouting, -101),
		mk("output", nftables.ChainHookOutput, -101),
		mk("postrouting", nftables.ChainHookPostrouting, 99)
}

func natConn(host *nsHandle) (*nftables.Conn, error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(host.ns)))
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	return c, nil
}

// natAdd installs rec's published ports (DNAT to ctrAddr, and masquerade
// for hairpin traffic on a shared bridge such as br-lan) and, for otok0,
// the bridge's masquerade rule. Rules carry the container's tag as user
// data.
func natAdd(host *nsHandle, rec *Record, ctrAddr netip.Addr) error {
	c, err := natConn(host)
	if err != nil {
		return err
	}
	pre, out, post := natChains()
	c.AddTable(natTable)
	c.AddChain(pre)
	c.AddChain(out)
	c.AddChain(post)
	otok := rec.Spec.Mode == ModeBridge && isOtokBridge(rec.Spec.Bridge)
	if otok && !natHasTag(c, post, tagBridge) {
		c.AddRule(&nftables.Rule{Table: natTable, Chain: post, UserData: []byte(tagBridge), Exprs: masqueradeSubnet(OtokSubnet, OtokBridge)})
	}
	if len(rec.Spec.Publish) > 0 && !ctrAddr.IsValid() {
		return fmt.Errorf("container %s: -p needs an IPv4 address", rec.Container)
	}
	tag := []byte(tagFor(rec.Container))
	for _, p := range rec.Spec.Publish {
		c.AddRule(&nftables.Rule{Table: natTable, Chain: pre, UserData: tag, Exprs: dnatRule(p, ctrAddr)})
		c.AddRule(&nftables.Rule{Table: natTable, Chain: out, UserData: tag, Exprs: dnatRule(p, ctrAddr)})
		if !otok {
			c.AddRule(&nftables.Rule{Table: natTable, Chain: post, UserData: tag, Exprs: hairpinRule(p, ctrAddr)})
		}
	}
	if len(rec.Spec.Publish) > 0 {
		if err := enableForwarding(host); err != nil {
			return err
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: add table %s rules for %s: %w (publishing needs nftables: kmod-nft-nat on OpenWrt)", NATTable, rec.Container, err)
	}
	return nil
}

func natHasTag(c *nftables.Conn, ch *nftables.Chain, tag string) bool {
	rules, err := c.GetRules(natTable, ch)
	if err != nil {
		return false
	}
	for _, r := range rules {
		if string(r.UserData) == tag {
			return true
		}
	}
	return false
}

// natPrune deletes the rules for which drop(tag) is true, and the table
// when no rule is left. A host without nftables or without the table has
// nothing to prune.
func natPrune(host *nsHandle, drop func(tag string) bool) error {
	c, err := natConn(host)
	if err != nil {
		return nil
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return nil
	}
	found := false
	for _, t := range tables {
		found = found || t.Name == NATTable
	}
	if !found {
		return nil
	}
	pre, out, post := natChains()
	left := 0
	for _, ch := range []*nftables.Chain{pre, out, post} {
		rules, err := c.GetRules(natTable, ch)
		if err != nil {
			continue
		}
		for _, r := range rules {
			if drop(string(r.UserData)) {
				if err := c.DelRule(r); err != nil {
					return fmt.Errorf("nftables: %w", err)
				}
			} else {
				left++
			}
		}
	}
	if left == 0 {
		c.DelTable(natTable)
	}
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("nftables: prune table %s: %w", NATTable, err)
	}
	return nil
}

// natDel removes one container's rules.
func natDel(host *nsHandle, container string) error {
	tag := tagFor(container)
	return natPrune(host, func(t string) bool { return t == tag })
}

// natCleanupIfUnused drops otok0's masquerade rule when no record but
// except's uses otok0.
func natCleanupIfUnused(host *nsHandle, recs []*Record, except string) error {
	for _, r := range recs {
		if r.Container != except && r.Spec.Mode == ModeBridge && isOtokBridge(r.Spec.Bridge) && r.HostNS == host.path {
			return nil
		}
	}
	return natPrune(host, func(t string) bool { return t == tagBridge })
}

// natSweep drops rules of containers that are not alive, and otok0's
// when no live record uses it.
func natSweep(host *nsHandle, live []*Record, alive func(string) bool) error {
	bridgeUsed := false
	for _, r := range live {
		bridgeUsed = bridgeUsed || (r.Spec.Mode == ModeBridge && isOtokBridge(r.Spec.Bridge) && r.HostNS == host.path)
	}
	return natPrune(host, func(t string) bool {
		if t == tagBridge {
			return !bridgeUsed
		}
		name, ok := strings.CutPrefix(t, tagPrefix)
		return !ok || !alive(name)
	})
}

// Expression helpers. Register 1 holds the value being matched.

func cmpEq(data []byte) *expr.Cmp {
	return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data}
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func protoNum(p string) byte {
	if p == "udp" {
		return unix.IPPROTO_UDP
	}
	return unix.IPPROTO_TCP
}

// dnatRule: fib daddr type local meta l4proto P th dport HP dnat to A:CP.
// The local-address match keeps transit traffic to the same port on other
// hosts untouched.
func dnatRule(p Publish, to netip.Addr) []expr.Any {
	ip := to.As4()
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		cmpEq(binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		cmpEq([]byte{protoNum(p.Proto)}),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		cmpEq(be16(p.HostPort)),
		&expr.Immediate{Register: 1, Data: ip[:]},
		&expr.Immediate{Register: 2, Data: be16(p.CtrPort)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}

// hairpinRule: ct status dnat ip daddr A meta l4proto P th dport CP
// masquerade — a LAN host and a container on the same bridge would
// otherwise talk past the router on the way back.
func hairpinRule(p Publish, to netip.Addr) []expr.Any {
	ip := to.As4()
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, ipsDstNAT), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		cmpEq(ip[:]),
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		cmpEq([]byte{protoNum(p.Proto)}),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		cmpEq(be16(p.CtrPort)),
		&expr.Masq{},
	}
}

// masqueradeSubnet: ip saddr NET oifname != BR masquerade.
func masqueradeSubnet(n netip.Prefix, br string) []expr.Any {
	ip := n.Masked().Addr().As4()
	mask := netipMask4(n.Bits())
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, br)
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: mask, Xor: make([]byte, 4)},
		cmpEq(ip[:]),
		&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: name},
		&expr.Masq{},
	}
}

func netipMask4(bits int) []byte {
	m := make([]byte, 4)
	for i := 0; i < bits; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// ipsDstNAT is IPS_DST_NAT of <linux/netfilter/nf_conntrack_common.h>.
const ipsDstNAT = 1 << 5
