package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cgroupV2 is a container's cgroup on the unified hierarchy:
// <root>/otok/<name> (name: CgroupName).
type cgroupV2 struct {
	root string
	dir  string
}

func (c *cgroupV2) paths() []string { return []string{c.dir} }

// v2Controllers are enabled for otok's subtree when available.
var v2Controllers = []string{"cpu", "memory", "pids", "io"}

func (c *cgroupV2) create(r Resources, _ []Device) error {
	parent := filepath.Dir(c.dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("cgroup %s: %w", parent, err)
	}
	// Enable controllers down the path: root → otok.
	for _, d := range []string{c.root, parent} {
		avail, _ := os.ReadFile(filepath.Join(d, "cgroup.controllers"))
		have := map[string]bool{}
		for _, f := range strings.Fields(string(avail)) {
			have[f] = true
		}
		on, _ := os.ReadFile(filepath.Join(d, "cgroup.subtree_control"))
		enabled := map[string]bool{}
		for _, f := range strings.Fields(string(on)) {
			enabled[strings.TrimPrefix(f, "+")] = true
		}
		var enable []string
		for _, ctrl := range v2Controllers {
			// Already enabled (every container after the first): no
			// write, which would take the kernel's cgroup lock.
			if have[ctrl] && !enabled[ctrl] {
				enable = append(enable, "+"+ctrl)
			}
		}
		if len(enable) > 0 {
			if err := writeFile(d, "cgroup.subtree_control", strings.Join(enable, " ")); err != nil {
				return err
			}
		}
	}
	if r.PidsLimit > 0 && !v2Enabled(parent, "pids") {
		// (pids.max is written by Start, see applyPidsLimit)
		return fmt.Errorf("cgroup %s: --pids-limit needs the pids controller, which %s does not offer", parent, c.root)
	}
	if err := os.Mkdir(c.dir, 0o755); err != nil && !os.IsExist(err) {
		return fmt.Errorf("cgroup %s: %w", c.dir, err)
	}
	for _, kv := range v2Settings(r) {
		if err := writeFile(c.dir, kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// v2Enabled tells whether controller ctrl is enabled for dir's children.
func v2Enabled(dir, ctrl string) bool {
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	for _, f := range strings.Fields(string(b)) {
		if strings.TrimPrefix(f, "+") == ctrl {
			return true
		}
	}
	return false
}

// v2Settings translates Resources into v2 control files, in write order.
func v2Settings(r Resources) [][2]string {
	var out [][2]string
	if r.Memory > 0 {
		out = append(out, [2]string{"memory.max", strconv.FormatInt(r.Memory, 10)})
		switch {
		case r.MemorySwap > 0:
			out = append(out, [2]string{"memory.swap.max", strconv.FormatInt(r.MemorySwap-r.Memory, 10)})
		case r.MemorySwap < 0:
			out = append(out, [2]string{"memory.swap.max", "max"})
		default:
			out = append(out, [2]string{"memory.swap.max", strconv.FormatInt(r.Memory, 10)})
		}
	}
	if r.CPUs > 0 {
		const period = 100000
		out = append(out, [2]string{"cpu.max", fmt.Sprintf("%d %d", int64(r.CPUs*period), period)})
	}
	w := r.CPUWeight
	if w == 0 && r.CPUShares > 0 {
		w = sharesToWeight(r.CPUShares)
	}
	if w > 0 {
		out = append(out, [2]string{"cpu.weight", strconv.FormatInt(w, 10)})
	}
	return out
}

func (c *cgroupV2) join(pid int) error {
	return writeFile(c.dir, "cgroup.procs", strconv.Itoa(pid))
}

func (c *cgroupV2) joinThread() (int, error) {
	fd, err := unix.Open(c.dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("cgroup %s: %w", c.dir, err)
	}
	return fd, nil
}

func (c *cgroupV2) enterThread() (func() error, error) {
	return func() error { return nil }, nil // clone3 CLONE_INTO_CGROUP instead
}

func (c *cgroupV2) pidsMaxFile() string { return filepath.Join(c.dir, "pids.max") }

func (c *cgroupV2) oomKilled() bool { return readKey(c.dir, "memory.events", "oom_kill") > 0 }

func (c *cgroupV2) stats() (CgroupStats, error) {
	return CgroupStats{
		MemoryUsage: readInt(c.dir, "memory.current"),
		MemoryLimit: readInt(c.dir, "memory.max"),
		CPUNanos:    readKey(c.dir, "cpu.stat", "usage_usec") * 1000,
		Pids:        readInt(c.dir, "pids.current"),
		PidsLimit:   readInt(c.dir, "pids.max"),
		OOMKills:    readKey(c.dir, "memory.events", "oom_kill"),
	}, nil
}

func (c *cgroupV2) destroy() error {
	if _, err := os.Stat(c.dir); err != nil {
		return nil
	}
	_ = os.WriteFile(filepath.Join(c.dir, "cgroup.kill"), []byte("1"), 0o644)
	return killAndRemove(c.dir)
}
