package runtime

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupParent is the cgroup (under each hierarchy) holding every container.
const cgroupParent = "otok"

// DefaultRoots are the state directories whose containers' cgroups are
// named by the container name alone (otok/NAME): the device's one
// runtime state (/var/run/otok is /run/otok).
var DefaultRoots = []string{"/run/otok", "/var/run/otok"}

// CgroupName is the cgroup (under otok/) of container name in state
// directory root: the name, or for any other state directory the name and
// a scope taken from the directory (NAME@1a2b3c4d), so that runtimes with
// their own state (test suites, a second agent) can use the same
// container names at once. The scope keeps the name as a prefix, and
// otok/*@SCOPE lists every cgroup of one state directory.
func CgroupName(root, name string) string {
	if s := CgroupScope(root); s != "" {
		return name + "@" + s
	}
	return name
}

// CgroupScope is the scope of root's cgroup names ("" for DefaultRoots).
func CgroupScope(root string) string {
	if abs, err := filepath.Abs(root); err == nil {
		root = abs
	}
	for _, d := range DefaultRoots {
		if root == d {
			return ""
		}
	}
	sum := sha256.Sum256([]byte(root))
	return hex.EncodeToString(sum[:4])
}

// cgroup is one container's cgroup, v1 (one directory per controller) or
// v2 (one directory).
type cgroup interface {
	// create makes the cgroup and applies the limits.
	create(r Resources, devices []Device) error
	// join moves process pid into the cgroup.
	join(pid int) error
	// joinThread moves the calling thread (locked) into the cgroup, so the
	// processes it forks start inside (v1); v2 returns a directory fd for
	// clone3's CLONE_INTO_CGROUP instead.
	joinThread() (cgroupFd int, err error)
	// enterThread moves the calling (locked) thread into the cgroup for
	// a clone and returns the move back (v1; a no-op on v2).
	enterThread() (back func() error, err error)
	// pidsMaxFile is the pids limit file, which the parent writes when
	// Start releases the init stage ("" without a pids controller).
	pidsMaxFile() string
	oomKilled() bool
	stats() (CgroupStats, error)
	// destroy kills what is left and removes the directories.
	destroy() error
	// paths lists the directories (for inspect).
	paths() []string
}

// CgroupStats are the counters `otok stats` shows.
type CgroupStats struct {
	MemoryUsage int64   `json:"memoryUsage"`
	MemoryLimit int64   `json:"memoryLimit"` // 0 = none
	CPUNanos    int64   `json:"cpuNanos"`
	Pids        int64   `json:"pids"`
	PidsLimit   int64   `json:"pidsLimit"` // 0 = none
	OOMKills    int64   `json:"oomKills"`
	CPUPercent  float64 `json:"cpuPercent,omitempty"`
}

// CgroupLayout is what this host offers.
type CgroupLayout struct {
	Version int    // 1 (incl. hybrid with v1 controllers) or 2
	Root    string // /sys/fs/cgroup, or the v2 mount for v2
	// V1 maps controller → hierarchy directory name ("cpu" → "cpu,cpuacct").
	V1 map[string]string
}

// DetectCgroups finds the cgroup layout: pure v2 (OpenWrt), v1, or hybrid
// (Debian with systemd's legacy mode: v1 controllers plus an empty v2 tree
// at /sys/fs/cgroup/unified, which otok leaves alone).
func DetectCgroups(root string) (*CgroupLayout, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return nil, fmt.Errorf("cgroups %s: %w", root, err)
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return &CgroupLayout{Version: 2, Root: root}, nil
	}
	l := &CgroupLayout{Version: 1, Root: root, V1: map[string]string{}}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("cgroups %s: %w", root, err)
	}
	for _, e := range ents {
		name := e.Name()
		if name == "unified" || strings.HasPrefix(name, "name=") || name == "systemd" {
			continue
		}
		full := filepath.Join(root, name)
		if e.Type()&os.ModeSymlink != 0 {
			continue // "cpu" → "cpu,cpuacct": the real directory is listed too
		}
		if _, err := os.Stat(filepath.Join(full, "cgroup.procs")); err != nil {
			continue
		}
		for _, c := range strings.Split(name, ",") {
			l.V1[c] = name
		}
	}
	if len(l.V1) == 0 {
		// Only an empty v2 tree somewhere (hybrid without controllers).
		if u := filepath.Join(root, "unified"); statfsType(u) == unix.CGROUP2_SUPER_MAGIC {
			return &CgroupLayout{Version: 2, Root: u}, nil
		}
		return nil, fmt.Errorf("cgroups %s: no controllers found", root)
	}
	return l, nil
}

