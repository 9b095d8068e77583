package netcfg

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// OtokSubnet is the otok0 bridge's IPv4 network: the bridge holds the
// first address, containers get the next free ones, and traffic leaving
// it is masqueraded (nat.go).
var OtokSubnet = netip.MustParsePrefix("10.213.0.0/24")

// otokGateway is otok0's own address in OtokSubnet.
func otokGateway() netip.Prefix {
	return netip.PrefixFrom(OtokSubnet.Addr().Next(), OtokSubnet.Bits())
}

// isOtokBridge reports whether a bridge name means otok's own NAT bridge.
func isOtokBridge(name string) bool { return name == "" || name == OtokBridge }

// lookupBridge returns the existing bridge dev.
func lookupBridge(host *nsHandle, dev string) (netlink.Link, error) {
	l, err := host.h.LinkByName(dev)
	if err != nil {
		return nil, fmt.Errorf("bridge %s: %w", dev, err)
	}
	if l.Type() != "bridge" {
		return nil, fmt.Errorf("%s is a %s, not a bridge", dev, l.Type())
	}
	return l, nil
}

// ensureOtokBridge returns otok0, creating it (tagged otok:+bridge, with
// the gateway address, up) when missing, and makes sure the host forwards
// IPv4.
func ensureOtokBridge(host *nsHandle) (netlink.Link, error) {
	l, err := host.h.LinkByName(OtokBridge)
	if err == nil {
		if l.Type() != "bridge" {
			return nil, fmt.Errorf("%s exists and is a %s, not a bridge", OtokBridge, l.Type())
		}
	} else {
		if !errors.As(err, new(netlink.LinkNotFoundError)) {
			return nil, fmt.Errorf("bridge %s: %w", OtokBridge, err)
		}
		la := netlink.NewLinkAttrs()
		la.Name = OtokBridge
		if err := host.h.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
			return nil, fmt.Errorf("create bridge %s: %w", OtokBridge, err)
		}
		if l, err = host.h.LinkByName(OtokBridge); err != nil {
			return nil, fmt.Errorf("bridge %s: %w", OtokBridge, err)
		}
		if err := host.h.LinkSetAlias(l, tagBridge); err != nil {
			host.h.LinkDel(l)
			return nil, fmt.Errorf("bridge %s: set alias: %w", OtokBridge, err)
		}
	}
	addrs, err := host.h.AddrList(l, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("bridge %s: %w", OtokBridge, err)
	}
	if len(addrs) == 0 {
		if err := addAddr(host.h, l, otokGateway()); err != nil {
			return nil, fmt.Errorf("bridge %s: %w", OtokBridge, err)
		}
	}
	if err := host.h.LinkSetUp(l); err != nil {
		return nil, fmt.Errorf("bridge %s: set up: %w", OtokBridge, err)
	}
	if err := enableForwarding(host); err != nil {
		return nil, fmt.Errorf("bridge %s: %w", OtokBridge, err)
	}
	return l, nil
}

// removeOtokBridgeIfUnused deletes otok0 (if otok made it) when no record
// but except's uses it.
func removeOtokBridgeIfUnused(host *nsHandle, recs []*Record, except string) error {
	for _, r := range recs {
		if r.Container != except && r.Spec.Mode == ModeBridge && isOtokBridge(r.Spec.Bridge) && r.HostNS == host.path {
			return nil
		}
	}
	l, err := host.h.LinkByName(OtokBridge)
	if err != nil || l.Attrs().Alias != tagBridge {
		return nil
	}
	if err := host.h.LinkDel(l); err != nil {
		return fmt.Errorf("remove bridge %s: %w", OtokBridge, err)
	}
	return nil
}

// allocOtokAddr picks the lowest free address of OtokSubnet after the
// gateway, given the records of other containers.
func allocOtokAddr(recs []*Record, except string) (netip.Prefix, error) {
	used := map[netip.Addr]bool{}
	for _, r := range recs {
		if r.Container == except {
			continue
		}
		for _, a := range r.Addrs {
			used[a.Addr()] = true
		}
	}
	gw := otokGateway().Addr()
	for a := gw.Next(); OtokSubnet.Contains(a.Next()); a = a.Next() {
		if !used[a] {
			return netip.PrefixFrom(a, OtokSubnet.Bits()), nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("bridge %s: no free address left in %s", OtokBridge, OtokSubnet)
}
