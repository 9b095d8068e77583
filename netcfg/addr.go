package netcfg

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Addr is one --ip value: a static prefix with an optional gateway, or
// DHCP (IPv4, run by otok inside the container's namespace).
type Addr struct {
	DHCP    bool         `json:"dhcp,omitempty"`
	Prefix  netip.Prefix `json:"prefix,omitzero"`  // 192.168.1.50/24, fd00::5/64
	Gateway netip.Addr   `json:"gateway,omitzero"` // on-link router, same family
}

func (a Addr) String() string {
	if a.DHCP {
		return "dhcp"
	}
	s := a.Prefix.String()
	if a.Gateway.IsValid() {
		s += ",gw=" + a.Gateway.String()
	}
	return s
}

// ParseAddr parses an --ip value: "dhcp", or CIDR[,gw=IP].
func ParseAddr(s string) (Addr, error) {
	if s == "dhcp" {
		return Addr{DHCP: true}, nil
	}
	cidr, opts, _ := strings.Cut(s, ",")
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		if _, err2 := netip.ParseAddr(cidr); err2 == nil {
			return Addr{}, fmt.Errorf("address %s: no prefix length (e.g. %s/24)", s, cidr)
		}
		return Addr{}, fmt.Errorf("address %s: not CIDR or dhcp", s)
	}
	a := Addr{Prefix: p}
	ip := p.Addr()
	switch {
	case ip.Is4In6():
		return Addr{}, fmt.Errorf("address %s: IPv4-mapped IPv6 address", s)
	case ip.IsUnspecified(), ip.IsLoopback(), ip.IsMulticast():
		return Addr{}, fmt.Errorf("address %s: not a unicast host address", s)
	case ip.Is4() && p.Bits() < 31 && (ip == p.Masked().Addr() || ip == lastAddr(p)):
		return Addr{}, fmt.Errorf("address %s: network or broadcast address of %s", s, p.Masked())
	}
	if opts != "" {
		for _, o := range strings.Split(opts, ",") {
			k, v, _ := strings.Cut(o, "=")
			if k != "gw" {
				return Addr{}, fmt.Errorf("address %s: unknown option %q (gw=IP)", s, o)
			}
			gw, err := netip.ParseAddr(v)
			if err != nil || gw.Zone() != "" {
				return Addr{}, fmt.Errorf("address %s: bad gateway %q", s, v)
			}
			if gw.Is4() != ip.Is4() {
				return Addr{}, fmt.Errorf("address %s: gateway %s is not in the same family", s, gw)
			}
			if !p.Contains(gw) && !(gw.Is6() && gw.IsLinkLocalUnicast()) {
				return Addr{}, fmt.Errorf("address %s: gateway %s is not in %s", s, gw, p.Masked())
			}
			if gw == ip {
				return Addr{}, fmt.Errorf("address %s: gateway is the address itself", s)
			}
			a.Gateway = gw
		}
	}
	return a, nil
}

// lastAddr is the highest address of an IPv4 prefix (its broadcast).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(b)
}

// ParseDNS parses a --dns value: one IP address.
func ParseDNS(s string) (net.IP, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return nil, fmt.Errorf("dns %s: not an IP address", s)
	}
	return net.IP(a.AsSlice()), nil
}

// checkAddrs validates a set of --ip values together.
func checkAddrs(addrs []Addr) error {
	var dhcp int
	gw := map[bool]netip.Addr{}
	seen := map[netip.Addr]bool{}
	for _, a := range addrs {
		if a.DHCP {
			dhcp++
			continue
		}
		if seen[a.Prefix.Addr()] {
			return fmt.Errorf("address %s given twice", a.Prefix.Addr())
		}
		seen[a.Prefix.Addr()] = true
		if a.Gateway.IsValid() {
			v4 := a.Gateway.Is4()
			if g, ok := gw[v4]; ok && g != a.Gateway {
				return fmt.Errorf("two IPv%s gateways (%s, %s)", map[bool]string{true: "4", false: "6"}[v4], g, a.Gateway)
			}
			gw[v4] = a.Gateway
		}
	}
	if dhcp > 1 {
		return errors.New("--ip dhcp given twice")
	}
	if _, ok := gw[true]; ok && dhcp > 0 {
		return errors.New("--ip dhcp sets the IPv4 gateway; do not also give one")
	}
	return nil
}

// toIPNet converts a netip.Prefix to the *net.IPNet netlink wants, keeping
// the host part.
func toIPNet(p netip.Prefix) *net.IPNet {
	ip := p.Addr()
	bits := 32
	if ip.Is6() {
		bits = 128
	}
	return &net.IPNet{IP: net.IP(ip.AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}

// addAddr adds one address to a link; IPv6 addresses skip duplicate address
// detection (the container starts at once; conflicts are checked against
// otok's own records before).
func addAddr(h *netlink.Handle, l netlink.Link, p netip.Prefix) error {
	a := &netlink.Addr{IPNet: toIPNet(p)}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := h.AddrAdd(l, a); err != nil {
		return fmt.Errorf("add address %s: %w", p, err)
	}
	return nil
}

// addDefaultRoute adds a default route via gw on link l.
func addDefaultRoute(h *netlink.Handle, l netlink.Link, gw netip.Addr) error {
	dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	if gw.Is6() {
		dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: toIPNet(dst), Gw: net.IP(gw.AsSlice())}
	if err := h.RouteReplace(r); err != nil {
		return fmt.Errorf("add default route via %s: %w", gw, err)
	}
	return nil
}
