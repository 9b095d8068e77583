package main

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// openW opens p for writing without writing: permission checks for proc,
// sys and cgroup files happen at open.
func openW(p string) error {
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

// writable classifies an attempt to open p for writing: a missing file is
// blocked too (nothing there to write).
func writable(p string) result {
	err := openW(p)
	switch {
	case err == nil:
		return allowed("%s opened for writing", p)
	case errors.Is(err, unix.ENOENT):
		return blocked("%s: not present", p)
	default:
		return blocked("%s: %v", p, err)
	}
}

// firstAllowed runs checks until one is allowed.
func firstAllowed(rs ...result) result {
	var d []string
	for _, r := range rs {
		if r.allowed {
			return r
		}
		d = append(d, r.detail)
	}
	return blocked("%s", strings.Join(d, "; "))
}

func fileProbes() []probe {
	return []probe{
		{"open_block_devices", func() result {
			var tried []string
			for _, p := range []string{"/dev/sda", "/dev/vda", "/dev/mmcblk0", "/dev/mtdblock0", "/dev/loop0", "/dev/nvme0n1", "/dev/dm-0"} {
				tried = append(tried, p)
				if fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0); err == nil {
					unix.Close(fd)
					return allowed("%s opened", p)
				}
			}
			// Any block device node at all under /dev?
			var found []string
			filepath.Walk("/dev", func(p string, fi os.FileInfo, err error) error {
				if err == nil && fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0 {
					found = append(found, p)
				}
				return nil
			})
			for _, p := range found {
				if fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0); err == nil {
					unix.Close(fd)
					return allowed("%s opened", p)
				}
			}
			return blocked("no block device openable [%d nodes under /dev]", len(found))
		}},
		{"open_dev_mem", func() result { return openR("/dev/mem", "/dev/kmem", "/dev/port") }},
		{"open_dev_kmsg", func() result { return openR("/dev/kmsg") }},
		{"write_sysrq_trigger", func() result {
			fd, err := unix.Open("/proc/sysrq-trigger", unix.O_WRONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return blocked("/proc/sysrq-trigger: %v", err)
			}
			defer unix.Close(fd)
			var st unix.Stat_t
			unix.Fstat(fd, &st)
			if st.Mode&unix.S_IFMT == unix.S_IFCHR && unix.Major(uint64(st.Rdev)) == 1 && unix.Minor(uint64(st.Rdev)) == 3 {
				return blocked("/proc/sysrq-trigger is /dev/null [masked]")
			}
			return allowed("/proc/sysrq-trigger opened for writing")
		}},
		{"write_proc_sys", func() result {
			return firstAllowed(writable("/proc/sys/kernel/core_pattern"), writable("/proc/sys/vm/drop_caches"),
				writable("/proc/sys/kernel/modprobe"), writable("/proc/sys/net/ipv4/ip_forward"))
		}},
		{"write_sys", func() result {
			return firstAllowed(writable("/sys/kernel/uevent_helper"), writable("/sys/power/state"),
				writable("/sys/class/net/lo/mtu"), writable("/sys/kernel/mm/transparent_hugepage/enabled"))
		}},
		{"write_cgroup_files", cgroupWrite},
		{"setuid_under_no_new_privs", func() result {
			st, err := os.ReadFile("/proc/self/status")
			nnp := err == nil && strings.Contains(string(st), "NoNewPrivs:\t1")
			r := subVerdict("setuid")
			if !nnp {
				r.detail += "; NoNewPrivs is not set"
			}
			return r
		}},
	}
}

func openR(paths ...string) result {
	var d []string
	for _, p := range paths {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err == nil {
			unix.Close(fd)
			return allowed("%s opened", p)
		}
		d = append(d, p+": "+err.Error())
	}
	return blocked("%s", strings.Join(d, "; "))
}

// cgroupWrite tries to open for writing the container's own and its
// parents' cgroup control files (raising a limit, moving a process) as
// mounted in the container, and by their paths from /proc/self/cgroup.
func cgroupWrite() result {
	var files []string
	filepath.Walk("/sys/fs/cgroup", func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		switch filepath.Base(p) {
		case "cgroup.procs", "tasks", "cgroup.subtree_control", "memory.max", "memory.limit_in_bytes",
			"memory.memsw.limit_in_bytes", "pids.max", "cpu.max", "cpu.cfs_quota_us", "devices.allow",
			"release_agent", "notify_on_release":
			files = append(files, p)
		}
		return nil
	})
	for _, f := range files {
		if err := openW(f); err == nil {
			return allowed("%s opened for writing", f)
		}
	}
	// The parent of the container's cgroup by its host path.
	if f, err := os.Open("/proc/self/cgroup"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			parts := strings.SplitN(sc.Text(), ":", 3)
			if len(parts) != 3 {
				continue
			}
			for _, c := range strings.Split(parts[1], ",") {
				for _, d := range []string{"/sys/fs/cgroup/" + c + parts[2] + "/..", "/sys/fs/cgroup" + parts[2] + "/.."} {
					if err := openW(d + "/cgroup.procs"); err == nil {
						f.Close()
						return allowed("%s/cgroup.procs opened for writing", d)
					}
				}
			}
		}
		f.Close()
	}
	return blocked("%d cgroup control files visible, none writable", len(files))
}
