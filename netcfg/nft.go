package netcfg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A minimal nf_tables client over NETLINK_NETFILTER: create a table with
// NAT base chains and rules, delete a table, list table names. That is all
// otok needs, and it costs a few kB where a general library (measured:
// google/nftables v0.3.0) adds ~390 kB to the mips binary. Every table
// otok makes is named "otok" or "otok-<container>", so deleting a
// container's rules is deleting its table — no rule handles to look up.

// nlAttrs builds netlink attributes.
type nlAttrs []byte

func (a *nlAttrs) add(typ uint16, data []byte) {
	l := 4 + len(data)
	*a = binary.NativeEndian.AppendUint16(*a, uint16(l))
	*a = binary.NativeEndian.AppendUint16(*a, typ)
	*a = append(*a, data...)
	for len(*a)%4 != 0 {
		*a = append(*a, 0)
	}
}

func (a *nlAttrs) str(typ uint16, s string) { a.add(typ, append([]byte(s), 0)) }
func (a *nlAttrs) u32(typ uint16, v uint32) { a.add(typ, binary.BigEndian.AppendUint32(nil, v)) }
func (a *nlAttrs) nest(typ uint16, inner nlAttrs) {
	a.add(typ|unix.NLA_F_NESTED, inner)
}

// nftExpr is one expression of a rule: its name and attributes.
type nftExpr struct {
	name string
	data nlAttrs
}

func exprOf(name string, build func(a *nlAttrs)) nftExpr {
	var a nlAttrs
	if build != nil {
		build(&a)
	}
	return nftExpr{name, a}
}

func dataValue(b []byte) nlAttrs {
	var d nlAttrs
	d.add(unix.NFTA_DATA_VALUE, b)
	return d
}

// Expression constructors (register 1 holds the value being matched).
func eFibDaddrType() nftExpr {
	return exprOf("fib", func(a *nlAttrs) {
		a.u32(unix.NFTA_FIB_DREG, 1)
		a.u32(unix.NFTA_FIB_RESULT, unix.NFT_FIB_RESULT_ADDRTYPE)
		a.u32(unix.NFTA_FIB_FLAGS, unix.NFTA_FIB_F_DADDR)
	})
}

func eCmp(op uint32, data []byte) nftExpr {
	return exprOf("cmp", func(a *nlAttrs) {
		a.u32(unix.NFTA_CMP_SREG, 1)
		a.u32(unix.NFTA_CMP_OP, op)
		a.nest(unix.NFTA_CMP_DATA, dataValue(data))
	})
}

func eMeta(key uint32) nftExpr {
	return exprOf("meta", func(a *nlAttrs) {
		a.u32(unix.NFTA_META_KEY, key)
		a.u32(unix.NFTA_META_DREG, 1)
	})
}

func ePayload(base, off, n uint32) nftExpr {
	return exprOf("payload", func(a *nlAttrs) {
		a.u32(unix.NFTA_PAYLOAD_DREG, 1)
		a.u32(unix.NFTA_PAYLOAD_BASE, base)
		a.u32(unix.NFTA_PAYLOAD_OFFSET, off)
		a.u32(unix.NFTA_PAYLOAD_LEN, n)
	})
}

func eImmediate(reg uint32, data []byte) nftExpr {
	return exprOf("immediate", func(a *nlAttrs) {
		a.u32(unix.NFTA_IMMEDIATE_DREG, reg)
		a.nest(unix.NFTA_IMMEDIATE_DATA, dataValue(data))
	})
}

func eBitwise(mask, xor []byte) nftExpr {
	return exprOf("bitwise", func(a *nlAttrs) {
		a.u32(unix.NFTA_BITWISE_SREG, 1)
		a.u32(unix.NFTA_BITWISE_DREG, 1)
		a.u32(unix.NFTA_BITWISE_LEN, uint32(len(mask)))
		a.nest(unix.NFTA_BITWISE_MASK, dataValue(mask))
		a.nest(unix.NFTA_BITWISE_XOR, dataValue(xor))
	})
}

func eCtStatus() nftExpr {
	return exprOf("ct", func(a *nlAttrs) {
		a.u32(unix.NFTA_CT_DREG, 1)
		a.u32(unix.NFTA_CT_KEY, unix.NFT_CT_STATUS)
	})
}

// eDNAT: destination NAT to the address in register 1, port in register 2.
func eDNAT() nftExpr {
	return exprOf("nat", func(a *nlAttrs) {
		a.u32(unix.NFTA_NAT_TYPE, unix.NFT_NAT_DNAT)
		a.u32(unix.NFTA_NAT_FAMILY, unix.NFPROTO_IPV4)
		a.u32(unix.NFTA_NAT_REG_ADDR_MIN, 1)
		a.u32(unix.NFTA_NAT_REG_PROTO_MIN, 2)
	})
}

func eMasq() nftExpr { return exprOf("masq", nil) }

// nftChain is a NAT base chain.
type nftChain struct {
	name string
	hook uint32
	prio int32
}

// nftMsg is one message of a batch.
type nftMsg struct {
	typ   uint16 // NFT_MSG_*
	flags uint16
	attrs nlAttrs
}

func nftNewTable(name string) nftMsg {
	var a nlAttrs
	a.str(unix.NFTA_TABLE_NAME, name)
	return nftMsg{unix.NFT_MSG_NEWTABLE, unix.NLM_F_CREATE, a}
}

func nftDelTable(name string) nftMsg {
	var a nlAttrs
	a.str(unix.NFTA_TABLE_NAME, name)
	return nftMsg{unix.NFT_MSG_DELTABLE, 0, a}
}

