package netcfg_test

import (
	"context"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otok/otok/netcfg"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// dnsmasq starts a DHCP server on eth0 of namespace ns, stopped (by pid)
// at cleanup. It returns the lease file.
func dnsmasq(t *testing.T, ns string) string {
	t.Helper()
	if _, err := exec.LookPath("dnsmasq"); err != nil {
		t.Skip("needs dnsmasq (apt-get install dnsmasq-base; test/deps.sh)")
	}
	dir := t.TempDir()
	leases := filepath.Join(dir, "leases")
	cmd := exec.Command("ip", "netns", "exec", ns, "dnsmasq", "--no-daemon", "--conf-file=/dev/null",
		"--port=0", "--interface=eth0", "--bind-interfaces", "--user=root", "--pid-file="+filepath.Join(dir, "pid"),
		"--dhcp-range=203.0.113.100,203.0.113.150,255.255.255.0,2m",
		"--dhcp-option=option:router,203.0.113.1", "--dhcp-option=option:dns-server,203.0.113.53",
		"--dhcp-option=option:domain-name,example.net",
		"--dhcp-leasefile="+leases, "--dhcp-authoritative", "--log-dhcp", "--log-facility="+filepath.Join(dir, "log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("dnsmasq log:\n%s", readFileOr(filepath.Join(dir, "log")))
		}
	})
	time.Sleep(200 * time.Millisecond)
	return leases
}

func readFileOr(p string) string {
	out, _ := exec.Command("cat", p).Output()
	return string(out)
}

func TestDHCPLeaseRenewRelease(t *testing.T) {
	need(t)
	r := newRouter(t)
	leases := dnsmasq(t, r.hosts["wan"])
	c := newContainer(t, "dns")
	rec, err := r.attach(t, c, "macvlan:wan", []string{"dhcp"})
	if err != nil {
		t.Fatal(err)
	}
	l := rec.Lease
	if l == nil || !netip.MustParsePrefix("203.0.113.0/24").Contains(l.Addr.Addr()) || l.Addr.Bits() != 24 {
		t.Fatalf("lease = %+v", l)
	}
	if l.Router.String() != "203.0.113.1" || l.Server.String() != "203.0.113.1" || l.Duration != 2*time.Minute || l.Domain != "example.net" {
		t.Errorf("lease = %+v", l)
	}
	if got := sh(t, "ip", "-n", c.ns, "-4", "-o", "addr", "show", "eth0"); !strings.Contains(got, l.Addr.String()) {
		t.Errorf("eth0 lacks %s: %s", l.Addr, got)
	}
	if got := sh(t, "ip", "-n", c.ns, "route", "show", "default"); !strings.Contains(got, "via 203.0.113.1") {
		t.Errorf("default route: %s", got)
	}
	if err := pingOK(c.ns, "203.0.113.1"); err != nil {
		t.Errorf("cannot reach the DHCP server: %v", err)
	}
	if rc := readFile(t, etc(c, "resolv.conf")); !strings.Contains(rc, "nameserver 203.0.113.53") || !strings.Contains(rc, "search example.net") {
		t.Errorf("resolv.conf = %q", rc)
	}
	if f := readFile(t, leases); !strings.Contains(f, rec.MAC) {
		t.Errorf("server has no lease for %s: %q", rec.MAC, f)
	}

	// Renew (unicast) and rebind (broadcast) with a client on the same link.
	ns, err := netns.GetFromPath(nsPath(c.ns))
	if err != nil {
		t.Fatal(err)
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatal(err)
	}
	link, err := h.LinkByName("eth0")
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
	mac := link.Attrs().HardwareAddr
	cl := &netcfg.DHCPClient{NS: ns, IfName: "eth0", IfIndex: link.Attrs().Index, MAC: mac,
		ClientID: append([]byte{1}, mac...), Lease: l}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	time.Sleep(1100 * time.Millisecond) // dnsmasq counts expiry in seconds
	nl, err := cl.Renew(ctx)
	if err != nil {
		t.Fatalf("renew: %v", err)
	}
	if nl.Addr != l.Addr || !nl.Acquired.After(l.Acquired) {
		t.Errorf("renewed lease %+v, was %+v", nl, l)
	}
	if _, err := cl.Rebind(ctx); err != nil {
		t.Fatalf("rebind: %v", err)
	}
	ns.Close()

	// Detach releases: the server forgets the lease.
	r.detach(t, c)
	deadline := time.Now().Add(5 * time.Second)
	for strings.Contains(readFile(t, leases), rec.MAC) {
		if time.Now().After(deadline) {
			t.Fatalf("lease of %s still on the server after release: %q", rec.MAC, readFile(t, leases))
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Restart: same name, same MAC, same address.
	sh(t, "ip", "netns", "del", c.ns)
	c2 := newContainer(t, "dns")
	rec2, err := r.attach(t, c2, "macvlan:wan", []string{"dhcp"})
	if err != nil {
		t.Fatal(err)
	}
	if rec2.MAC != rec.MAC || rec2.Lease.Addr != l.Addr {
		t.Errorf("after restart: MAC %s address %s, before %s %s", rec2.MAC, rec2.Lease.Addr, rec.MAC, l.Addr)
	}
}

func TestDHCPNoServer(t *testing.T) {
	need(t)
	r := newRouter(t)
	c := newContainer(t, "lonely")
	start := time.Now()
	_, err := r.attach(t, c, "macvlan:lan2", []string{"dhcp"}, func(cfg *netcfg.Config) { cfg.DHCPWait = 3 * time.Second })
	if err == nil || !strings.Contains(err.Error(), "no DHCP server answered") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("took %v with a 3 s limit", d)
	}
	if l := links(t, c.ns); strings.Contains(l, "eth0") {
		t.Errorf("eth0 left in the container after a failed attach:\n%s", l)
	}
	if recs, _ := netcfg.Records(r.state); len(recs) != 0 {
		t.Errorf("records left: %+v", recs)
	}
}
