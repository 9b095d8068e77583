package netcfg

import (
	"fmt"

	"github.com/vishvananda/netlink"
)

// createIPvlan creates an ipvlan on parent directly inside the container's
// namespace, named ifname there (addLinkInto). It shares the parent's MAC
// (what 802.11 stations need: an access point accepts frames from one MAC
// per station) and tells
// containers apart by IP address; l3 mode routes instead of switching, so
// no broadcast, and no DHCP, reaches it.
func createIPvlan(host, ctr *nsHandle, parent netlink.Link, ifname, mode string) error {
	la := netlink.NewLinkAttrs()
	la.ParentIndex = parent.Attrs().Index
	la.MTU = parent.Attrs().MTU
	m := netlink.IPVLAN_MODE_L2
	if mode == "l3" {
		m = netlink.IPVLAN_MODE_L3
	}
	if err := addLinkInto(host, ctr, &netlink.IPVlan{LinkAttrs: la, Mode: m}, ifname); err != nil {
		return fmt.Errorf("create ipvlan on %s: %w", parent.Attrs().Name, err)
	}
	return nil
}
