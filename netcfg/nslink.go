package netcfg

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// tempLinkName is a name for a link on its way into a container's
// namespace: "otn" and eight random hex digits.
func tempLinkName() string {
	var b [4]byte
	rand.Read(b[:])
	return "otn" + hex.EncodeToString(b[:])
}

// addLinkInto creates link (a macvlan or ipvlan on a host parent) inside
// the container's namespace and names it ifname there.
//
// It cannot be created under its final name: RTM_NEWLINK with
// NLM_F_CREATE|NLM_F_EXCL looks the name up in the sender's (host)
// namespace before it honours IFLA_NET_NS_FD, so "eth0" fails with EEXIST
// on every router that has an eth0 of its own. The link is created with a
// unique temporary name directly in the container's namespace (it never
// exists on the host, so a crash leaves nothing there) and renamed inside,
// where the name is free; if the rename fails the link is deleted.
func addLinkInto(host, ctr *nsHandle, link netlink.Link, ifname string) error {
	la := link.Attrs()
	la.Namespace = ctr.fd()
	var err error
	for try := 0; try < 3; try++ {
		la.Name = tempLinkName()
		la.Index = 0
		if err = host.h.LinkAdd(link); !errors.Is(err, unix.EEXIST) {
			break // a host link with the random name: pick another
		}
	}
	if err != nil {
		return err
	}
	tmp := la.Name
	l, err := ctr.h.LinkByName(tmp)
	if err != nil {
		return fmt.Errorf("%s (to be %s) not found in the container's namespace: %w", tmp, ifname, err)
	}
	if err := ctr.h.LinkSetName(l, ifname); err != nil {
		ctr.h.LinkDel(l)
		return fmt.Errorf("rename %s to %s in the container's namespace: %w", tmp, ifname, err)
	}
	la.Name = ifname
	return nil
}
