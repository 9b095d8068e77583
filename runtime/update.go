package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Update changes the cgroup limits of a created or running container in
// place: res replaces the container's Resources (zero fields mean
// unlimited / the kernel's default, as in Spec). The new limits are
// validated first, written to the container's cgroup (v2: memory.max,
// memory.swap.max, cpu.max, cpu.weight, pids.max; v1: memory.limit_in_bytes
// and memory.memsw.limit_in_bytes in an order that keeps memsw ≥ limit at
// every step, cpu.cfs_period_us/cfs_quota_us, cpu.shares, pids.max) and
// recorded in the container's state, so inspect shows them. Lowering
// memory below what the container uses makes the kernel reclaim, and fail
// (v1: EBUSY) when it cannot. A v1 container created without CPU limits
// gets cpu and cpuacct cgroups, and its processes are moved into them.
func (r *Runtime) Update(ctx context.Context, name string, res Resources) error {
	if err := res.validate(); err != nil {
		return fmt.Errorf("container %s: update: %w", name, err)
	}
	unlock, err := r.lock(name)
	if err != nil {
		return err
	}
	defer unlock()
	s, err := r.load(name)
	if err != nil {
		return err
	}
	if s.Status == StatusStopped || !s.alive() {
		return fmt.Errorf("container %s: update: not running", name)
	}
	layout, err := r.Cgroups()
	if err != nil {
		return fmt.Errorf("container %s: update: %w", name, err)
	}
	// The reaper (--init) counts its own threads against pids.max, as the
	// init stage did when it set the limit.
	var pidsExtra int64
	if s.Spec.Process.Init && res.PidsLimit > 0 {
		pidsExtra = int64(procThreads(s.Pid)) + 2
	}
	switch cg := layout.forContainer(CgroupName(r.Root, name)).(type) {
	case *cgroupV2:
		err = cg.update(res, pidsExtra)
	case *cgroupV1:
		err = cg.update(ctx, res, pidsExtra)
		if err == nil {
			s.Cgroups = cg.existing()
		}
	}
	if err != nil {
		return fmt.Errorf("container %s: %w", name, err)
	}
	s.Spec.Resources = res
	return r.save(s)
}

// updateWrite writes a control file for Update (tests check the order).
var updateWrite = writeFile

