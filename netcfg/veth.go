package netcfg

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
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
	err := host.h.LinkAdd(v)
	if errors.Is(err, unix.EEXIST) && removeStaleVeth(host, la.Name, container) {
		err = host.h.LinkAdd(v)
	}
	if err != nil {
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

// removeStaleVeth deletes the host end of an earlier incarnation of the
// container's veth, named as this one will be: left by a kill -9 between
// creating it and tagging it, or still there because the kernel tears a
// dead container's namespace (and the pair with it) down asynchronously.
// Only a veth that is untagged or tagged for this container is taken; it
// reports whether the name is free now.
func removeStaleVeth(host *nsHandle, name, container string) bool {
	old, err := host.h.LinkByName(name)
	if err != nil {
		return errors.As(err, &netlink.LinkNotFoundError{}) // gone meanwhile
	}
	if old.Type() != "veth" || (old.Attrs().Alias != "" && old.Attrs().Alias != tagFor(container)) {
		return false
	}
	if err := host.h.LinkDel(old); err != nil {
		return false
	}
	// The delete is synchronous, but a namespace being torn down may
	// still hold the name for a moment.
	for i := 0; i < 20; i++ {
		if _, err := host.h.LinkByName(name); err != nil {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}
