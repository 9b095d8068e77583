package netcfg

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// hostVethName is the host end of a container's veth pair: "otk" and eight
// hex digits of the container name's hash (link names are 15 bytes at
// most; container names are longer).
func hostVethName(container string) string {
	sum := sha256.Sum256([]byte(container))
	return "otk" + hex.EncodeToString(sum[:4])
}

// createVeth makes a veth pair whose host end (tagged, enslaved to br, up)
// stays in the host namespace and whose peer is created directly inside
// the container's namespace as ifname — it never appears on the host, and
// the pair dies with the container's namespace.
func createVeth(host, ctr *nsHandle, container, ifname string, br netlink.Link, mac net.HardwareAddr) (netlink.Link, error) {
	la := netlink.NewLinkAttrs()
	la.Name = hostVethName(container)
	la.MTU = br.Attrs().MTU
	v := &netlink.Veth{LinkAttrs: la, PeerName: ifname, PeerHardwareAddr: mac, PeerNamespace: ctr.fd()}
	if err := host.h.LinkAdd(v); err != nil {
		return nil, fmt.Errorf("create veth %s: %w", la.Name, err)
	}
	l, err := host.h.LinkByName(la.Name)
	if err != nil {
		return nil, fmt.Errorf("veth %s: %w", la.Name, err)
	}
	fail := func(err error) (netlink.Link, error) {
		host.h.LinkDel(l)
		return nil, err
	}
	if err := host.h.LinkSetAlias(l, tagFor(container)); err != nil {
		return fail(fmt.Errorf("veth %s: set alias: %w", la.Name, err))
	}
	if err := host.h.LinkSetMaster(l, br); err != nil {
		return fail(fmt.Errorf("veth %s: join bridge %s: %w", la.Name, br.Attrs().Name, err))
	}
	if err := host.h.LinkSetUp(l); err != nil {
		return fail(fmt.Errorf("veth %s: set up: %w", la.Name, err))
	}
	return l, nil
}