// procThreads is the thread count of pid (0 when unknown).
func procThreads(pid int) int {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// setLimit writes one control file; an unlimited value for a file that
// does not exist (controller or feature absent) is nothing to do, a limit
// is an error.
func setLimit(dir, file, val string, unlimited bool) error {
	if _, err := os.Stat(filepath.Join(dir, file)); errors.Is(err, os.ErrNotExist) {
		if unlimited {
			return nil
		}
		return fmt.Errorf("cgroup %s: no %s (controller not available)", dir, file)
	}
	return updateWrite(dir, file, val)
}

// update writes every v2 limit of r (the ones r leaves at zero back to
// "max" or the default weight).
func (c *cgroupV2) update(r Resources, pidsExtra int64) error {
	if _, err := os.Stat(c.dir); err != nil {
		return fmt.Errorf("update: cgroup %s: %w", c.dir, unwrapPathErr(err))
	}
	// memory: memory.max and memory.swap.max are independent on v2.
	mem, swap := "max", "max"
	if r.Memory > 0 {
		mem = strconv.FormatInt(r.Memory, 10)
		switch {
		case r.MemorySwap > 0:
			swap = strconv.FormatInt(r.MemorySwap-r.Memory, 10)
		case r.MemorySwap == 0:
			swap = strconv.FormatInt(r.Memory, 10) // as create: as much swap as memory
		}
	}
	if err := setLimit(c.dir, "memory.max", mem, r.Memory == 0); err != nil {
		return fmt.Errorf("update memory: %w", err)
	}
	if _, err := os.Stat(filepath.Join(c.dir, "memory.swap.max")); err == nil {
		if err := updateWrite(c.dir, "memory.swap.max", swap); err != nil {
			return fmt.Errorf("update memory: %w", err)
		}
	} else if r.MemorySwap > 0 && r.MemorySwap != r.Memory {
		return fmt.Errorf("update memory: cgroup %s: memory-swap needs swap accounting (no memory.swap.max)", c.dir)
	}
	// otok sets no memory.high; one left above the new memory.max would
	// only be confusing, so a set one follows memory.max down.
	if h := readRaw(c.dir, "memory.high"); h != "" && h != "max" && r.Memory > 0 {
		if n, _ := strconv.ParseInt(h, 10, 64); n > r.Memory {
			if err := updateWrite(c.dir, "memory.high", mem); err != nil {
				return fmt.Errorf("update memory: %w", err)
			}
		}
	}
	// cpu
	const period = 100000
	quota := fmt.Sprintf("max %d", period)
	if r.CPUs > 0 {
		quota = fmt.Sprintf("%d %d", int64(r.CPUs*period), period)
	}
	if err := setLimit(c.dir, "cpu.max", quota, r.CPUs == 0); err != nil {
		return fmt.Errorf("update cpu: %w", err)
	}
	w := r.CPUWeight
	if w == 0 && r.CPUShares > 0 {
		w = sharesToWeight(r.CPUShares)
	}
	if err := setLimit(c.dir, "cpu.weight", weightOrDefault(w), w == 0); err != nil {
		return fmt.Errorf("update cpu: %w", err)
	}
	// pids
	pids := "max"
	if r.PidsLimit > 0 {
		pids = strconv.FormatInt(r.PidsLimit+pidsExtra, 10)
	}
	if err := setLimit(c.dir, "pids.max", pids, r.PidsLimit == 0); err != nil {
		return fmt.Errorf("update pids: %w", err)
	}
	return nil
}

func weightOrDefault(w int64) string {
	if w == 0 {
		return "100"
	}
	return strconv.FormatInt(w, 10)
}

// readRaw is a control file's trimmed content ("" when unreadable).
func readRaw(dir, file string) string {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// v1Unlimited is what v1 memory files read back as without a limit
// (PAGE_COUNTER_MAX rounded to pages); anything this large is unlimited.
const v1Unlimited = int64(1) << 62

// v1Mem reads a v1 memory limit, unlimited as -1.
func v1Mem(dir, file string) int64 {
	s := readRaw(dir, file)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n >= v1Unlimited {
		return -1
	}
	return n
}

// lessMem compares v1 memory limits with -1 as infinity.
func lessMem(a, b int64) bool {
	switch {
	case a < 0:
		return false
	case b < 0:
		return true
	}
	return a < b
}

// update writes every v1 limit of r.
func (c *cgroupV1) update(ctx context.Context, r Resources, pidsExtra int64) error {
	if d := c.dir("memory"); d != "" {
		if err := c.updateMemory(d, r); err != nil {
			return fmt.Errorf("update memory: %w", err)
		}
	}
	if err := c.updateCPU(ctx, r); err != nil {
		return fmt.Errorf("update cpu: %w", err)
	}
	if d := c.dir("pids"); d != "" {
		pids := "max"
		if r.PidsLimit > 0 {
			pids = strconv.FormatInt(r.PidsLimit+pidsExtra, 10)
		}
		if err := setLimit(d, "pids.max", pids, r.PidsLimit == 0); err != nil {
			return fmt.Errorf("update pids: %w", err)
		}
	}
	return nil
}

// updateMemory sets memory.limit_in_bytes and memory.memsw.limit_in_bytes.
// The kernel wants memsw ≥ limit after every write: going from (L0, S0) to
// (L1, S1), memsw goes first when S1 ≥ L0 (raising, or lowering memsw no
// further than the current limit), the limit first otherwise (then
// L1 ≤ S1 < L0 ≤ S0 holds throughout).
func (c *cgroupV1) updateMemory(d string, r Resources) error {
	if _, err := os.Stat(d); err != nil {
		return fmt.Errorf("cgroup %s: %w", d, unwrapPathErr(err))
	}
	limit := int64(-1)
	if r.Memory > 0 {
		limit = r.Memory
	}
	writeLimit := func() error {
		return updateWrite(d, "memory.limit_in_bytes", strconv.FormatInt(limit, 10))
	}
	if _, err := os.Stat(filepath.Join(d, "memory.memsw.limit_in_bytes")); err != nil {
		if r.MemorySwap > 0 && r.MemorySwap != r.Memory {
			return fmt.Errorf("cgroup %s: memory-swap needs swap accounting (swapaccount=1)", d)
		}
		return writeLimit()
	}
	memsw := int64(-1)
	switch {
	case r.Memory == 0, r.MemorySwap < 0:
	case r.MemorySwap > 0:
		memsw = r.MemorySwap
	default:
		memsw = 2 * r.Memory // as create: Docker's default
	}
	writeMemsw := func() error {
		return updateWrite(d, "memory.memsw.limit_in_bytes", strconv.FormatInt(memsw, 10))
	}
	cur := v1Mem(d, "memory.limit_in_bytes")
	first, second := writeMemsw, writeLimit
	if lessMem(memsw, cur) {
		first, second = writeLimit, writeMemsw
	}
	if err := first(); err != nil {
		return err
	}
	return second()
}

// updateCPU sets the CFS quota and the shares. Without a cpu cgroup yet
// (the container started without CPU limits) and with limits now, it makes
// the cpu and cpuacct cgroups and moves the container's processes in.
func (c *cgroupV1) updateCPU(ctx context.Context, r Resources) error {
	d := c.dir("cpu")
	if d == "" {
		if r.CPUs > 0 || r.CPUShares > 0 || r.CPUWeight > 0 {
			return fmt.Errorf("no cpu controller")
		}
		return nil
	}
	_, err := os.Stat(d)
	exists := err == nil
	if !exists && r.CPUs == 0 && r.CPUShares == 0 && r.CPUWeight == 0 {
		return nil
	}
	if !exists {
		for _, ctrl := range []string{"cpu", "cpuacct"} {
			if cd := c.dir(ctrl); cd != "" {
				if err := os.MkdirAll(cd, 0o755); err != nil {
					return fmt.Errorf("cgroup %s: %w", cd, err)
				}
			}
		}
	}
	const period = 100000
	if r.CPUs > 0 {
		if err := updateWrite(d, "cpu.cfs_period_us", strconv.Itoa(period)); err != nil {
			return err
		}
		if err := updateWrite(d, "cpu.cfs_quota_us", strconv.FormatInt(int64(r.CPUs*period), 10)); err != nil {
			return err
		}
	} else if err := setLimit(d, "cpu.cfs_quota_us", "-1", true); err != nil {
		return err
	}
	shares := r.CPUShares
	if shares == 0 && r.CPUWeight > 0 {
		shares = weightToShares(r.CPUWeight)
	}
	if shares == 0 {
		shares = 1024 // the kernel's default
	}
	if err := updateWrite(d, "cpu.shares", strconv.FormatInt(shares, 10)); err != nil {
		return err
	}
	if !exists {
		return c.moveInto(ctx, []string{"cpu", "cpuacct"})
	}
	return nil
}

// moveInto moves every process of the container's memory cgroup (which
// all of them join) into its cgroups of ctrls, until none is missing (a
// process forked meanwhile starts in its parent's old cgroup).
func (c *cgroupV1) moveInto(ctx context.Context, ctrls []string) error {
	src := c.dir("memory")
	if src == "" {
		src = c.dir("pids")
	}
	var dirs []string
	for _, ctrl := range ctrls {
		if d := c.dir(ctrl); d != "" && !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	done := map[string]bool{} // moved (a process forks into its own cgroup after)
	for round := 0; ; round++ {
		moved := 0
		for _, p := range strings.Fields(readRaw(src, "cgroup.procs")) {
			if done[p] {
				continue
			}
			for _, d := range dirs {
				if err := updateWrite(d, "cgroup.procs", p); err != nil {
					if errors.Is(err, syscall.ESRCH) {
						break // exited meanwhile
					}
					return err
				}
			}
			done[p] = true
			moved++
		}
		if moved == 0 {
			return nil
		}
		if round == 20 {
			return fmt.Errorf("cgroup %s: processes keep forking outside the cpu cgroup", src)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// existing lists the container's cgroup directories that exist (for the
// state after an update added hierarchies).
func (c *cgroupV1) existing() []string {
	only := c.only
	c.only = nil
	defer func() { c.only = only }()
	var out []string
	for _, d := range c.paths() {
		if _, err := os.Stat(d); err == nil {
			out = append(out, d)
		}
	}
	return out
}
