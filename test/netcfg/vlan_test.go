package netcfg_test

import (
	"strings"
	"testing"
)

// needKind skips when the kernel cannot create links of a kind (this
// machine's kernel has no 8021q or ipvlan, for example).
func needKind(t *testing.T, r *router, kind string, args ...string) {
	t.Helper()
	probe := "probe" + kind
	if len(probe) > 15 {
		probe = probe[:15]
	}
	cmd := append([]string{"ip", "-n", r.ns, "link", "add", "link", "lan1", "name", probe, "type", kind}, args...)
	if err := try(cmd...); err != nil {
		t.Skipf("kernel cannot create %s links here (%v): test skipped", kind, err)
	}
	sh(t, "ip", "-n", r.ns, "link", "del", probe)
}

func TestVLANOnDemand(t *testing.T) {
	need(t)
	r := newRouter(t)
	needKind(t, r, "vlan", "id", "4000")
	// Behind lan2: a host on VLAN 10 and another one on VLAN 20, in the
	// same subnet. They must be two machines (namespaces): one namespace
	// with both addresses answers for either on any interface (Linux's
	// weak host model, arp_ignore=0), which made VLAN 20 "reachable"
	// from VLAN 10 on every kernel with 8021q.
	h, h20 := r.hosts["lan2"], newNS(t, "lan2v20")
	sh(t, "ip", "-n", h, "link", "add", "link", "eth0", "name", "eth0.10", "type", "vlan", "id", "10")
	sh(t, "ip", "-n", h, "link", "add", "link", "eth0", "name", "eth0.20", "netns", h20, "type", "vlan", "id", "20")
	sh(t, "ip", "-n", h, "link", "set", "eth0.10", "up")
	sh(t, "ip", "-n", h20, "link", "set", "eth0.20", "up")
	sh(t, "ip", "-n", h, "addr", "add", "10.10.0.1/24", "dev", "eth0.10")
	sh(t, "ip", "-n", h20, "addr", "add", "10.10.0.9/24", "dev", "eth0.20") // same subnet, other VLAN
	a, b := newContainer(t, "va"), newContainer(t, "vb")
	if _, err := r.attach(t, a, "macvlan:lan2.10", []string{"10.10.0.5/24"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.attach(t, b, "macvlan:lan2.10", []string{"10.10.0.6/24"}); err != nil {
		t.Fatal(err)
	}
	if d := sh(t, "ip", "-n", r.ns, "-d", "link", "show", "lan2.10"); !strings.Contains(d, "vlan protocol 802.1Q id 10") || !strings.Contains(d, "alias otok:+vlan") {
		t.Errorf("lan2.10: %s", d)
	}
	if err := pingOK(a.ns, "10.10.0.1"); err != nil {
		t.Errorf("VLAN 10 host unreachable: %v", err)
	}
	if err := pingOK(a.ns, "10.10.0.9"); err == nil {
		t.Error("VLAN 20 host reachable from VLAN 10")
	}
	// The VLAN 20 host is there: a container on lan2.20 reaches it (and
	// not the VLAN 10 one).
	c := newContainer(t, "vc")
	if _, err := r.attach(t, c, "macvlan:lan2.20", []string{"10.10.0.7/24"}); err != nil {
		t.Fatal(err)
	}
	if err := pingOK(c.ns, "10.10.0.9"); err != nil {
		t.Errorf("VLAN 20 host unreachable from VLAN 20: %v", err)
	}
	if err := pingOK(c.ns, "10.10.0.1"); err == nil {
		t.Error("VLAN 10 host reachable from VLAN 20")
	}
	r.detach(t, c)
	r.detach(t, a)
	if !strings.Contains(links(t, r.ns), "lan2.10") {
		t.Error("lan2.10 removed while vb still uses it")
	}
	r.detach(t, b)
	if strings.Contains(links(t, r.ns), "lan2.10") {
		t.Error("lan2.10 left after its last user")
	}
}

func TestVLANNotOwnedIsKept(t *testing.T) {
	need(t)
	r := newRouter(t)
	needKind(t, r, "vlan", "id", "4000")
	sh(t, "ip", "-n", r.ns, "link", "add", "link", "lan2", "name", "lan2.30", "type", "vlan", "id", "30")
	sh(t, "ip", "-n", r.ns, "link", "set", "lan2.30", "up")
	c := newContainer(t, "v30")
	if _, err := r.attach(t, c, "macvlan:lan2.30", nil); err != nil {
		t.Fatal(err)
	}
	r.detach(t, c)
	if !strings.Contains(links(t, r.ns), "lan2.30") {
		t.Error("removed a VLAN otok did not create")
	}
}

func TestIPvlan(t *testing.T) {
	need(t)
	r := newRouter(t)
	needKind(t, r, "ipvlan", "mode", "l2")
	sh(t, "ip", "-n", r.hosts["lan1"], "addr", "add", "10.1.0.1/24", "dev", "eth0")
	c := newContainer(t, "iv")
	rec, err := r.attach(t, c, "ipvlan:lan1", []string{"10.1.0.30/24"})
	if err != nil {
		t.Fatal(err)
	}
	if port := sh(t, "ip", "-n", r.ns, "-o", "link", "show", "lan1"); !strings.Contains(port, rec.MAC) {
		t.Errorf("ipvlan MAC %s is not the port's: %s", rec.MAC, port)
	}
	if err := pingOK(c.ns, "10.1.0.1"); err != nil {
		t.Errorf("host behind lan1 unreachable: %v", err)
	}
}
