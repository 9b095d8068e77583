package netcfg_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otok/otok/netcfg"
	"github.com/otok/otok/test/testenv"
	"github.com/otok/otok/test/testimage"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// otok runs otok with the router's network namespace as its host
// namespace (nsenter: only the network namespace changes, so cgroups and
// /sys stay the host's).
func (r *router) otok(t *testing.T, state string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("needs nsenter (util-linux)")
	}
	cmd := exec.Command("nsenter", append([]string{"--net=" + nsPath(r.ns), testenv.Otok(t), "--state", state}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var (
	inetRe = regexp.MustCompile(`inet (203\.0\.113\.\d+)/24`)
	macRe  = regexp.MustCompile(`link/ether ([0-9a-f:]{17})`)
)

// otok run --net macvlan:wan --ip dhcp: a busybox container (no DHCP client
// of its own) gets a lease from the upstream server, reaches it, and gets
// the same address when run again under the same name.
func TestE2ERunMacvlanDHCP(t *testing.T) {
	need(t)
	r := newRouter(t)
	leases := dnsmasq(t, r.hosts["wan"])
	img := testimage.Build(t, t.TempDir())
	state := t.TempDir()
	t.Cleanup(func() {
		r.otok(t, state, "rm", "-f", "e2e-d")
		netcfg.Sweep(t.Context(), filepath.Join(state, "net"), nsPath(r.ns), func(string) bool { return false })
	})
	var addrs []string
	for i := 0; i < 2; i++ {
		// busybox ping needs a raw socket: NET_RAW is not in the default set.
		out, err := r.otok(t, state, "run", "--rm", "--name", "e2e", "--cap-add", "NET_RAW", "--net", "macvlan:wan", "--ip", "dhcp", img,
			"sh", "-c", "ip link show eth0; ip -4 addr show eth0; cat /etc/resolv.conf; ping -c1 -W2 203.0.113.1")
		if err != nil {
			t.Fatalf("otok run: %v\n%s", err, out)
		}
		m := inetRe.FindStringSubmatch(out)
		if m == nil || !strings.Contains(out, "nameserver 203.0.113.53") || !strings.Contains(out, "1 packets received") {
			t.Fatalf("run %d output:\n%s", i, out)
		}
		addrs = append(addrs, m[1])
		// Stopped: the lease was released from the pinned namespace.
		mac := macRe.FindStringSubmatch(out)
		if mac == nil {
			t.Fatalf("no MAC in output:\n%s", out)
		}
		if l := readFile(t, leases); strings.Contains(l, mac[1]) {
			t.Errorf("lease of %s not released after the container stopped: %q", mac[1], l)
		}
	}
	if addrs[0] != addrs[1] {
		t.Errorf("address changed across runs: %v", addrs)
	}
	if recs, _ := netcfg.Records(filepath.Join(state, "net")); len(recs) != 0 {
		t.Errorf("network records left after run --rm: %d", len(recs))
	}

	// Detached: the record outlives the CLI; rm -f detaches.
	if out, err := r.otok(t, state, "run", "-d", "--name", "e2e-d", "--net", "bridge", "-p", "8090:80", img, "sleep", "600"); err != nil {
		t.Fatalf("run -d: %v\n%s", err, out)
	}
	if recs, _ := netcfg.Records(filepath.Join(state, "net")); len(recs) != 1 || recs[0].Container != "e2e-d" {
		t.Fatalf("records after run -d: %v", recs)
	}
	if out, err := r.otok(t, state, "net", "ls"); err != nil || !strings.Contains(out, "e2e-d") || !strings.Contains(out, "10.213.0.2/24") {
		t.Errorf("net ls: %v\n%s", err, out)
	}
	if out, err := r.otok(t, state, "rm", "-f", "e2e-d"); err != nil {
		t.Fatalf("rm -f: %v\n%s", err, out)
	}
	if recs, _ := netcfg.Records(filepath.Join(state, "net")); len(recs) != 0 {
		t.Errorf("records after rm: %v", recs)
	}
	if mi := readFile(t, "/proc/self/mountinfo"); strings.Contains(mi, filepath.Join(state, "net")) {
		t.Errorf("pinned namespace still mounted after rm")
	}
	if l := links(t, r.ns); strings.Contains(l, "otok") {
		t.Errorf("otok links left after rm:\n%s", l)
	}
	if tb := nftTables(t, r.ns); strings.Contains(tb, "otok") {
		t.Errorf("nft table left after rm: %q", tb)
	}
}

// Usage errors come before any container exists.
func TestE2EBadNetFlags(t *testing.T) {
	need(t)
	r := newRouter(t)
	state := t.TempDir()
	for args, want := range map[string]string{
		"--net macvlan:lan9":                   "network macvlan:lan9: no port lan9 on this host",
		"--net macvlan:wan.4095":               "VLAN id 4095 out of range 1-4094",
		"--net bridge --ip 10.0.0.1":           "no prefix length",
		"--net bridge --mac 01:00:5e:00:00:01": "multicast bit set",
		"--net macvlan:wan -p 80:80":           "-p needs --net bridge",
	} {
		out, err := r.otok(t, state, append(append([]string{"run", "--rm"}, strings.Fields(args)...), "/nonexistent.sqfs", "true")...)
		var ee *exec.ExitError
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("%s: %v\n%s\nwant %q", args, err, out, want)
		} else if errorsAs(err, &ee) && ee.ExitCode() != 2 {
			t.Errorf("%s: exit %d, want 2 (usage)", args, ee.ExitCode())
		}
	}
}

func errorsAs(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}

// kill -9 of otok mid-setup (blocked in DHCP) and of a running container,
// then `otok net prune`: no otok links, nft tables, pinned namespaces or
// records remain.
func TestE2EKillThenPrune(t *testing.T) {
	need(t)
	r := newRouter(t)
	img := testimage.Build(t, t.TempDir())
	state := t.TempDir()
	netDir := filepath.Join(state, "net")
	t.Cleanup(func() { // the runtime's part: containers and image mounts
		r.otok(t, state, "rm", "-f", "c1")
		r.otok(t, state, "rm", "-f", "c2")
		r.otok(t, state, "gc")
	})
	if out, err := r.otok(t, state, "run", "-d", "--name", "c1", "--net", "bridge", "-p", "8095:80", img, "sleep", "600"); err != nil {
		t.Fatalf("run -d: %v\n%s", err, out)
	}
	// c2 waits for a DHCP server that does not exist.
	cmd := exec.Command("nsenter", "--net="+nsPath(r.ns), testenv.Otok(t), "--state", state, "run", "--name", "c2",
		"--net", "macvlan:lan2", "--ip", "dhcp", img, "true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if rec, err := netcfg.LoadRecord(netDir, "c2"); err == nil && rec.Complete {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("c2 never reached DHCP")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	// c1's container dies too (its pid from the runtime's state).
	var st struct{ Pid int }
	if b, err := os.ReadFile(filepath.Join(state, "containers", "c1", "state.json")); err == nil {
		json.Unmarshal(b, &st)
	}
	if st.Pid <= 1 {
		t.Fatal("no pid for c1")
	}
	syscall.Kill(st.Pid, syscall.SIGKILL)
	time.Sleep(300 * time.Millisecond)

	if out, err := r.otok(t, state, "net", "prune"); err != nil {
		t.Fatalf("net prune: %v\n%s", err, out)
	}
	if recs, _ := netcfg.Records(netDir); len(recs) != 0 {
		t.Errorf("records after prune: %d", len(recs))
	}
	if ns, _ := filepath.Glob(filepath.Join(netDir, "*.netns")); len(ns) != 0 {
		t.Errorf("pinned namespaces after prune: %v", ns)
	}
	if mi := readFile(t, "/proc/self/mountinfo"); strings.Contains(mi, netDir) {
		t.Error("namespace still mounted after prune")
	}
	if l := links(t, r.ns); strings.Contains(l, "otok") || strings.Contains(l, "otk") {
		t.Errorf("otok links after prune:\n%s", l)
	}
	if tb := nftTables(t, r.ns); strings.Contains(tb, "otok") {
		t.Errorf("nft tables after prune: %q", tb)
	}
}

// -p 8096:80 from a LAN host reaches busybox httpd in a container on
// br-lan, and on otok0.
func TestE2EPublishHttpd(t *testing.T) {
	need(t)
	r := newRouter(t)
	img := testimage.Build(t, t.TempDir())
	state := t.TempDir()
	t.Cleanup(func() {
		r.otok(t, state, "rm", "-f", "web")
		r.otok(t, state, "rm", "-f", "web0")
		r.otok(t, state, "gc")
	})
	for _, c := range []struct {
		name string
		net  []string
		port string
	}{
		{"web", []string{"--net", "bridge:br-lan", "--ip", "192.168.1.80/24,gw=192.168.1.1", "-p", "8096:80"}, "8096"},
		{"web0", []string{"--net", "bridge", "-p", "8097:80"}, "8097"},
	} {
		args := append(append([]string{"run", "-d", "--name", c.name}, c.net...), img, "httpd", "-f", "-p", "80", "-h", "/etc")
		if out, err := r.otok(t, state, args...); err != nil {
			t.Fatalf("%s: %v\n%s", c.name, err, out)
		}
		out, err := fetchRetry(r.hosts["lan3"], "http://192.168.1.1:"+c.port+"/passwd") // httpd starts after run -d returns
		if err != nil || !strings.Contains(out, "root:x:0:0") {
			t.Errorf("%s: LAN host via router:%s: %q, %v", c.name, c.port, out, err)
		}
	}
}

// --userns --net bridge: /etc/hosts is written into the container's
// idmapped layer as container root (host root is not mapped there, so a
// plain write fails with EOVERFLOW), and the address is configured. Where
// the kernel cannot idmap the image, the container still starts with its
// address and the image's /etc/hosts.
func TestE2EUserNamespaceBridge(t *testing.T) {
	need(t)
	r := newRouter(t)
	img := testimage.Build(t, t.TempDir())
	// The mapped container root must be able to reach the state dir.
	state := testenv.StateDir(t, true)
	t.Cleanup(func() { r.otok(t, state, "gc") })
	out, err := r.otok(t, state, "run", "--rm", "--userns", "--name", "uns",
		"--net", "bridge:br-lan", "--ip", "192.168.1.77/24", img,
		"sh", "-c", "ls -n /etc/hosts; cat /etc/hosts; ip -o -4 addr show eth0; id -u; stat -c etc_owner=%u /etc")
	if err != nil {
		t.Fatalf("run --userns --net bridge: %v\n%s", err, out)
	}
	if !strings.Contains(out, "inet 192.168.1.77/24") {
		t.Errorf("address not configured:\n%s", out)
	}
	f := strings.Fields(out)
	if strings.Contains(out, "etc_owner=65534") {
		// A kernel that cannot idmap the image (squashfs on the qemu
		// guests' Linux 6.1 has no FS_ALLOW_IDMAP): /etc is the image's,
		// nobody in the container, and cannot be copied up; the image's
		// /etc/hosts stays, the container still runs with its address.
		if strings.Contains(out, "\tuns") {
			t.Errorf("/etc/hosts written although /etc is not the container's:\n%s", out)
		}
		t.Logf("image not idmapped on this kernel (/etc owned by nobody): the image's /etc/hosts stays; network configured")
		return
	}
	if !strings.Contains(out, "192.168.1.77\tuns") {
		t.Errorf("/etc/hosts lacks \"192.168.1.77\tuns\":\n%s", out)
	}
	if len(f) < 4 || f[2] != "0" || f[3] != "0" {
		t.Errorf("/etc/hosts not owned by container root:\n%s", out)
	}
}
