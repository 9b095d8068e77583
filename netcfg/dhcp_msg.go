package netcfg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// DHCPv4 message types (option 53).
const (
	dhcpDiscover = 1
	dhcpOffer    = 2
	dhcpRequest  = 3
	dhcpDecline  = 4
	dhcpAck      = 5
	dhcpNak      = 6
	dhcpRelease  = 7
)

// DHCPv4 options used here (RFC 2132).
const (
	optPad        = 0
	optSubnetMask = 1
	optRouter     = 3
	optDNS        = 6
	optHostname   = 12
	optDomain     = 15
	optRequested  = 50
	optLeaseTime  = 51
	optOverload   = 52
	optMsgType    = 53
	optServerID   = 54
	optParams     = 55
	optMaxSize    = 57
	optT1         = 58
	optT2         = 59
	optClientID   = 61
	optEnd        = 255
)

const (
	bootRequest = 1
	bootReply   = 2
	dhcpHdrLen  = 236
	dhcpMinLen  = 300 // BOOTP minimum; some relays drop shorter packets
	// dhcpMaxLen bounds what we build and accept (one Ethernet frame).
	dhcpMaxLen = 1500 - 20 - 8
)

var dhcpMagic = [4]byte{99, 130, 83, 99}

// dhcpMsg is a DHCPv4 message (RFC 2131). Options keep their order of
// first appearance; repeated options are concatenated (RFC 3396).
type dhcpMsg struct {
	Op     byte
	Xid    uint32
	Secs   uint16
	Flags  uint16 // 0x8000: ask the server to broadcast its reply
	CIAddr netip.Addr
	YIAddr netip.Addr
	SIAddr netip.Addr
	GIAddr netip.Addr
	CHAddr net.HardwareAddr // 6 bytes (Ethernet)
	Opts   []dhcpOpt
}

type dhcpOpt struct {
	Code byte
	Data []byte
}

func (m *dhcpMsg) opt(code byte) []byte {
	for _, o := range m.Opts {
		if o.Code == code {
			return o.Data
		}
	}
	return nil
}

func (m *dhcpMsg) setOpt(code byte, data []byte) {
	for i, o := range m.Opts {
		if o.Code == code {
			m.Opts[i].Data = data
			return
		}
	}
	m.Opts = append(m.Opts, dhcpOpt{code, data})
}

// msgType is option 53, 0 when absent or malformed.
func (m *dhcpMsg) msgType() byte {
	if d := m.opt(optMsgType); len(d) == 1 {
		return d[0]
	}
	return 0
}

func (m *dhcpMsg) optAddr(code byte) netip.Addr {
	if d := m.opt(code); len(d) >= 4 {
		return netip.AddrFrom4([4]byte(d[:4]))
	}
	return netip.Addr{}
}

func (m *dhcpMsg) optAddrs(code byte) []netip.Addr {
	d := m.opt(code)
	var out []netip.Addr
	for ; len(d) >= 4; d = d[4:] {
		out = append(out, netip.AddrFrom4([4]byte(d[:4])))
	}
	return out
}

func (m *dhcpMsg) optUint32(code byte) (uint32, bool) {
	if d := m.opt(code); len(d) == 4 {
		return binary.BigEndian.Uint32(d), true
	}
	return 0, false
}

func addr4(a netip.Addr) [4]byte {
	if a.Is4() {
		return a.As4()
	}
	return [4]byte{}
}

// marshal encodes the message, options split into 255-byte pieces, padded
// to the BOOTP minimum.
func (m *dhcpMsg) marshal() ([]byte, error) {
	b := make([]byte, dhcpHdrLen, dhcpMinLen)
	b[0] = m.Op
	b[1] = 1 // htype Ethernet
	b[2] = 6 // hlen
	binary.BigEndian.PutUint32(b[4:], m.Xid)
	binary.BigEndian.PutUint16(b[8:], m.Secs)
	binary.BigEndian.PutUint16(b[10:], m.Flags)
	for i, a := range []netip.Addr{m.CIAddr, m.YIAddr, m.SIAddr, m.GIAddr} {
		v := addr4(a)
		copy(b[12+4*i:], v[:])
	}
	if len(m.CHAddr) != 6 {
		return nil, fmt.Errorf("dhcp: chaddr must be 6 bytes, not %d", len(m.CHAddr))
	}
	copy(b[28:], m.CHAddr)
	b = append(b, dhcpMagic[:]...)
	for _, o := range m.Opts {
		if o.Code == optPad || o.Code == optEnd {
			continue
		}
		d := o.Data
		for first := true; first || len(d) > 0; first = false {
			n := min(len(d), 255)
			b = append(b, o.Code, byte(n))
			b = append(b, d[:n]...)
			d = d[n:]
		}
	}
	b = append(b, optEnd)
	for len(b) < dhcpMinLen {
		b = append(b, optPad)
	}
	if len(b) > dhcpMaxLen {
		return nil, fmt.Errorf("dhcp: message of %d bytes is too long", len(b))
	}
	return b, nil
}

var errDHCPShort = errors.New("dhcp: message too short")

// parseDHCP decodes a DHCPv4 message. It rejects what cannot be a valid
// message (short, wrong cookie, non-Ethernet hardware, truncated options)
// and never panics on hostile input.
func parseDHCP(b []byte) (*dhcpMsg, error) {
	if len(b) < dhcpHdrLen+4 {
		return nil, errDHCPShort
	}
	if len(b) > dhcpMaxLen+512 {
		return nil, fmt.Errorf("dhcp: message of %d bytes is too long", len(b))
	}
	if b[1] != 1 || b[2] != 6 {
		return nil, fmt.Errorf("dhcp: hardware type %d length %d, want Ethernet", b[1], b[2])
	}
	if [4]byte(b[dhcpHdrLen:dhcpHdrLen+4]) != dhcpMagic {
		return nil, errors.New("dhcp: no magic cookie (BOOTP, not DHCP)")
	}
	m := &dhcpMsg{
		Op:     b[0],
		Xid:    binary.BigEndian.Uint32(b[4:]),
		Secs:   binary.BigEndian.Uint16(b[8:]),
		Flags:  binary.BigEndian.Uint16(b[10:]),
		CIAddr: netip.AddrFrom4([4]byte(b[12:16])),
		YIAddr: netip.AddrFrom4([4]byte(b[16:20])),
		SIAddr: netip.AddrFrom4([4]byte(b[20:24])),
		GIAddr: netip.AddrFrom4([4]byte(b[24:28])),
		CHAddr: net.HardwareAddr(append([]byte(nil), b[28:34]...)),
	}
	idx := map[byte]int{}
	o := b[dhcpHdrLen+4:]
	for len(o) > 0 {
		code := o[0]
		if code == optPad {
			o = o[1:]
			continue
		}
		if code == optEnd {
			break
		}
		if len(o) < 2 || len(o) < 2+int(o[1]) {
			return nil, fmt.Errorf("dhcp: option %d truncated", code)
		}
		data := o[2 : 2+int(o[1])]
		o = o[2+int(o[1]):]
		if i, ok := idx[code]; ok {
			m.Opts[i].Data = append(m.Opts[i].Data, data...)
			continue
		}
		idx[code] = len(m.Opts)
		m.Opts = append(m.Opts, dhcpOpt{code, append([]byte(nil), data...)})
	}
	return m, nil
}
