package board

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// These tests compare Check's report with what the kernel says through
// other means (iproute2, /proc, statfs(2)), never with constants.

func feature(t *testing.T, r *Report, group, name string) Feature {
	t.Helper()
	for _, f := range r.Features {
		if f.Group == group && f.Name == name {
			return f
		}
	}
	t.Fatalf("no feature %s/%s in report", group, name)
	return Feature{}
}

func TestCheckNamespacesMatchProc(t *testing.T) {
	r := Check(CheckOptions{StorePath: t.TempDir()})
	for _, ns := range []string{"mnt", "pid", "uts", "ipc", "net", "user", "cgroup"} {
		_, err := os.Lstat("/proc/self/ns/" + ns)
		f := feature(t, r, "namespace", ns)
		if (err == nil) != (f.Status != Missing) {
			t.Errorf("namespace %s: report %s, /proc/self/ns says present=%v", ns, f.Status, err == nil)
		}
	}
}

func TestCheckFilesystemsMatchProc(t *testing.T) {
	data, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		t.Skip("no /proc/filesystems:", err)
	}
	r := Check(CheckOptions{StorePath: t.TempDir()})
	for _, fs := range []string{"squashfs", "overlay", "tmpfs"} {
		has := false
		for _, line := range strings.Split(string(data), "\n") {
			if strings.TrimSpace(strings.TrimPrefix(line, "nodev")) == fs {
				has = true
			}
		}
		f := feature(t, r, "filesystem", fs)
		if has != (f.Status == OK) {
			t.Errorf("filesystem %s: report %s, /proc/filesystems has it=%v", fs, f.Status, has)
		}
	}
}

func TestCheckCgroupVersionMatchesStatfs(t *testing.T) {
	// statfs(2) itself, not stat -f: busybox's stat has no -f, and the
	// routers (and the qemu guests) have busybox.
	stat := func(p string) string {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err != nil {
			return ""
		}
		switch uint32(st.Type) {
		case unix.CGROUP2_SUPER_MAGIC:
			return "cgroup2fs"
		case unix.TMPFS_MAGIC:
			return "tmpfs"
		}
		return fmt.Sprintf("0x%x", uint32(st.Type))
	}
	root := stat("/sys/fs/cgroup")
	if root == "" {
		t.Skip("no /sys/fs/cgroup here")
	}
	want := ""
	switch {
	case root == "cgroup2fs":
		want = "v2"
	case stat("/sys/fs/cgroup/unified") == "cgroup2fs":
		want = "hybrid"
	case root == "tmpfs":
		want = "v1"
	}
	l := DetectCgroups("/proc")
	if l.Version != want {
		t.Errorf("cgroup version %q, statfs says %q", l.Version, want)
	}
	r := Check(CheckOptions{StorePath: t.TempDir()})
	if f := feature(t, r, "cgroup", "version"); !strings.Contains(f.Detail, want) {
		t.Errorf("cgroup version detail %q does not say %q", f.Detail, want)
	}
	// Each controller the report calls usable is really mounted there.
	for _, c := range controllerNames {
		f := feature(t, r, "cgroup", c.name)
		if f.Status != OK {
			continue
		}
		switch f.Detail {
		case "v1":
			if _, err := os.Stat(l.V1[c.v1]); err != nil {
				t.Errorf("controller %s reported on v1 but %v", c.name, err)
			}
		case "v2":
			b, _ := os.ReadFile(l.V2Root + "/cgroup.controllers")
			if !strings.Contains(" "+string(b)+" ", " "+c.name) {
				t.Errorf("controller %s reported on v2 but cgroup.controllers = %q", c.name, b)
			}
		}
	}
}

