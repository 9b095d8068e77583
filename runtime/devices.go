package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// defaultDevices is /dev's allow-list (what LXC's and runc's defaults
// allow); ptmx is a symlink to the container's own devpts instance.
var defaultDevices = []struct {
	name         string
	major, minor uint32
	mode         uint32
}{
	{"null", 1, 3, 0o666}, {"zero", 1, 5, 0o666}, {"full", 1, 7, 0o666},
	{"random", 1, 8, 0o666}, {"urandom", 1, 9, 0o666}, {"tty", 5, 0, 0o666},
}

// DevAllowList lists the entries of a container's /dev without a terminal
// (with one, "console" is added). --device adds more.
var DevAllowList = []string{"console?", "fd", "full", "mqueue", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"}

// setupDev mounts a small tmpfs on /dev and fills it with the allow-list:
// device nodes are created with mknod, or bind-mounted from the host in a
// user namespace (which cannot mknod).
func setupDev(cfg *initConfig, root string) error {
	s := &cfg.Spec
	dev, err := mkdirIn(root, "/dev", 0o755)
	if err != nil {
		return err
	}
	if err := mountf("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0755,size=64k"); err != nil {
		return err
	}
	old := unix.Umask(0)
	defer unix.Umask(old)
	for _, d := range defaultDevices {
		if err := makeDev(s.UserNS != nil, filepath.Join("/dev", d.name), filepath.Join(dev, d.name), unix.S_IFCHR|d.mode, unix.Mkdev(d.major, d.minor)); err != nil {
			return err
		}
	}
	for _, d := range s.Devices {
		var st unix.Stat_t
		if err := unix.Stat(d.Path, &st); err != nil {
			return fmt.Errorf("device %s: %w", d.Path, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR && st.Mode&unix.S_IFMT != unix.S_IFBLK {
			return fmt.Errorf("device %s: not a device node", d.Path)
		}
		target := d.Target
		if target == "" {
			target = d.Path
		}
		dir, err := mkdirIn(root, filepath.Dir(target), 0o755)
		if err != nil {
			return fmt.Errorf("device %s: %w", d.Path, err)
		}
		if err := makeDev(s.UserNS != nil, d.Path, filepath.Join(dir, filepath.Base(target)), st.Mode, uint64(st.Rdev)); err != nil {
			return err
		}
	}
	for _, l := range [][2]string{
		{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"},
	} {
		if err := os.Symlink(l[0], filepath.Join(dev, l[1])); err != nil {
			return fmt.Errorf("/dev/%s: %w", l[1], err)
		}
	}
	type sub struct{ name, fstype, opts string }
	for _, m := range []sub{
		{"pts", "devpts", "newinstance,ptmxmode=0666,mode=0620"},
		{"shm", "tmpfs", "mode=1777,size=65536k"},
		{"mqueue", "mqueue", ""},
	} {
		p := filepath.Join(dev, m.name)
		if err := os.Mkdir(p, 0o755); err != nil {
			return err
		}
		flags := uintptr(unix.MS_NOSUID | unix.MS_NOEXEC)
		if m.name != "pts" {
			flags |= unix.MS_NODEV
		}
		if err := mountf(m.fstype, p, m.fstype, flags, m.opts); err != nil {
			return err
		}
	}
	if s.Process.Terminal {
		// The console is the container's terminal (the pty slave on fd 0).
		p := filepath.Join(dev, "console")
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			return err
		}
		// Bind by path: the fd's mount belongs to the parent's mount
		// namespace, which bind mounts refuse; the path resolves to our
		// copy of it.
		src, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", cfg.consoleFd))
		if err != nil {
			return fmt.Errorf("/dev/console: %w", err)
		}
		if err := mountf(src, p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("/dev/console: %w", err)
		}
	}
	return nil
}

func makeDev(bind bool, host, path string, mode uint32, rdev uint64) error {
	if !bind {
		err := unix.Mknod(path, mode, int(rdev))
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("mknod %s: %w", path, err)
		}
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		return err
	}
	return mountf(host, path, "", unix.MS_BIND, "")
}

// mountCgroups mounts the container's cgroups read-only at
// /sys/fs/cgroup (the cgroup namespace makes its own cgroup the root).
// Failures are not fatal: the container just does not see its cgroups.
func mountCgroups(cfg *initConfig, sys string) {
	dir := filepath.Join(sys, "fs", "cgroup")
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY
	if cfg.CgroupVersion == 2 {
		_ = unix.Mount("cgroup2", dir, "cgroup2", flags, "")
		return
	}
	ctrls, ok := prepareCgroupsV1(cfg, sys)
	if !ok {
		return
	}
	for _, c := range ctrls {
		_ = unix.Mount("cgroup", filepath.Join(dir, c), "cgroup", flags, c)
	}
	_ = unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

// prepareCgroupsV1 mounts the tmpfs for the v1 hierarchies at
// sys/fs/cgroup — only those the container has a cgroup in: each mount is
// one more to tear down at exit — and makes their directories. It returns
// the controllers to mount there, and false if there is no tmpfs.
func prepareCgroupsV1(cfg *initConfig, sys string) ([]string, bool) {
	if len(cfg.CgroupV1) == 0 {
		return nil, false
	}
	dir := filepath.Join(sys, "fs", "cgroup")
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755,size=16k"); err != nil {
		return nil, false
	}
	var out []string
	for _, c := range cfg.CgroupV1 {
		if os.Mkdir(filepath.Join(dir, c), 0o755) == nil {
			out = append(out, c)
		}
	}
	return out, true
}