func nftNewChain(table string, c nftChain) nftMsg {
	var a, hook nlAttrs
	a.str(unix.NFTA_CHAIN_TABLE, table)
	a.str(unix.NFTA_CHAIN_NAME, c.name)
	hook.u32(unix.NFTA_HOOK_HOOKNUM, c.hook)
	hook.u32(unix.NFTA_HOOK_PRIORITY, uint32(c.prio))
	a.nest(unix.NFTA_CHAIN_HOOK, hook)
	a.str(unix.NFTA_CHAIN_TYPE, "nat")
	return nftMsg{unix.NFT_MSG_NEWCHAIN, unix.NLM_F_CREATE, a}
}

func nftNewRule(table, chain string, exprs ...nftExpr) nftMsg {
	var a, list nlAttrs
	a.str(unix.NFTA_RULE_TABLE, table)
	a.str(unix.NFTA_RULE_CHAIN, chain)
	for _, e := range exprs {
		var el nlAttrs
		el.str(unix.NFTA_EXPR_NAME, e.name)
		if len(e.data) > 0 {
			el.nest(unix.NFTA_EXPR_DATA, e.data)
		}
		list.nest(unix.NFTA_LIST_ELEM, el)
	}
	a.nest(unix.NFTA_RULE_EXPRESSIONS, list)
	return nftMsg{unix.NFT_MSG_NEWRULE, unix.NLM_F_CREATE | unix.NLM_F_APPEND, a}
}

// nlMessage frames one netlink message with an nfgenmsg header.
func nlMessage(typ, flags uint16, seq uint32, family uint8, resID uint16, attrs []byte) []byte {
	b := make([]byte, 0, unix.NLMSG_HDRLEN+4+len(attrs))
	b = binary.NativeEndian.AppendUint32(b, uint32(unix.NLMSG_HDRLEN+4+len(attrs)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = append(b, family, unix.NFNETLINK_V0)
	b = binary.BigEndian.AppendUint16(b, resID)
	return append(b, attrs...)
}

// nftBatch encodes msgs as one transaction (BATCH_BEGIN … BATCH_END),
// each message asking for an acknowledgement.
func nftBatch(family uint8, seq uint32, msgs []nftMsg) []byte {
	b := nlMessage(unix.NFNL_MSG_BATCH_BEGIN, unix.NLM_F_REQUEST, seq, unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, nil)
	for i, m := range msgs {
		typ := uint16(unix.NFNL_SUBSYS_NFTABLES)<<8 | m.typ
		b = append(b, nlMessage(typ, unix.NLM_F_REQUEST|unix.NLM_F_ACK|m.flags, seq+1+uint32(i), family, 0, m.attrs)...)
	}
	return append(b, nlMessage(unix.NFNL_MSG_BATCH_END, unix.NLM_F_REQUEST, seq+1+uint32(len(msgs)), unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES, nil)...)
}

// nftConn is a NETLINK_NETFILTER socket in the host namespace.
type nftConn struct {
	fd  int
	seq uint32
}

func openNft(host *nsHandle) (*nftConn, error) {
	var fd int
	err := inNS(host.ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("nftables: netlink socket: %w", err)
	}
	return &nftConn{fd: fd, seq: 1}, nil
}

func (c *nftConn) Close() { unix.Close(c.fd) }

// apply sends msgs as one transaction and waits for every
// acknowledgement; the first error aborts (the kernel applies nothing).
func (c *nftConn) apply(msgs []nftMsg) error {
	seq := c.seq
	c.seq += uint32(len(msgs)) + 2
	if err := unix.Sendto(c.fd, nftBatch(unix.NFPROTO_IPV4, seq, msgs), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	acks := 0
	for acks < len(msgs) {
		ms, err := c.recv()
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.Header.Type != unix.NLMSG_ERROR || len(m.Data) < 4 {
				continue
			}
			if m.Header.Seq <= seq || m.Header.Seq > seq+uint32(len(msgs)) {
				continue // a stale answer
			}
			if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
				return unix.Errno(-errno)
			}
			acks++
		}
	}
	return nil
}

func (c *nftConn) recv() ([]syscall.NetlinkMessage, error) {
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return syscall.ParseNetlinkMessage(buf[:n])
	}
}

// tables lists the names of the ip-family tables.
func (c *nftConn) tables() ([]string, error) {
	c.seq++
	seq := c.seq
	req := nlMessage(uint16(unix.NFNL_SUBSYS_NFTABLES)<<8|unix.NFT_MSG_GETTABLE, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq, unix.NFPROTO_IPV4, 0, nil)
	if err := unix.Sendto(c.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	var names []string
	for {
		ms, err := c.recv()
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if m.Header.Seq != seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return names, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
						return nil, unix.Errno(-errno)
					}
				}
				return names, nil
			}
			if name, ok := attrString(m.Data[min(4, len(m.Data)):], unix.NFTA_TABLE_NAME); ok {
				names = append(names, name)
			}
		}
	}
}

// attrString finds a string attribute in a flat attribute list.
func attrString(b []byte, typ uint16) (string, bool) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		t := binary.NativeEndian.Uint16(b[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < 4 || l > len(b) {
			return "", false
		}
		if t == typ {
			return strings.TrimRight(string(b[4:l]), "\x00"), true
		}
		l = (l + 3) &^ 3
		if l > len(b) {
			return "", false
		}
		b = b[l:]
	}
	return "", false
}
