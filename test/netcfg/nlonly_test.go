package netcfg_test

// Tests that build their topology with netlink alone (no iproute2), so they
// also run in the qemu-system guests, whose Debian kernels have the 8021q
// and ipvlan modules this machine's kernel lacks. They check what netcfg
// makes, not reachability.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/otok/otok/netcfg"
	"github.com/otok/otok/test/testenv"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// nlNS creates a network namespace bound to a file (like ip netns add,
// without ip) and returns its path; it is unmounted at cleanup.
func nlNS(t *testing.T) string {
	t.Helper()
	testenv.NeedRoot(t)
	p := filepath.Join(t.TempDir(), "netns")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with its namespace
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		errc <- unix.Mount(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), p, "", unix.MS_BIND, "")
	}()
	if err := <-errc; err != nil {
		t.Skipf("cannot make a network namespace here: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(p, unix.MNT_DETACH) })
	return p
}

// nlHandle opens a NETLINK_ROUTE handle in the namespace at path.
func nlHandle(t *testing.T, path string) *netlink.Handle {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// nlRouter is a namespace with an up veth port "lan2" (peer "lan2p").
func nlRouter(t *testing.T) (string, *netlink.Handle) {
	t.Helper()
	p := nlNS(t)
	h := nlHandle(t, p)
	la := netlink.NewLinkAttrs()
	la.Name = "lan2"
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "lan2p"}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"lan2", "lan2p"} {
		l, err := h.LinkByName(n)
		if err != nil {
			t.Fatal(err)
		}
		h.LinkSetUp(l)
	}
	return p, h
}

func nlAttach(t *testing.T, rtr, state, name, net string) (*netcfg.Record, error) {
	t.Helper()
	sp, err := netcfg.ParseNet(net)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := netcfg.Attach(context.Background(), netcfg.Config{Container: name, Spec: sp, NetNS: nlNS(t), HostNS: rtr,
		StateDir: state, DeviceID: "test"})
	if err == nil {
		t.Cleanup(func() { netcfg.Detach(context.Background(), state, name) })
	}
	return rec, err
}

// needLinkKind skips when the kernel cannot make a link of that kind.
func needLinkKind(t *testing.T, h *netlink.Handle, l netlink.Link) {
	t.Helper()
	if err := h.LinkAdd(l); err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || strings.Contains(err.Error(), "not supported") {
			t.Skipf("kernel cannot create %s links here (%v): test skipped", l.Type(), err)
		}
		t.Fatal(err)
	}
	h.LinkDel(l)
}

func TestVLANOnDemandNetlink(t *testing.T) {
	rtr, h := nlRouter(t)
	port, _ := h.LinkByName("lan2")
	la := netlink.NewLinkAttrs()
	la.Name, la.ParentIndex = "probe.4000", port.Attrs().Index
	needLinkKind(t, h, &netlink.Vlan{LinkAttrs: la, VlanId: 4000})
	state := t.TempDir()
	if _, err := nlAttach(t, rtr, state, "va", "macvlan:lan2.10"); err != nil {
		t.Fatal(err)
	}
	if _, err := nlAttach(t, rtr, state, "vb", "macvlan:lan2.10"); err != nil {
		t.Fatal(err)
	}
	l, err := h.LinkByName("lan2.10")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := l.(*netlink.Vlan); !ok || v.VlanId != 10 || v.ParentIndex != port.Attrs().Index || l.Attrs().Alias != "otok:+vlan" {
		t.Errorf("lan2.10 = %#v", l)
	}
	netcfg.Detach(context.Background(), state, "va")
	if _, err := h.LinkByName("lan2.10"); err != nil {
		t.Error("lan2.10 removed while vb still uses it")
	}
	netcfg.Detach(context.Background(), state, "vb")
	if _, err := h.LinkByName("lan2.10"); err == nil {
		t.Error("lan2.10 left after its last user")
	}
	// A VLAN device otok did not make is used and kept.
	la = netlink.NewLinkAttrs()
	la.Name, la.ParentIndex = "lan2.30", port.Attrs().Index
	if err := h.LinkAdd(&netlink.Vlan{LinkAttrs: la, VlanId: 30}); err != nil {
		t.Fatal(err)
	}
	if _, err := nlAttach(t, rtr, state, "v30", "macvlan:lan2.30"); err != nil {
		t.Fatal(err)
	}
	netcfg.Detach(context.Background(), state, "v30")
	if _, err := h.LinkByName("lan2.30"); err != nil {
		t.Error("removed a VLAN otok did not create")
	}
}

func TestIPvlanNetlink(t *testing.T) {
	rtr, h := nlRouter(t)
	port, _ := h.LinkByName("lan2")
	la := netlink.NewLinkAttrs()
	la.Name, la.ParentIndex = "probeipvlan", port.Attrs().Index
	needLinkKind(t, h, &netlink.IPVlan{LinkAttrs: la, Mode: netlink.IPVLAN_MODE_L2})
	state := t.TempDir()
	rec, err := nlAttach(t, rtr, state, "iv", "ipvlan:lan2")
	if err != nil {
		t.Fatal(err)
	}
	if rec.MAC != port.Attrs().HardwareAddr.String() {
		t.Errorf("ipvlan MAC %s, port has %s", rec.MAC, port.Attrs().HardwareAddr)
	}
	cl, err := nlHandle(t, rec.NetNS).LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if cl.Type() != "ipvlan" || cl.Attrs().Alias != "otok:iv" {
		t.Errorf("container link %s alias %q", cl.Type(), cl.Attrs().Alias)
	}
	// macvlan and ipvlan cannot share a port.
	if _, err := nlAttach(t, rtr, state, "mv", "macvlan:lan2"); err == nil || !strings.Contains(err.Error(), "macvlan and ipvlan cannot share a port") {
		t.Errorf("macvlan next to ipvlan: %v", err)
	}
}
