package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

func readT(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return strings.TrimSpace(string(b))
}

// fakeV1 makes a hybrid-like v1 tree with the container's memory and pids
// cgroups (as create leaves them without CPU limits); files holds extra
// memory files to create (e.g. memsw).
func fakeV1(t *testing.T, name string, memsw bool) (*CgroupLayout, string) {
	root := t.TempDir()
	for _, d := range []string{"memory", "pids", "cpu,cpuacct"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
		os.WriteFile(filepath.Join(root, d, "cgroup.procs"), nil, 0o644)
	}
	l := &CgroupLayout{Version: 1, Root: root, V1: map[string]string{
		"memory": "memory", "pids": "pids", "cpu": "cpu,cpuacct", "cpuacct": "cpu,cpuacct"}}
	mem := filepath.Join(root, "memory", "otok", name)
	os.MkdirAll(mem, 0o755)
	os.WriteFile(filepath.Join(mem, "memory.limit_in_bytes"), []byte("9223372036854771712\n"), 0o644)
	if memsw {
		os.WriteFile(filepath.Join(mem, "memory.memsw.limit_in_bytes"), []byte("9223372036854771712\n"), 0o644)
	}
	os.WriteFile(filepath.Join(mem, "cgroup.procs"), []byte("4242\n4343\n"), 0o644)
	pids := filepath.Join(root, "pids", "otok", name)
	os.MkdirAll(pids, 0o755)
	os.WriteFile(filepath.Join(pids, "pids.max"), []byte("max\n"), 0o644)
	return l, root
}

// checkMemsw makes every write during fn check v1's rule: memsw ≥ limit
// after each step (the kernel refuses a write that breaks it).
func checkMemsw(t *testing.T, dir string, fn func()) {
	t.Helper()
	old := updateWrite
	defer func() { updateWrite = old }()
	updateWrite = func(d, file, val string) error {
		if d == dir && (file == "memory.limit_in_bytes" || file == "memory.memsw.limit_in_bytes") {
			l, s := v1Mem(dir, "memory.limit_in_bytes"), v1Mem(dir, "memory.memsw.limit_in_bytes")
			n, _ := strconv.ParseInt(val, 10, 64)
			if n < 0 {
				n = -1
			}
			if file == "memory.limit_in_bytes" {
				l = n
			} else {
				s = n
			}
			if lessMem(s, l) {
				return fmt.Errorf("%s=%s: memsw %d < limit %d: invalid argument", file, val, s, l)
			}
		}
		return old(d, file, val)
	}
	fn()
}

func TestUpdateV1Memory(t *testing.T) {
	l, root := fakeV1(t, "web", true)
	mem := filepath.Join(root, "memory", "otok", "web")
	cg := l.forContainer("web").(*cgroupV1)
	steps := []struct {
		r          Resources
		limit, msw string
	}{
		{Resources{Memory: 64 << 20}, "67108864", "134217728"},                      // unlimited → limited: limit first
		{Resources{Memory: 256 << 20}, "268435456", "536870912"},                    // raise past memsw: memsw first
		{Resources{Memory: 16 << 20, MemorySwap: 32 << 20}, "16777216", "33554432"}, // lower below limit: limit first
		{Resources{Memory: 128 << 20, MemorySwap: -1}, "134217728", "-1"},           // raise, unlimited swap
		{Resources{Memory: 8 << 20, MemorySwap: 8 << 20}, "8388608", "8388608"},     // lower both
		{Resources{}, "-1", "-1"}, // unlimit: memsw first
		{Resources{Memory: 32 << 20}, "33554432", "67108864"},
	}
	for _, s := range steps {
		checkMemsw(t, mem, func() {
			if err := cg.update(context.Background(), s.r, 0); err != nil {
				t.Fatalf("%+v: %v", s.r, err)
			}
		})
		if got := readT(t, filepath.Join(mem, "memory.limit_in_bytes")); got != s.limit {
			t.Errorf("%+v: limit %s, want %s", s.r, got, s.limit)
		}
		if got := readT(t, filepath.Join(mem, "memory.memsw.limit_in_bytes")); got != s.msw {
			t.Errorf("%+v: memsw %s, want %s", s.r, got, s.msw)
		}
		// the kernel reads -1 back as the page-rounded maximum
		for _, f := range []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"} {
			if readT(t, filepath.Join(mem, f)) == "-1" {
				os.WriteFile(filepath.Join(mem, f), []byte("9223372036854771712\n"), 0o644)
			}
		}
	}
	// The order rule alone: from (L0, S0) the first write keeps memsw ≥ limit.
	for _, c := range []struct{ l0, s0, l1, s1 int64 }{
		{100, 200, 300, 600}, {300, 600, 100, 200}, {100, 200, 150, 150}, {100, 100, 50, 90}, {-1, -1, 10, 20}, {10, 20, -1, -1},
	} {
		os.WriteFile(filepath.Join(mem, "memory.limit_in_bytes"), []byte(strconv.FormatInt(c.l0<<20, 10)), 0o644)
		os.WriteFile(filepath.Join(mem, "memory.memsw.limit_in_bytes"), []byte(strconv.FormatInt(c.s0<<20, 10)), 0o644)
		r := Resources{Memory: max(c.l1, 0) << 20, MemorySwap: c.s1}
		if c.s1 > 0 {
			r.MemorySwap = c.s1 << 20
		}
		checkMemsw(t, mem, func() {
			if err := cg.update(context.Background(), r, 0); err != nil {
				t.Errorf("%+v: %v", c, err)
			}
		})
	}
}

