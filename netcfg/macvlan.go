package netcfg

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

var macvlanModes = map[string]netlink.MacvlanMode{
	"":         netlink.MACVLAN_MODE_BRIDGE,
	"bridge":   netlink.MACVLAN_MODE_BRIDGE,
	"private":  netlink.MACVLAN_MODE_PRIVATE,
	"vepa":     netlink.MACVLAN_MODE_VEPA,
	"passthru": netlink.MACVLAN_MODE_PASSTHRU,
}

// createMacvlan creates a macvlan on parent (host namespace) directly
// inside the container's namespace, named ifname there (addLinkInto), with
// the container's MAC.
// In passthru mode the kernel gives it the parent's MAC instead.
func createMacvlan(host, ctr *nsHandle, parent netlink.Link, ifname, mode string, mac net.HardwareAddr) error {
	la := netlink.NewLinkAttrs()
	la.ParentIndex = parent.Attrs().Index
	la.MTU = parent.Attrs().MTU
	if mode != "passthru" {
		la.HardwareAddr = mac
	}
	if err := addLinkInto(host, ctr, &netlink.Macvlan{LinkAttrs: la, Mode: macvlanModes[mode]}, ifname); err != nil {
		return fmt.Errorf("create macvlan on %s: %w", parent.Attrs().Name, err)
	}
	return nil
}
