package netcfg

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// dhcpConn sends and receives DHCP messages on one interface. Before the
// client has an address it uses a packet socket (AF_PACKET, cooked: the
// kernel adds the Ethernet header, we write IP and UDP): the only way to
// send from 0.0.0.0 and to hear replies addressed to an address the
// interface does not have yet. With a lease, a UDP socket bound to
// address:68 renews, rebinds and releases. Sockets are created inside
// the container's namespace and keep it; reads and writes then work from
// any thread.
type dhcpConn struct {
	fd      int
	raw     bool
	ifindex int
	src     netip.Addr // raw: IP source address (0.0.0.0 before a lease)
}

const (
	dhcpServerPort = 67
	dhcpClientPort = 68
)

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// openRawDHCP opens a packet socket on ifindex inside ns.
func openRawDHCP(ns netns.NsHandle, ifindex int) (*dhcpConn, error) {
	var fd int
	err := inNS(ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifindex}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind packet socket: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &dhcpConn{fd: fd, raw: true, ifindex: ifindex, src: netip.IPv4Unspecified()}, nil
}

// openUDPDHCP opens a UDP socket bound to local:68 on ifname inside ns.
func openUDPDHCP(ns netns.NsHandle, ifname string, local netip.Addr) (*dhcpConn, error) {
	var fd int
	err := inNS(ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
		if err != nil {
			return fmt.Errorf("udp socket: %w", err)
		}
		for _, o := range []int{unix.SO_REUSEADDR, unix.SO_BROADCAST} {
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, o, 1)
		}
		if err := unix.BindToDevice(fd, ifname); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind to %s: %w", ifname, err)
		}
		// Bound to 0.0.0.0: replies to a rebind may be broadcast.
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: dhcpClientPort}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind udp :68: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &dhcpConn{fd: fd, src: local}, nil
}

func (c *dhcpConn) Close() error { return unix.Close(c.fd) }

// send sends payload to dst:67 (255.255.255.255 for broadcast).
func (c *dhcpConn) send(payload []byte, dst netip.Addr) error {
	if !c.raw {
		return unix.Sendto(c.fd, payload, 0, &unix.SockaddrInet4{Port: dhcpServerPort, Addr: dst.As4()})
	}
	pkt := buildUDP4(c.src, dst, dhcpClientPort, dhcpServerPort, payload)
	ll := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: c.ifindex, Halen: 6,
		Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	return unix.Sendto(c.fd, pkt, 0, ll)
}

// recv returns the next DHCP payload that arrives before deadline.
func (c *dhcpConn) recv(ctx context.Context, deadline time.Time) ([]byte, error) {
	buf := make([]byte, 2048)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return nil, errTimeout
		}
		// Wake at least every 200 ms to notice a cancelled context.
		ms := int(min(wait, 200*time.Millisecond)/time.Millisecond) + 1
		fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if errors.Is(err, unix.EINTR) || n == 0 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("poll: %w", err)
		}
		n, _, err = unix.Recvfrom(c.fd, buf, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("receive: %w", err)
		}
		if !c.raw {
			return append([]byte(nil), buf[:n]...), nil
		}
		if p, ok := parseUDP4(buf[:n], dhcpClientPort); ok {
			return append([]byte(nil), p...), nil
		}
	}
}

var errTimeout = errors.New("no answer")

// buildUDP4 makes an IPv4+UDP packet (UDP checksum computed).
func buildUDP4(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	p := make([]byte, 28+len(payload))
	p[0] = 0x45
	p[1] = 0x10 // low delay, as DHCP clients do
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[8] = 64
	p[9] = unix.IPPROTO_UDP
	s, d := src.As4(), dst.As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	binary.BigEndian.PutUint16(p[10:], ^csum(0, p[:20]))
	u := p[20:]
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	pseudo := make([]byte, 12)
	copy(pseudo[0:4], s[:])
	copy(pseudo[4:8], d[:])
	pseudo[9] = unix.IPPROTO_UDP
	binary.BigEndian.PutUint16(pseudo[10:], uint16(8+len(payload)))
	c := ^csum(uint32(csum(0, pseudo)), u)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(u[6:], c)
	return p
}

// parseUDP4 returns the UDP payload of an IPv4 packet to dport.
func parseUDP4(p []byte, dport uint16) ([]byte, bool) {
	if len(p) < 20 || p[0]>>4 != 4 || p[9] != unix.IPPROTO_UDP {
		return nil, false
	}
	ihl := int(p[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(p[2:]))
	if ihl < 20 || total < ihl+8 || total > len(p) {
		return nil, false
	}
	if binary.BigEndian.Uint16(p[6:])&0x3fff != 0 { // fragment
		return nil, false
	}
	u := p[ihl:total]
	ulen := int(binary.BigEndian.Uint16(u[4:]))
	if binary.BigEndian.Uint16(u[2:]) != dport || ulen < 8 || ulen > len(u) {
		return nil, false
	}
	return u[8:ulen], true
}

func csum(sum uint32, b []byte) uint16 {
	for ; len(b) >= 2; b = b[2:] {
		sum += uint32(b[0])<<8 | uint32(b[1])
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}
