package netcfg_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otok/otok/netcfg"
)

// TestHelperAttach is not a test: the crash test runs the test binary with
// OTOK_HELPER_ATTACH set so that a separate process attaches (and blocks in
// DHCP) and can be killed with SIGKILL.
func TestHelperAttach(t *testing.T) {
	args := os.Getenv("OTOK_HELPER_ATTACH")
	if args == "" {
		t.Skip("helper process only")
	}
	var h helperConfig
	if err := json.Unmarshal([]byte(args), &h); err != nil {
		t.Fatal(err)
	}
	netcfg.Attach(context.Background(), netcfg.Config{Container: h.Name, Spec: h.Spec, NetNS: h.NetNS,
		HostNS: h.HostNS, StateDir: h.State, DeviceID: "test", DHCPWait: time.Minute})
	time.Sleep(time.Hour)
}

type helperConfig struct {
	Name                 string
	Spec                 netcfg.Spec
	NetNS, HostNS, State string
}

// kill -9 of the attaching process mid-setup, then the container dies, then
// a sweep: no otok links, tables, records remain.
func TestSweepAfterCrash(t *testing.T) {
	need(t)
	r := newRouter(t)

	// 1. A process killed while waiting for DHCP (links made, record saved).
	c := newContainer(t, "crash")
	sp, _ := netcfg.ParseNet("macvlan:lan2")
	sp.Addrs = []netcfg.Addr{{DHCP: true}}
	cfgJSON, err := json.Marshal(helperConfig{"crash", sp, nsPath(c.ns), nsPath(r.ns), r.state})
	if err != nil {
		t.Fatal(err)
	}
	helper := exec.Command(os.Args[0], "-test.run=^TestHelperAttach$")
	helper.Env = append(os.Environ(), "OTOK_HELPER_ATTACH="+string(cfgJSON))
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { helper.Process.Kill(); helper.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(links(t, c.ns), "otok:crash") {
		if time.Now().After(deadline) {
			t.Fatal("helper never attached")
		}
		time.Sleep(20 * time.Millisecond)
	}
	helper.Process.Kill()
	helper.Wait()

	// 2. Containers on otok0 with a published port whose namespaces
	// vanished without a detach (the container and otok both died).
	for _, n := range []string{"gone1", "gone2"} {
		g := newContainer(t, n)
		if _, err := r.attach(t, g, "bridge", nil, withPublish("90"+n[4:]+":80")); err != nil {
			t.Fatal(err)
		}
		sh(t, "ip", "netns", "del", g.ns)
	}
	// 3. A tagged link of a dead container, and one of a live container.
	sh(t, "ip", "-n", r.ns, "link", "add", "otkdead", "type", "bridge")
	sh(t, "ip", "-n", r.ns, "link", "set", "otkdead", "alias", "otok:ghost")
	sh(t, "ip", "-n", r.ns, "link", "add", "otklive", "type", "bridge")
	sh(t, "ip", "-n", r.ns, "link", "set", "otklive", "alias", "otok:alive")

	if recs, _ := netcfg.Records(r.state); len(recs) != 3 {
		t.Fatalf("want 3 records before the sweep, have %d", len(recs))
	}
	alive := func(n string) bool { return n == "alive" }
	if err := netcfg.Sweep(context.Background(), r.state, nsPath(r.ns), alive); err != nil {
		t.Fatal(err)
	}
	l := links(t, r.ns)
	for _, gone := range []string{"otkdead", "otok0", "otok:crash", "otok:gone"} {
		if strings.Contains(l, gone) {
			t.Errorf("%s left after sweep:\n%s", gone, l)
		}
	}
	if !strings.Contains(l, "otklive") {
		t.Errorf("sweep removed a live container's link:\n%s", l)
	}
	if strings.Contains(links(t, c.ns), "eth0") {
		t.Errorf("crashed attach's eth0 left in its namespace:\n%s", links(t, c.ns))
	}
	if tb := nftTables(t, r.ns); strings.Contains(tb, "otok") {
		t.Errorf("nft table left: %q", tb)
	}
	if ents, _ := filepath.Glob(filepath.Join(r.state, "*.json")); len(ents) != 0 {
		t.Errorf("records left: %v", ents)
	}
	if ents, _ := filepath.Glob(filepath.Join(r.state, "*.netns")); len(ents) != 0 {
		t.Errorf("pinned namespaces left: %v", ents)
	}
	if mi := readFile(t, "/proc/self/mountinfo"); strings.Contains(mi, r.state) {
		t.Errorf("mounts left under %s", r.state)
	}
}
