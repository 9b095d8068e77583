package runtime

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeV2 makes a cgroup2-like tree in a temp dir.
func fakeV2(t *testing.T) string {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpuset cpu io memory pids\n"), 0o644)
	os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), nil, 0o644)
	return root
}

func TestCgroupV2Create(t *testing.T) {
	root := fakeV2(t)
	l := &CgroupLayout{Version: 2, Root: root}
	cg := l.forContainer("web")
	// The parent's cgroup.controllers appears when the kernel makes it;
	// the fake tree needs it before create enables controllers there.
	os.MkdirAll(filepath.Join(root, "otok"), 0o755)
	os.WriteFile(filepath.Join(root, "otok", "cgroup.controllers"), []byte("cpu io memory pids\n"), 0o644)
	r := Resources{Memory: 64 << 20, MemorySwap: 96 << 20, CPUs: 0.5, CPUShares: 512, PidsLimit: 100}
	if err := cg.create(r, nil); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		return strings.TrimSpace(string(b))
	}
	for p, want := range map[string]string{
		"cgroup.subtree_control":      "+cpu +memory +pids +io",
		"otok/cgroup.subtree_control": "+cpu +memory +pids +io",
		"otok/web/memory.max":         "67108864",
		"otok/web/memory.swap.max":    "33554432",
		"otok/web/cpu.max":            "50000 100000",
		"otok/web/cpu.weight":         "20",
	} {
		if got := read(p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if got := cg.paths(); len(got) != 1 || got[0] != filepath.Join(root, "otok", "web") {
		t.Errorf("paths %v", got)
	}
	// The next container finds the controllers enabled (as the kernel
	// lists them: no "+") and writes no subtree_control.
	for _, d := range []string{"", "otok"} {
		os.WriteFile(filepath.Join(root, d, "cgroup.subtree_control"), []byte("cpu io memory pids\n"), 0o644)
	}
	if err := l.forContainer("web2").create(Resources{}, nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"cgroup.subtree_control", "otok/cgroup.subtree_control"} {
		if got := read(p); got != "cpu io memory pids" {
			t.Errorf("%s rewritten: %q", p, got)
		}
	}
	// OOM and stats come from memory.events, memory.current, cpu.stat.
	d := filepath.Join(root, "otok", "web")
	os.WriteFile(filepath.Join(d, "memory.events"), []byte("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"), 0o644)
	os.WriteFile(filepath.Join(d, "memory.current"), []byte("1234\n"), 0o644)
	os.WriteFile(filepath.Join(d, "cpu.stat"), []byte("usage_usec 2000\nuser_usec 1000\n"), 0o644)
	os.WriteFile(filepath.Join(d, "pids.current"), []byte("7\n"), 0o644)
	if err := writePidsLimit(cg, 100, false, 0); err != nil { // (Start's job)
		t.Fatal(err)
	}
	if !cg.oomKilled() {
		t.Error("oom_kill 1 not seen")
	}
	st, _ := cg.stats()
	if st.MemoryUsage != 1234 || st.CPUNanos != 2000000 || st.Pids != 7 || st.PidsLimit != 100 || st.MemoryLimit != 64<<20 || st.OOMKills != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestV2Settings(t *testing.T) {
	cases := []struct {
		r    Resources
		want string
	}{
		{Resources{}, ""},
		{Resources{Memory: 100 << 20}, "memory.max=104857600 memory.swap.max=104857600"},
		{Resources{Memory: 100 << 20, MemorySwap: -1}, "memory.max=104857600 memory.swap.max=max"},
		{Resources{CPUs: 1.5}, "cpu.max=150000 100000"},
		{Resources{CPUWeight: 300}, "cpu.weight=300"},
		{Resources{PidsLimit: 5}, ""}, // written by Start
	}
	for _, c := range cases {
		var parts []string
		for _, kv := range v2Settings(c.r) {
			parts = append(parts, kv[0]+"="+kv[1])
		}
		if got := strings.Join(parts, " "); got != c.want {
			t.Errorf("%+v: %q, want %q", c.r, got, c.want)
		}
	}
}

func TestCgroupV1Layout(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"memory", "pids", "cpu,cpuacct", "devices", "unified", "systemd"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
		os.WriteFile(filepath.Join(root, d, "cgroup.procs"), nil, 0o644)
	}
	os.Symlink("cpu,cpuacct", filepath.Join(root, "cpu"))
	l, err := DetectCgroups(root)
	if err != nil {
		t.Fatal(err)
	}
	if l.Version != 1 || l.V1["cpu"] != "cpu,cpuacct" || l.V1["cpuacct"] != "cpu,cpuacct" || l.V1["memory"] != "memory" {
		t.Fatalf("layout %+v", l)
	}
	if _, ok := l.V1["unified"]; ok {
		t.Error("the hybrid v2 tree was taken for a controller")
	}
	// No limits: memory and pids only (each v1 migration costs a grace
	// period); CPU limits add cpu,cpuacct once.
	cg := l.forContainer("a").(*cgroupV1)
	cg.only = v1Needed(Resources{}, false)
	if got := len(cg.paths()); got != 2 {
		t.Errorf("no limits: %d hierarchies %v", got, cg.paths())
	}
	cg.only = v1Needed(Resources{CPUs: 1}, true)
	if got := len(cg.paths()); got != 4 {
		t.Errorf("cpu + devices: %d hierarchies %v", got, cg.paths())
	}
	// runc's conversion (shares 1024 → weight 39) and its inverse.
	if sharesToWeight(1024) != 39 || sharesToWeight(2) != 1 || sharesToWeight(262144) != 10000 || weightToShares(1) != 2 || weightToShares(10000) != 262144 {
		t.Errorf("weight/shares mapping: %d %d", weightToShares(100), sharesToWeight(1024))
	}
}

// TestPidsLimitFromParent: the parent writes pids.max (the init stage, in
// a cgroup namespace rooted at its cgroup, may not on v2): the limit
// itself, plus the init stage's threads and two for the --init reaper.
func TestPidsLimitFromParent(t *testing.T) {
	root := fakeV2(t)
	os.MkdirAll(filepath.Join(root, "otok"), 0o755)
	os.WriteFile(filepath.Join(root, "otok", "cgroup.controllers"), []byte("memory pids\n"), 0o644)
	l := &CgroupLayout{Version: 2, Root: root}
	cg := l.forContainer("p")
	if err := cg.create(Resources{PidsLimit: 8}, nil); err != nil {
		t.Fatal(err)
	}
	// create leaves pids.max alone: the init stage still needs threads.
	if _, err := os.Stat(cg.pidsMaxFile()); err == nil {
		t.Fatal("create wrote pids.max")
	}
	read := func() string {
		b, _ := os.ReadFile(cg.pidsMaxFile())
		return string(b)
	}
	if err := writePidsLimit(cg, 8, false, os.Getpid()); err != nil || read() != "8" {
		t.Errorf("pids.max %q (%v), want 8", read(), err)
	}
	want := strconv.Itoa(8 + procThreads(os.Getpid()) + 2)
	if err := writePidsLimit(cg, 8, true, os.Getpid()); err != nil || read() != want {
		t.Errorf("--init: pids.max %q (%v), want %s", read(), err, want)
	}
	// Through Runtime.applyPidsLimit, from a container's state.
	r := &Runtime{Root: "/var/run/otok", CgroupRoot: root} // a default root: otok/NAME
	r.layoutOnce.Do(func() { r.layout = l })
	s := &State{Spec: Spec{Name: "p", Resources: Resources{PidsLimit: 3}}, Pid: os.Getpid()}
	if err := r.applyPidsLimit(s); err != nil || read() != "3" {
		t.Errorf("applyPidsLimit: pids.max %q (%v), want 3", read(), err)
	}
	s.Spec.Resources.PidsLimit = 0
	if err := r.applyPidsLimit(s); err != nil || read() != "3" {
		t.Errorf("no limit changed pids.max: %q (%v)", read(), err)
	}
}

// TestPidsLimitNoController: a --pids-limit the host cannot enforce is an
// error at create (a v2 tree without the pids controller, as the hybrid
// host's), not a container without a limit.
func TestPidsLimitNoController(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("hugetlb\n"), 0o644)
	os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), nil, 0o644)
	cg := (&CgroupLayout{Version: 2, Root: root}).forContainer("n")
	if err := cg.create(Resources{PidsLimit: 8}, nil); err == nil || !strings.Contains(err.Error(), "pids controller") {
		t.Errorf("v2 without pids: %v", err)
	}
	if err := cg.create(Resources{}, nil); err != nil {
		t.Errorf("v2 without pids, no limit: %v", err)
	}
	v1 := t.TempDir()
	os.MkdirAll(filepath.Join(v1, "memory"), 0o755)
	os.WriteFile(filepath.Join(v1, "memory", "cgroup.procs"), nil, 0o644)
	l, err := DetectCgroups(v1)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.forContainer("n").create(Resources{PidsLimit: 8}, nil); err == nil || !strings.Contains(err.Error(), "pids controller") {
		t.Errorf("v1 without pids: %v", err)
	}
	if err := writePidsLimit(l.forContainer("n"), 8, false, 0); err == nil {
		t.Error("pids limit written without a pids hierarchy")
	}
}

// TestCgroupName: the device's state directory names cgroups by container
// name; any other gets a scope of its own, stable, with the name first.
func TestCgroupName(t *testing.T) {
	for _, d := range []string{"/run/otok", "/var/run/otok", "/run/otok/"} {
		if got := CgroupName(d, "web"); got != "web" {
			t.Errorf("CgroupName(%s) = %s, want web", d, got)
		}
	}
	a, b := CgroupName("/tmp/s1", "web"), CgroupName("/tmp/s2", "web")
	if a == b || !strings.HasPrefix(a, "web@") || len(a) != len("web@")+8 {
		t.Errorf("scoped names %s, %s", a, b)
	}
	if again := CgroupName("/tmp/s1/", "web"); again != a {
		t.Errorf("not stable: %s then %s", a, again)
	}
	if s := CgroupScope("/tmp/s1"); a != "web@"+s {
		t.Errorf("scope %s, name %s", s, a)
	}
}
