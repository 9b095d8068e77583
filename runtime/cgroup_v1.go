package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cgroupV1 is a container's cgroup on v1 hierarchies:
// <root>/<hierarchy>/otok/<name> for each controller otok uses (name:
// CgroupName, scoped outside the default state directory).
type cgroupV1 struct {
	layout        *CgroupLayout
	name          string
	devicesCgroup bool
	// only limits the hierarchies used (nil: all of v1Controllers, as
	// for cleanup, which must find every directory).
	only map[string]bool
}

// v1Controllers are the controllers otok may create a cgroup in (when the
// host has them). Moving a process into a v1 cgroup costs an RCU grace
// period per hierarchy (milliseconds), so a container joins only those
// it needs: memory and pids always (limits, OOM, stats, cleanup), cpu and
// cpuacct with CPU limits, devices when it could create device nodes.
var v1Controllers = []string{"memory", "pids", "cpu", "cpuacct", "devices"}

// v1Needed selects the hierarchies for a container's resources.
func v1Needed(r Resources, devicesCgroup bool) map[string]bool {
	need := map[string]bool{"memory": true, "pids": true}
	if r.CPUs > 0 || r.CPUShares > 0 || r.CPUWeight > 0 {
		need["cpu"], need["cpuacct"] = true, true
	}
	if devicesCgroup {
		need["devices"] = true
	}
	return need
}

func (c *cgroupV1) dir(ctrl string) string {
	h, ok := c.layout.V1[ctrl]
	if !ok {
		return ""
	}
	return filepath.Join(c.layout.Root, h, cgroupParent, c.name)
}

func (c *cgroupV1) paths() []string {
	seen := map[string]bool{}
	var out []string
	for _, ctrl := range v1Controllers {
		if c.only != nil && !c.only[ctrl] {
			continue
		}
		if d := c.dir(ctrl); d != "" && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out
}

func (c *cgroupV1) create(r Resources, devices []Device) error {
	c.only = v1Needed(r, c.devicesCgroup)
	for _, d := range c.paths() {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("cgroup %s: %w", d, err)
		}
	}
	if d := c.dir("memory"); d != "" && r.Memory > 0 {
		if err := writeFile(d, "memory.limit_in_bytes", strconv.FormatInt(r.Memory, 10)); err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(d, "memory.memsw.limit_in_bytes")); err == nil {
			sw := r.MemorySwap
			if sw == 0 {
				sw = 2 * r.Memory // Docker's default: as much swap as memory
			}
			if err := writeFile(d, "memory.memsw.limit_in_bytes", strconv.FormatInt(sw, 10)); err != nil {
				return err
			}
		} else if r.MemorySwap > 0 && r.MemorySwap != r.Memory {
			return fmt.Errorf("cgroup %s: --memory-swap needs swap accounting (swapaccount=1)", d)
		}
	}
	if d := c.dir("cpu"); d != "" {
		if r.CPUs > 0 {
			const period = 100000
			if err := writeFile(d, "cpu.cfs_period_us", strconv.Itoa(period)); err != nil {
				return err
			}
			if err := writeFile(d, "cpu.cfs_quota_us", strconv.FormatInt(int64(r.CPUs*period), 10)); err != nil {
				return err
			}
		}
		shares := r.CPUShares
		if shares == 0 && r.CPUWeight > 0 {
			shares = weightToShares(r.CPUWeight)
		}
		if shares > 0 {
			if err := writeFile(d, "cpu.shares", strconv.FormatInt(shares, 10)); err != nil {
				return err
			}
		}
	}
	// pids.max is written by Start (see applyPidsLimit): the Go init
	// stage itself needs several threads.
	if r.PidsLimit > 0 && c.dir("pids") == "" {
		return fmt.Errorf("cgroup: --pids-limit needs the pids controller, which %s does not offer", c.layout.Root)
	}
	if d := c.dir("devices"); d != "" && c.only["devices"] {
		if err := writeFile(d, "devices.deny", "a"); err != nil {
			return err
		}
		allow := []string{"c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
			"c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm" /* tun */}
		for _, dev := range devices {
			var st unix.Stat_t
			if unix.Stat(dev.Path, &st) == nil {
				t := "c"
				if st.Mode&unix.S_IFMT == unix.S_IFBLK {
					t = "b"
				}
				allow = append(allow, fmt.Sprintf("%s %d:%d rwm", t, unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))))
			}
		}
		for _, a := range allow {
			if err := writeFile(d, "devices.allow", a); err != nil {
				return err
			}
		}
	}
	return nil
}

