package netcfg

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"golang.org/x/sys/unix"
)

// NAT and port publishing live in nftables tables (family ip) that otok
// owns, next to OpenWrt's fw4 (nftables too, since 22.03):
//
//	table ip otok          postrouting: masquerade otok0's subnet
//	table ip otok-<name>   one container's published ports: DNAT in
//	                       prerouting and output, hairpin masquerade
//
// otok's chains run just before fw4's (priority -101 / 99) and touch
// nothing of fw4's. fw4's forward policy still applies on OpenWrt: otok0
// must be in a zone allowed to forward (the agent's UCI integration).
// Removing a container's rules is deleting its table; the table names are
// the tags Sweep looks for.
const NATTable = "otok"

// natTableFor is the table of one container's published ports.
func natTableFor(container string) string { return NATTable + "-" + container }

var (
	chainPre  = nftChain{"prerouting", unix.NF_INET_PRE_ROUTING, -101}
	chainOut  = nftChain{"output", unix.NF_INET_LOCAL_OUT, -101}
	chainPost = nftChain{"postrouting", unix.NF_INET_POST_ROUTING, 99}
)

// natAdd installs rec's published ports (DNAT to ctrAddr, and masquerade
// for hairpin traffic on a shared bridge such as br-lan) and, for otok0,
// the bridge's masquerade table — all in one transaction.
func natAdd(host *nsHandle, rec *Record, ctrAddr netip.Addr) error {
	otok := rec.Spec.Mode == ModeBridge && isOtokBridge(rec.Spec.Bridge)
	if len(rec.Spec.Publish) > 0 && !ctrAddr.IsValid() {
		return fmt.Errorf("container %s: -p needs an IPv4 address", rec.Container)
	}
	c, err := openNft(host)
	if err != nil {
		return err
	}
	defer c.Close()
	have, err := c.tables()
	if err != nil {
		return fmt.Errorf("nftables: %w (NAT and -p need nftables: kmod-nft-nat on OpenWrt)", err)
	}
	exists := func(t string) bool {
		for _, h := range have {
			if h == t {
				return true
			}
		}
		return false
	}
	var msgs []nftMsg
	if otok && !exists(NATTable) {
		msgs = append(msgs, nftNewTable(NATTable), nftNewChain(NATTable, chainPost),
			nftNewRule(NATTable, chainPost.name, masqueradeSubnet(OtokSubnet, OtokBridge)...))
	}
	if len(rec.Spec.Publish) > 0 {
		t := natTableFor(rec.Container)
		if exists(t) { // left by a crash
			msgs = append(msgs, nftDelTable(t))
		}
		msgs = append(msgs, nftNewTable(t), nftNewChain(t, chainPre), nftNewChain(t, chainOut))
		if !otok {
			msgs = append(msgs, nftNewChain(t, chainPost))
		}
		for _, p := range rec.Spec.Publish {
			msgs = append(msgs, nftNewRule(t, chainPre.name, dnatRule(p, ctrAddr)...),
				nftNewRule(t, chainOut.name, dnatRule(p, ctrAddr)...))
			if !otok {
				msgs = append(msgs, nftNewRule(t, chainPost.name, hairpinRule(p, ctrAddr)...))
			}
		}
		if err := enableForwarding(host); err != nil {
			return err
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := c.apply(msgs); err != nil {
		return fmt.Errorf("nftables: add rules for %s: %w (NAT and -p need nftables: kmod-nft-nat on OpenWrt)", rec.Container, err)
	}
	return nil
}

// natPrune deletes the otok tables for which drop(name) is true. A host
// without nftables has nothing to prune.
func natPrune(host *nsHandle, drop func(table string) bool) error {
	c, err := openNft(host)
	if err != nil {
		return nil
	}
	defer c.Close()
	have, err := c.tables()
	if err != nil {
		return nil
	}
	var msgs []nftMsg
	for _, t := range have {
		if (t == NATTable || strings.HasPrefix(t, NATTable+"-")) && drop(t) {
			msgs = append(msgs, nftDelTable(t))
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := c.apply(msgs); err != nil && err != unix.ENOENT {
		return fmt.Errorf("nftables: remove otok tables: %w", err)
	}
	return nil
}

// natDel removes one container's table.
func natDel(host *nsHandle, container string) error {
	t := natTableFor(container)
	return natPrune(host, func(n string) bool { return n == t })
}

// natCleanupIfUnused drops the otok0 masquerade table when no record but
// except's uses otok0.
func natCleanupIfUnused(host *nsHandle, recs []*Record, except string) error {
	for _, r := range recs {
		if r.Container != except && r.Spec.Mode == ModeBridge && isOtokBridge(r.Spec.Bridge) && r.HostNS == host.path {
			return nil
		}
	}
	return natPrune(host, func(n string) bool { return n == NATTable })
}

// natSweep drops the tables of containers that are not alive, and otok0's
// when no live record uses it.
func natSweep(host *nsHandle, live []*Record, alive func(string) bool) error {
	bridgeUsed := false
	for _, r := range live {
		bridgeUsed = bridgeUsed || (r.Spec.Mode == ModeBridge && isOtokBridge(r.Spec.Bridge) && r.HostNS == host.path)
	}
	return natPrune(host, func(n string) bool {
		if n == NATTable {
			return !bridgeUsed
		}
		return !alive(strings.TrimPrefix(n, NATTable+"-"))
	})
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
func dnatRule(p Publish, to netip.Addr) []nftExpr {
	ip := to.As4()
	return []nftExpr{
		eFibDaddrType(),
		eCmp(unix.NFT_CMP_EQ, binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)),
		eMeta(unix.NFT_META_L4PROTO),
		eCmp(unix.NFT_CMP_EQ, []byte{protoNum(p.Proto)}),
		ePayload(unix.NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2),
		eCmp(unix.NFT_CMP_EQ, be16(p.HostPort)),
		eImmediate(1, ip[:]),
		eImmediate(2, be16(p.CtrPort)),
		eDNAT(),
	}
}

// hairpinRule: ct status dnat ip daddr A meta l4proto P th dport CP
// masquerade — a LAN host and a container on the same bridge would
// otherwise talk past the router on the way back.
func hairpinRule(p Publish, to netip.Addr) []nftExpr {
	ip := to.As4()
	return []nftExpr{
		eCtStatus(),
		eBitwise(binary.NativeEndian.AppendUint32(nil, ipsDstNAT), make([]byte, 4)),
		eCmp(unix.NFT_CMP_NEQ, make([]byte, 4)),
		ePayload(unix.NFT_PAYLOAD_NETWORK_HEADER, 16, 4),
		eCmp(unix.NFT_CMP_EQ, ip[:]),
		eMeta(unix.NFT_META_L4PROTO),
		eCmp(unix.NFT_CMP_EQ, []byte{protoNum(p.Proto)}),
		ePayload(unix.NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2),
		eCmp(unix.NFT_CMP_EQ, be16(p.CtrPort)),
		eMasq(),
	}
}

// masqueradeSubnet: ip saddr NET oifname != BR masquerade.
func masqueradeSubnet(n netip.Prefix, br string) []nftExpr {
	ip := n.Masked().Addr().As4()
	name := make([]byte, unix.IFNAMSIZ)
	copy(name, br)
	return []nftExpr{
		ePayload(unix.NFT_PAYLOAD_NETWORK_HEADER, 12, 4),
		eBitwise(netipMask4(n.Bits()), make([]byte, 4)),
		eCmp(unix.NFT_CMP_EQ, ip[:]),
		eMeta(unix.NFT_META_OIFNAME),
		eCmp(unix.NFT_CMP_NEQ, name),
		eMasq(),
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
