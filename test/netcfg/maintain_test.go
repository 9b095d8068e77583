package netcfg_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/otok/otok/netcfg"
)

// udhcpd starts busybox's DHCP server on eth0 of ns with a short lease.
func udhcpd(t *testing.T, ns string, lease int) {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "udhcpd.conf")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`start 203.0.113.100
end 203.0.113.150
interface eth0
lease_file %s/leases
pidfile %s/pid
min_lease 1
opt subnet 255.255.255.0
opt router 203.0.113.1
opt dns 203.0.113.53
opt lease %d
`, dir, dir, lease)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns, "busybox", "udhcpd", "-f", "-a", "100", conf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	time.Sleep(200 * time.Millisecond)
}

// Maintain renews a short lease at T1 and records it.
func TestMaintainRenews(t *testing.T) {
	need(t)
	r := newRouter(t)
	udhcpd(t, r.hosts["wan"], 6)
	c := newContainer(t, "renew")
	rec, err := r.attach(t, c, "macvlan:wan", []string{"dhcp"})
	if err != nil {
		t.Fatal(err)
	}
	first := rec.Lease
	if first.Duration != 6*time.Second {
		t.Fatalf("lease %+v", first)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- netcfg.Maintain(ctx, r.state, c.name) }()
	time.Sleep(8 * time.Second) // past T1 (3 s) and past the first expiry
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("Maintain returned %v", err)
	}
	now, err := netcfg.LoadRecord(r.state, c.name)
	if err != nil {
		t.Fatal(err)
	}
	if now.Lease == nil || !now.Lease.Acquired.After(first.Acquired.Add(2*time.Second)) || now.Lease.Addr != first.Addr {
		t.Errorf("lease not renewed: first %+v, now %+v", first, now.Lease)
	}
	if err := pingOK(c.ns, "203.0.113.1"); err != nil {
		t.Errorf("address lost: %v", err)
	}
}