// TestCheckLinksMatchIproute2 creates each link kind with ip(8) in a
// scratch namespace and expects the same verdict from the probe.
func TestCheckLinksMatchIproute2(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("link probes need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("iproute2 not installed")
	}
	ns := "otokchk" + strings.ReplaceAll(t.Name(), "/", "")[:6]
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	ip := func(args ...string) bool {
		return exec.Command("ip", append([]string{"-n", ns}, args...)...).Run() == nil
	}
	ip("link", "add", "a0", "type", "veth", "peer", "name", "a1")
	want := map[string]bool{
		"veth":    ip("link", "show", "a0"),
		"bridge":  ip("link", "add", "b0", "type", "bridge"),
		"macvlan": ip("link", "add", "link", "a0", "name", "m0", "type", "macvlan"),
		"ipvlan":  ip("link", "add", "link", "a0", "name", "i0", "type", "ipvlan"),
		"8021q":   ip("link", "add", "link", "a0", "name", "a0.7", "type", "vlan", "id", "7"),
	}
	r := Check(CheckOptions{StorePath: t.TempDir(), Probe: true})
	for kind, ok := range want {
		f := feature(t, r, "network", kind)
		if strings.HasPrefix(f.Detail, "not probed") {
			t.Skipf("link probe unavailable here: %s", f.Detail)
		}
		if ok != (f.Status == OK) {
			t.Errorf("%s: report %s (%s), ip link says works=%v", kind, f.Status, f.Detail, ok)
		}
	}
}

// TestCheckProbesLeaveNothing looks for what the probes create (links
// named probe*, the otok-probe tmpfs) in the host's namespaces afterwards.
// Other suites may create links and mounts meanwhile, so it checks only
// the probes' own names.
func TestCheckProbesLeaveNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("probes need root")
	}
	r := Check(CheckOptions{StorePath: t.TempDir(), Probe: true})
	if f := feature(t, r, "security", "pivot_root"); f.Status != OK {
		t.Logf("pivot_root: %s %s", f.Status, f.Detail)
	}
	// No thread of this process — the main thread included, which Go
	// parks instead of ending — may be left in a scratch namespace.
	tasks, _ := filepath.Glob("/proc/self/task/*/mountinfo")
	for _, p := range tasks {
		if mi, _ := os.ReadFile(p); strings.Contains(string(mi), "otok-probe") {
			t.Errorf("%s shows the pivot_root probe's tmpfs:\n%s", p, mi)
		}
	}
	self, _ := os.Readlink("/proc/self/ns/net")
	nets, _ := filepath.Glob("/proc/self/task/*/ns/net")
	for _, p := range nets {
		if ns, err := os.Readlink(p); err == nil && ns != self {
			t.Errorf("%s is %s, not the process's %s", p, ns, self)
		}
	}
	out, _ := exec.Command("ip", "-o", "link").Output()
	for _, line := range strings.Split(string(out), "\n") {
		for _, name := range []string{" probe0", " probe1", " probebr", " probemv", " probeiv", " probevl"} {
			if strings.Contains(line, name+":") || strings.Contains(line, name+"@") {
				t.Errorf("probe link left on the host: %s", line)
			}
		}
	}
}

func TestCheckStore(t *testing.T) {
	dir := t.TempDir()
	r := Check(CheckOptions{StorePath: dir + "/not/yet/created"})
	f := feature(t, r, "storage", "store")
	if f.Status == Missing || !strings.Contains(f.Detail, dir) {
		t.Errorf("store: %s %q; want the nearest existing parent %s", f.Status, f.Detail, dir)
	}
	out, err := exec.Command("stat", "-f", "-c", "%T", dir).Output()
	if err == nil {
		fsType := strings.TrimSpace(string(out))
		if fsType == "ext2/ext3" {
			fsType = "ext4"
		}
		if !strings.Contains(f.Detail, "("+fsType+")") && !strings.Contains(f.Detail, "(0x") {
			t.Errorf("store detail %q does not name filesystem %s", f.Detail, fsType)
		}
	}
}

func TestCheckMissingBoardIsFine(t *testing.T) {
	dir := t.TempDir()
	r := Check(CheckOptions{StorePath: dir, ReleasePath: dir + "/none", BoardPath: dir + "/none"})
	if r.Release != nil || r.Board != nil || len(r.Notes) != 0 {
		t.Errorf("release %v board %v notes %v; want none", r.Release, r.Board, r.Notes)
	}
	r = Check(CheckOptions{StorePath: dir, ReleasePath: "testdata/openwrt_release-25.12", BoardPath: "testdata/board-malformed.json"})
	if r.Release == nil || r.Release.Version != "25.12.0-rc1" {
		t.Errorf("release = %+v", r.Release)
	}
	if len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "board-malformed.json") {
		t.Errorf("notes = %v, want the malformed board.json named", r.Notes)
	}
}

func TestMountinfoUnescape(t *testing.T) {
	if got := unescapeOctal(`/mnt/a\040b`); got != "/mnt/a b" {
		t.Errorf("got %q", got)
	}
}