func TestUpdateV1NoSwapAccounting(t *testing.T) {
	l, root := fakeV1(t, "web", false)
	cg := l.forContainer("web").(*cgroupV1)
	if err := cg.update(context.Background(), Resources{Memory: 64 << 20}, 0); err != nil {
		t.Fatal(err)
	}
	if got := readT(t, filepath.Join(root, "memory/otok/web/memory.limit_in_bytes")); got != "67108864" {
		t.Errorf("limit %s", got)
	}
	err := cg.update(context.Background(), Resources{Memory: 64 << 20, MemorySwap: 128 << 20}, 0)
	if err == nil || !strings.Contains(err.Error(), "update memory:") || !strings.Contains(err.Error(), "swapaccount") {
		t.Errorf("memory-swap without swap accounting: %v", err)
	}
}

func TestUpdateV1CPUAndPids(t *testing.T) {
	l, root := fakeV1(t, "web", true)
	cg := l.forContainer("web").(*cgroupV1)
	// No cpu cgroup yet: none is made for no CPU limits.
	if err := cg.update(context.Background(), Resources{PidsLimit: 50}, 0); err != nil {
		t.Fatal(err)
	}
	cpu := filepath.Join(root, "cpu,cpuacct", "otok", "web")
	if _, err := os.Stat(cpu); err == nil {
		t.Fatal("cpu cgroup made without CPU limits")
	}
	if got := readT(t, filepath.Join(root, "pids/otok/web/pids.max")); got != "50" {
		t.Errorf("pids.max %s", got)
	}
	// CPU limits: the cgroup is made, limits written, processes moved in.
	if err := cg.update(context.Background(), Resources{CPUs: 0.5, CPUWeight: 100, PidsLimit: 7}, 3); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{
		"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "50000", "cpu.shares": strconv.FormatInt(weightToShares(100), 10),
		"cgroup.procs": "4343", // (a regular file keeps the last pid written)
	} {
		if got := readT(t, filepath.Join(cpu, f)); got != want {
			t.Errorf("%s = %s, want %s", f, got, want)
		}
	}
	if got := readT(t, filepath.Join(root, "pids/otok/web/pids.max")); got != "10" {
		t.Errorf("pids.max with the reaper's threads %s", got)
	}
	if got := cg.existing(); len(got) != 3 {
		t.Errorf("existing %v", got)
	}
	// Back to no limits.
	if err := cg.update(context.Background(), Resources{}, 0); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{"cpu.cfs_quota_us": "-1", "cpu.shares": "1024"} {
		if got := readT(t, filepath.Join(cpu, f)); got != want {
			t.Errorf("%s = %s, want %s", f, got, want)
		}
	}
	if got := readT(t, filepath.Join(root, "pids/otok/web/pids.max")); got != "max" {
		t.Errorf("pids.max %s", got)
	}
}

func TestUpdateV2(t *testing.T) {
	root := fakeV2(t)
	d := filepath.Join(root, "otok", "web")
	os.MkdirAll(d, 0o755)
	for _, f := range []string{"memory.max", "memory.swap.max", "memory.high", "cpu.max", "cpu.weight", "pids.max"} {
		os.WriteFile(filepath.Join(d, f), []byte("max\n"), 0o644)
	}
	os.WriteFile(filepath.Join(d, "cpu.weight"), []byte("100\n"), 0o644)
	cg := (&CgroupLayout{Version: 2, Root: root}).forContainer("web").(*cgroupV2)
	check := func(want map[string]string) {
		t.Helper()
		for f, w := range want {
			if got := readT(t, filepath.Join(d, f)); got != w {
				t.Errorf("%s = %q, want %q", f, got, w)
			}
		}
	}
	if err := cg.update(Resources{Memory: 64 << 20, CPUs: 1.5, CPUShares: 512, PidsLimit: 20}, 0); err != nil {
		t.Fatal(err)
	}
	check(map[string]string{"memory.max": "67108864", "memory.swap.max": "67108864", "memory.high": "max",
		"cpu.max": "150000 100000", "cpu.weight": "20", "pids.max": "20"})
	os.WriteFile(filepath.Join(d, "memory.high"), []byte("100000000\n"), 0o644)
	if err := cg.update(Resources{Memory: 32 << 20, MemorySwap: 48 << 20, CPUWeight: 300, PidsLimit: 5}, 4); err != nil {
		t.Fatal(err)
	}
	check(map[string]string{"memory.max": "33554432", "memory.swap.max": "16777216", "memory.high": "33554432",
		"cpu.max": "max 100000", "cpu.weight": "300", "pids.max": "9"})
	if err := cg.update(Resources{}, 0); err != nil {
		t.Fatal(err)
	}
	check(map[string]string{"memory.max": "max", "memory.swap.max": "max", "cpu.max": "max 100000", "cpu.weight": "100", "pids.max": "max"})
	// A controller missing: unlimited is nothing to do, a limit is an error.
	os.Remove(filepath.Join(d, "pids.max"))
	if err := cg.update(Resources{Memory: 8 << 20}, 0); err != nil {
		t.Errorf("no pids controller, no pids limit: %v", err)
	}
	err := cg.update(Resources{PidsLimit: 3}, 0)
	if err == nil || !strings.HasPrefix(err.Error(), "update pids: ") {
		t.Errorf("no pids controller: %v", err)
	}
}

