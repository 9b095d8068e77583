package netcfg_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/otok/otok/netcfg"
)

// Every bad request fails with a clear error before anything is created.
func TestBadInput(t *testing.T) {
	need(t)
	r := newRouter(t)
	sh(t, "ip", "-n", r.hosts["lan1"], "addr", "add", "10.1.0.1/24", "dev", "eth0")
	// Existing users: a passthru container on lan2, a static one on lan1,
	// one publishing 8080 on br-lan.
	if _, err := r.attach(t, newContainer(t, "pt"), "macvlan:lan2,mode=passthru", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.attach(t, newContainer(t, "st"), "macvlan:lan1", []string{"10.1.0.20/24"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.attach(t, newContainer(t, "pub"), "bridge:lan", []string{"192.168.1.60/24"}, withPublish("8080:80")); err != nil {
		t.Fatal(err)
	}
	wifi := func(c *netcfg.Config) { c.IsWireless = func(dev string) bool { return dev == "wan" } }
	for _, tc := range []struct {
		net  string
		ips  []string
		mod  func(*netcfg.Config)
		want string
	}{
		{"macvlan:lan9", nil, nil, "network macvlan:lan9: no port lan9 on this board (ports: lan lan1 lan2 lan3 wan)"},
		{"macvlan:lan9.10", nil, nil, "no port lan9 on this board"},
		{"macvlan:lan2", nil, nil, "network macvlan:lan2: port lan2 is taken by container pt (macvlan passthru)"},
		{"macvlan:lan1,mode=passthru", nil, nil, "passthru needs port lan1 to itself, but container st uses it"},
		{"macvlan:lan1", []string{"10.1.0.20/24"}, nil, "address 10.1.0.20: already used by container st"},
		{"bridge:lan", []string{"192.168.1.61/24"}, withPublish("8080:80"), "publish 8080/tcp: already published by container pub"},
		{"macvlan:wan", nil, wifi, "port wan is a Wi-Fi interface; an access point accepts one MAC per station, so macvlan cannot work there; use ipvlan:wan"},
		{"macvlan:lan3", nil, nil, "port lan3 is a member of br-lan, and a macvlan cannot share a bridge port; attach to br-lan instead"},
		{"bridge:lan1", nil, nil, "lan1 is a veth, not a bridge"},
		{"macvlan:lan1", nil, func(c *netcfg.Config) { c.Spec.MAC = netcfg.StableMAC("test-device", "st").String() }, "already used by container st"},
		{"bridge:lan", []string{"192.168.1.62/24"}, func(c *netcfg.Config) { c.Container = "st" }, "network of container st is already set up"},
	} {
		c := newContainer(t, "bad")
		before := linkSet(t, r.ns)
		recsBefore, _ := netcfg.Records(r.state)
		_, err := r.attach(t, c, tc.net, tc.ips, func(cfg *netcfg.Config) {
			if tc.mod != nil {
				tc.mod(cfg)
			}
		})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: error = %v\n want %q", tc.net, tc.ips, err, tc.want)
			continue
		}
		if !errors.Is(err, netcfg.ErrInvalid) {
			t.Errorf("%s: %v is not ErrInvalid", tc.net, err)
		}
		if after := linkSet(t, r.ns); after != before {
			t.Errorf("%s: router links changed:\n%s\n→\n%s", tc.net, before, after)
		}
		if l := links(t, c.ns); strings.Contains(l, "eth0") {
			t.Errorf("%s: container got a link:\n%s", tc.net, l)
		}
		if recs, _ := netcfg.Records(r.state); len(recs) != len(recsBefore) {
			t.Errorf("%s: records %d → %d", tc.net, len(recsBefore), len(recs))
		}
	}
}

// A failure after the first link exists removes everything made so far:
// here otok0 is created, then the veth cannot be (its name is taken).
func TestFailureMidwayRollsBack(t *testing.T) {
	need(t)
	r := newRouter(t)
	sum := sha256.Sum256([]byte("mid"))
	taken := "otk" + hex.EncodeToString(sum[:4])
	sh(t, "ip", "-n", r.ns, "link", "add", taken, "type", "bridge")
	before := linkSet(t, r.ns)
	c := newContainer(t, "mid")
	_, err := r.attach(t, c, "bridge", nil, withPublish("8088:80"))
	if err == nil || !strings.Contains(err.Error(), "create veth "+taken) {
		t.Fatalf("err = %v", err)
	}
	if after := linkSet(t, r.ns); after != before {
		t.Errorf("router links changed:\n%s\n→\n%s", before, after)
	}
	if tb := nftTables(t, r.ns); strings.Contains(tb, "otok") {
		t.Errorf("nft table left: %q", tb)
	}
	if recs, _ := netcfg.Records(r.state); len(recs) != 0 {
		t.Errorf("records left: %d", len(recs))
	}
}