// weightToShares maps a v2 weight (1..10000, default 100) to v1 shares
// (2..262144, default 1024).
func weightToShares(w int64) int64 { return 2 + ((w-1)*262142)/9999 }

// sharesToWeight is the inverse mapping.
func sharesToWeight(s int64) int64 { return 1 + ((s-2)*9999)/262142 }

func (c *cgroupV1) join(pid int) error {
	for _, d := range c.paths() {
		if err := writeFile(d, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// joinThread moves the calling thread into every hierarchy the container
// uses. It writes "0" (the writer itself) to "tasks": a migration of the
// calling thread alone takes no global lock, where writing a pid waits for
// an RCU grace period.
func (c *cgroupV1) joinThread() (int, error) {
	for _, d := range c.paths() {
		if _, err := os.Stat(d); err != nil {
			continue // a hierarchy this container does not use
		}
		if err := writeFile(d, "tasks", "0"); err != nil {
			return -1, err
		}
	}
	return -1, nil
}

// enterThread moves the calling thread in, and back to where it was.
func (c *cgroupV1) enterThread() (func() error, error) {
	self, err := os.ReadFile("/proc/thread-self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	orig := map[string]string{} // hierarchy dir → cgroup path
	for _, l := range strings.Split(string(self), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) == 3 && f[1] != "" {
			orig[f[1]] = f[2]
		}
	}
	var joined []string
	back := func() error {
		var first error
		for _, h := range joined {
			p, ok := orig[h]
			if !ok {
				continue
			}
			if err := writeFile(filepath.Join(c.layout.Root, h, p), "tasks", "0"); err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	for _, d := range c.paths() {
		if err := writeFile(d, "tasks", "0"); err != nil {
			back()
			return nil, err
		}
		joined = append(joined, filepath.Base(filepath.Dir(filepath.Dir(d))))
	}
	return back, nil
}

func (c *cgroupV1) pidsMaxFile() string {
	if d := c.dir("pids"); d != "" {
		return filepath.Join(d, "pids.max")
	}
	return ""
}

func (c *cgroupV1) oomKilled() bool {
	d := c.dir("memory")
	return d != "" && readKey(d, "memory.oom_control", "oom_kill") > 0
}

func (c *cgroupV1) stats() (CgroupStats, error) {
	var s CgroupStats
	if d := c.dir("memory"); d != "" {
		s.MemoryUsage = readInt(d, "memory.usage_in_bytes")
		if l := readInt(d, "memory.limit_in_bytes"); l < 1<<62 {
			s.MemoryLimit = l
		}
		s.OOMKills = readKey(d, "memory.oom_control", "oom_kill")
	}
	if d := c.dir("cpuacct"); d != "" {
		s.CPUNanos = readInt(d, "cpuacct.usage")
	}
	if d := c.dir("pids"); d != "" {
		s.Pids = readInt(d, "pids.current")
		s.PidsLimit = readInt(d, "pids.max")
	}
	return s, nil
}

func (c *cgroupV1) destroy() error {
	var first error
	c.only = nil // remove from every hierarchy, whatever was used
	for _, d := range c.paths() {
		if err := killAndRemove(d); err != nil && first == nil {
			first = err
		}
	}
	return first
}