// TestRuntimeUpdate drives Update on a recorded container whose "init" is
// this test process, over a fake v2 tree.
func TestRuntimeUpdate(t *testing.T) {
	root := fakeV2(t)
	state := t.TempDir()
	d := filepath.Join(root, "otok", CgroupName(state, "web")) // web@SCOPE
	if filepath.Base(d) == "web" || !strings.HasPrefix(filepath.Base(d), "web@") {
		t.Fatalf("a temporary state dir's cgroup is %s, want it scoped", d)
	}
	os.MkdirAll(d, 0o755)
	for _, f := range []string{"memory.max", "memory.swap.max", "cpu.max", "cpu.weight", "pids.max"} {
		os.WriteFile(filepath.Join(d, f), []byte("max\n"), 0o644)
	}
	r := &Runtime{Root: state}
	r.layoutOnce.Do(func() { r.layout = &CgroupLayout{Version: 2, Root: root} })
	os.MkdirAll(r.Dir("web"), 0o700)
	start, _ := procStart(os.Getpid())
	s := &State{Spec: Spec{Name: "web", Resources: Resources{Memory: 16 << 20}}, Status: StatusRunning,
		Pid: os.Getpid(), PidStart: start, Created: time.Now()}
	if underQemuUser() || !s.alive() {
		// qemu-user emulates /proc/self/stat for its guest (the start time
		// is not stable), so the test process cannot stand in for a
		// running container's init there.
		t.Skip("skipped: under qemu-user, /proc/<pid>/stat of this process is emulated")
	}
	if err := r.save(s); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := r.Update(ctx, "web", Resources{Memory: 48 << 20, CPUs: 0.25, PidsLimit: 64}); err != nil {
		t.Fatal(err)
	}
	st, err := r.State("web")
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Spec.Resources; got != (Resources{Memory: 48 << 20, CPUs: 0.25, PidsLimit: 64}) {
		t.Errorf("recorded %+v", got)
	}
	if got := readT(t, filepath.Join(d, "memory.max")); got != "50331648" {
		t.Errorf("memory.max %s", got)
	}
	// Invalid limits: nothing written, a clear error.
	err = r.Update(ctx, "web", Resources{Memory: 1 << 20})
	if err == nil || err.Error() != "container web: update: memory limit 1048576 below the 4 MiB minimum" {
		t.Errorf("invalid: %v", err)
	}
	if got := readT(t, filepath.Join(d, "memory.max")); got != "50331648" {
		t.Errorf("memory.max after a refused update %s", got)
	}
	// A write the kernel refuses names the container and the limit.
	os.Remove(filepath.Join(d, "pids.max"))
	err = r.Update(ctx, "web", Resources{PidsLimit: 3})
	if err == nil || !strings.HasPrefix(err.Error(), "container web: update pids: cgroup ") {
		t.Errorf("failed write: %v", err)
	}
	// Stopped and unknown containers.
	s.Status = StatusStopped
	r.save(s)
	if err := r.Update(ctx, "web", Resources{}); err == nil || err.Error() != "container web: update: not running" {
		t.Errorf("stopped: %v", err)
	}
	if err := r.Update(ctx, "nope", Resources{}); err == nil || !strings.Contains(err.Error(), "no such container") {
		t.Errorf("unknown: %v", err)
	}
}

// underQemuUser reports whether this test binary runs under qemu-user: the
// kernel's architecture is not the binary's.
func underQemuUser() bool {
	b, err := os.ReadFile("/proc/sys/kernel/arch")
	if err != nil || os.Getenv("OTOK_QEMU_GUEST") != "" {
		return false
	}
	kernel := strings.TrimSpace(string(b))
	native := map[string][]string{
		"x86_64": {"amd64", "386"}, "aarch64": {"arm64", "arm"}, "armv7l": {"arm"},
		"mips": {"mips", "mipsle"}, "mips64": {"mips64", "mips64le", "mips", "mipsle"},
	}[kernel]
	for _, a := range native {
		if a == goruntime.GOARCH {
			return false
		}
	}
	return len(native) > 0
}
