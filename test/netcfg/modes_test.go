package netcfg_test

import (
	"strings"
	"testing"
)

func TestBridgeStatic(t *testing.T) {
	need(t)
	r := newRouter(t)
	c := newContainer(t, "web")
	sh(t, "ip", "-n", r.hosts["lan3"], "addr", "add", "fd00:1::10/64", "dev", "eth0", "nodad")
	rec, err := r.attach(t, c, "bridge:lan", []string{"192.168.1.50/24,gw=192.168.1.1", "fd00:1::50/64"})
	if err != nil {
		t.Fatal(err)
	}
	if err := try(in(r.hosts["lan3"], "busybox", "ping", "-6", "-c", "1", "-W", "2", "fd00:1::50")...); err != nil {
		t.Errorf("LAN host cannot reach the container over IPv6: %v", err)
	}
	if err := pingOK(r.hosts["lan3"], "192.168.1.50"); err != nil {
		t.Fatalf("LAN host cannot reach the container: %v", err)
	}
	if err := pingOK(c.ns, "192.168.1.1"); err != nil {
		t.Fatalf("container cannot reach the router: %v", err)
	}
	l := links(t, r.ns)
	if !strings.Contains(l, rec.HostLink) || !strings.Contains(l, "master br-lan") || !strings.Contains(sh(t, "ip", "-n", r.ns, "-d", "link", "show", rec.HostLink), "alias otok:web") {
		t.Errorf("host veth %s not tagged in br-lan:\n%s", rec.HostLink, l)
	}
	if got := sh(t, "ip", "-n", c.ns, "-o", "link", "show", "eth0"); !strings.Contains(got, rec.MAC) {
		t.Errorf("container eth0 does not have MAC %s: %s", rec.MAC, got)
	}
	if h := readFile(t, etc(c, "hosts")); !strings.Contains(h, "192.168.1.50\tweb") || !strings.Contains(h, "fd00:1::50\tweb") {
		t.Errorf("/etc/hosts = %q", h)
	}
	if rc := readFile(t, etc(c, "resolv.conf")); !strings.Contains(rc, "nameserver 192.168.1.1") {
		t.Errorf("/etc/resolv.conf = %q", rc)
	}
	r.detach(t, c)
	if l := links(t, r.ns); strings.Contains(l, rec.HostLink) {
		t.Errorf("veth %s left after detach:\n%s", rec.HostLink, l)
	}
}

// Two containers on one port: in macvlan bridge mode they reach each
// other, in private mode they do not; both reach the host behind the port.
func TestMacvlanModes(t *testing.T) {
	need(t)
	r := newRouter(t)
	sh(t, "ip", "-n", r.hosts["lan1"], "addr", "add", "10.1.0.1/24", "dev", "eth0")
	for _, tc := range []struct {
		mode  string
		reach bool
	}{{"bridge", true}, {"private", false}} {
		a, b := newContainer(t, "a-"+tc.mode), newContainer(t, "b-"+tc.mode)
		if _, err := r.attach(t, a, "macvlan:lan1,mode="+tc.mode, []string{"10.1.0.11/24"}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.attach(t, b, "macvlan:lan1,mode="+tc.mode, []string{"10.1.0.12/24"}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*container{a, b} {
			if err := pingOK(c.ns, "10.1.0.1"); err != nil {
				t.Errorf("%s: %s cannot reach the host behind lan1: %v", tc.mode, c.name, err)
			}
		}
		err := pingOK(a.ns, "10.1.0.12")
		if tc.reach && err != nil {
			t.Errorf("mode %s: containers cannot reach each other: %v", tc.mode, err)
		}
		if !tc.reach && err == nil {
			t.Errorf("mode %s: containers reach each other", tc.mode)
		}
		r.detach(t, a)
		r.detach(t, b)
	}
}

// The same container name gets the same MAC on every attach.
func TestStableMACAcrossRestart(t *testing.T) {
	need(t)
	r := newRouter(t)
	var macs []string
	for i := 0; i < 2; i++ {
		c := newContainer(t, "same")
		rec, err := r.attach(t, c, "macvlan:lan2", nil)
		if err != nil {
			t.Fatal(err)
		}
		macs = append(macs, rec.MAC)
		if got := sh(t, "ip", "-n", c.ns, "-o", "link", "show", "eth0"); !strings.Contains(got, rec.MAC) {
			t.Errorf("eth0 has not MAC %s: %s", rec.MAC, got)
		}
		r.detach(t, c)
		sh(t, "ip", "netns", "del", c.ns) // the container stopped
	}
	if macs[0] != macs[1] {
		t.Errorf("MAC changed across restart: %v", macs)
	}
}

func TestNoneIsLoopbackOnly(t *testing.T) {
	need(t)
	r := newRouter(t)
	c := newContainer(t, "iso")
	if _, err := r.attach(t, c, "none", nil); err != nil {
		t.Fatal(err)
	}
	l := links(t, c.ns)
	if strings.Count(l, "\n") != 1 || !strings.Contains(l, "lo:") || !strings.Contains(l, "UP") {
		t.Errorf("links in a none container:\n%s", l)
	}
}
