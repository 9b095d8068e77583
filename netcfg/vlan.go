package netcfg

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/vishvananda/netlink"
)

// vlanName is the sub-interface name for VLAN vid on lower: "lan2.10" as
// OpenWrt and iproute2 name them, or "otkv" + a hash when that is longer
// than the kernel's 15 bytes.
func vlanName(lower string, vid int) string {
	n := lower + "." + strconv.Itoa(vid)
	if len(n) <= 15 {
		return n
	}
	sum := sha256.Sum256([]byte(n))
	return "otkv" + hex.EncodeToString(sum[:3]) + "." + strconv.Itoa(vid)
}

// ensureVLAN returns the VLAN vid sub-interface of lower, creating it
// (tagged otok:+vlan, up) when it does not exist. owned says otok created
// it now or earlier; a VLAN device someone else configured is used, never
// removed.
func ensureVLAN(host *nsHandle, lower netlink.Link, vid int) (l netlink.Link, owned bool, err error) {
	name := vlanName(lower.Attrs().Name, vid)
	if l, err := host.h.LinkByName(name); err == nil {
		v, ok := l.(*netlink.Vlan)
		if !ok || v.VlanId != vid || v.ParentIndex != lower.Attrs().Index {
			return nil, false, fmt.Errorf("link %s exists and is not VLAN %d of %s", name, vid, lower.Attrs().Name)
		}
		return l, l.Attrs().Alias == tagVLAN, nil
	} else if !errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil, false, fmt.Errorf("VLAN %s: %w", name, err)
	}
	la := netlink.NewLinkAttrs()
	la.Name = name
	la.ParentIndex = lower.Attrs().Index
	if err := host.h.LinkAdd(&netlink.Vlan{LinkAttrs: la, VlanId: vid}); err != nil {
		return nil, false, fmt.Errorf("create VLAN %s: %w", name, err)
	}
	l, err = host.h.LinkByName(name)
	if err == nil {
		err = host.h.LinkSetAlias(l, tagVLAN)
	}
	if err == nil {
		err = host.h.LinkSetUp(l)
	}
	if err != nil {
		if l != nil {
			host.h.LinkDel(l)
		}
		return nil, false, fmt.Errorf("VLAN %s: %w", name, err)
	}
	return l, true, nil
}

// removeVLANIfUnused deletes an otok-made VLAN sub-interface when no
// record other than except's uses it.
func removeVLANIfUnused(host *nsHandle, name string, recs []*Record, except string) error {
	for _, r := range recs {
		if r.Container != except && r.VLANLink == name && r.HostNS == host.path {
			return nil
		}
	}
	l, err := host.h.LinkByName(name)
	if err != nil {
		if errors.As(err, new(netlink.LinkNotFoundError)) {
			return nil
		}
		return err
	}
	if l.Attrs().Alias != tagVLAN {
		return nil
	}
	if err := host.h.LinkDel(l); err != nil {
		return fmt.Errorf("remove VLAN %s: %w", name, err)
	}
	return nil
}