func statfsType(p string) int64 {
	var st unix.Statfs_t
	if unix.Statfs(p, &st) != nil {
		return 0
	}
	return int64(st.Type)
}

// Hierarchies lists the v1 hierarchy directory names (for mounting them in
// the container).
func (l *CgroupLayout) Hierarchies() []string {
	seen := map[string]bool{}
	var out []string
	for _, h := range l.V1 {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

func (l *CgroupLayout) forContainer(name string) cgroup { return l.forSpec(name, nil) }

// forSpec is the cgroup of a container being created from s.
func (l *CgroupLayout) forSpec(name string, s *Spec) cgroup {
	if l.Version == 2 {
		return &cgroupV2{dir: filepath.Join(l.Root, cgroupParent, name), root: l.Root}
	}
	cg := &cgroupV1{layout: l, name: name}
	if s != nil {
		caps, _ := s.capabilities()
		cg.devicesCgroup = !s.Privileged && (len(s.Devices) > 0 ||
			caps&(1<<unix.CAP_MKNOD|1<<unix.CAP_SYS_ADMIN) != 0)
	}
	return cg
}

// applyPidsLimit writes a created container's pids limit, from the parent
// (in the host's cgroup namespace) just before Start releases the init
// stage. The init cannot write it itself: on cgroup v2 it is in a cgroup
// namespace rooted at its own cgroup, whose limits the kernel refuses to
// change from inside (EPERM with nsdelegate, as on OpenWrt). It is written
// this late because the Go init stage needs several threads: parked on
// the start fifo (GOMAXPROCS=1) it has all it will have, and a limit below
// the current count only stops new tasks. The process then execs as one
// task; the --init reaper's own threads are allowed on top (as in Update).
func (r *Runtime) applyPidsLimit(s *State) error {
	limit := s.Spec.Resources.PidsLimit
	if limit <= 0 {
		return nil
	}
	cg, err := r.cgroupFor(s.Spec.Name)
	if err != nil {
		return err
	}
	return writePidsLimit(cg, limit, s.Spec.Process.Init, s.Pid)
}

// writePidsLimit writes limit to cg's pids.max; with reaper (--init), plus
// the threads of the init stage (pid) and two.
func writePidsLimit(cg cgroup, limit int64, reaper bool, pid int) error {
	f := cg.pidsMaxFile()
	if f == "" {
		return fmt.Errorf("pids limit %d: no pids cgroup controller", limit)
	}
	if reaper {
		limit += int64(procThreads(pid)) + 2
	}
	return writeFile(filepath.Dir(f), filepath.Base(f), strconv.FormatInt(limit, 10))
}

// writeFile writes one cgroup control file.
func writeFile(dir, file, val string) error {
	p := filepath.Join(dir, file)
	if err := os.WriteFile(p, []byte(val), 0o644); err != nil {
		return fmt.Errorf("cgroup %s=%s: %w", p, val, unwrapPathErr(err))
	}
	return nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func readInt(dir, file string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return 0
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0
	}
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// readKey reads "key value" lines (memory.events, cpu.stat, oom_control).
func readKey(dir, file, key string) int64 {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == key {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// killAndRemove kills every process in dir and removes it, retrying while
// the kernel finishes reaping.
func killAndRemove(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: remove: %w", dir, err)
		}
		if b, rerr := os.ReadFile(filepath.Join(dir, "cgroup.procs")); rerr == nil {
			for _, f := range strings.Fields(string(b)) {
				// (never ourselves: a thread of ours may be passing through)
				if pid, _ := strconv.Atoi(f); pid > 0 && pid != os.Getpid() {
					_ = unix.Kill(pid, unix.SIGKILL)
				}
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
}
