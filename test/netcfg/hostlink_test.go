package netcfg_test

import (
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

// The router has a link named like the container's interface (eth0: every
// guest and most routers have one). The container's macvlan/ipvlan must
// still be created as eth0 inside the container — RTM_NEWLINK looks the
// name up in the host namespace first, so creating it under its final name
// failed with EEXIST — and the host's eth0 must be left alone, with no
// temporary link behind on the host.
func TestContainerLinkNamedLikeHostLink(t *testing.T) {
	rtr, h := nlRouter(t)
	la := netlink.NewLinkAttrs()
	la.Name = "eth0"
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eth0p"}); err != nil {
		t.Fatal(err)
	}
	hostEth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	port, _ := h.LinkByName("lan2")
	kinds := []struct{ name, net, kind string }{
		{"mvh", "macvlan:lan2", "macvlan"},
		{"mve", "macvlan:eth0", "macvlan"}, // the parent is the host's eth0 itself
		{"ivh", "ipvlan:eth0p", "ipvlan"},
	}
	state := t.TempDir()
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			if k.kind == "ipvlan" {
				la := netlink.NewLinkAttrs()
				la.Name, la.ParentIndex = "probeipvlan", port.Attrs().Index
				needLinkKind(t, h, &netlink.IPVlan{LinkAttrs: la, Mode: netlink.IPVLAN_MODE_L2})
			}
			rec, err := nlAttach(t, rtr, state, k.name, k.net)
			if err != nil {
				t.Fatalf("attach %s with a host eth0: %v", k.net, err)
			}
			cl, err := nlHandle(t, rec.NetNS).LinkByName("eth0")
			if err != nil {
				t.Fatalf("container has no eth0: %v", err)
			}
			if cl.Type() != k.kind || cl.Attrs().Alias != "otok:"+k.name {
				t.Errorf("container eth0 is %s alias %q, want %s otok:%s", cl.Type(), cl.Attrs().Alias, k.kind, k.name)
			}
		})
	}
	l, err := h.LinkByName("eth0")
	if err != nil || l.Attrs().Index != hostEth0.Attrs().Index || l.Type() != "veth" {
		t.Errorf("host eth0 changed: %v %v", l, err)
	}
	all, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range all {
		if strings.HasPrefix(l.Attrs().Name, "otn") {
			t.Errorf("temporary link %s left on the host", l.Attrs().Name)
		}
	}
}
