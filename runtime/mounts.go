package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Paths hidden from non-privileged containers (as runc does): files get
// /dev/null bound over them, directories an empty read-only tmpfs.
var maskedPaths = []string{
	"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
	"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
	"/proc/sched_debug", "/proc/scsi", "/proc/sysrq-trigger",
	"/sys/firmware", "/sys/devices/virtual/powercap",
}

// Paths made read-only in non-privileged containers.
var readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"}

func mountf(src, dst, fstype string, flags uintptr, data string) error {
	if err := unix.Mount(src, dst, fstype, flags, data); err != nil {
		what := fstype
		if what == "" {
			what = src
		}
		return fmt.Errorf("mount %s on %s: %w", what, dst, err)
	}
	return nil
}

// setupRootfs builds the container's root in the new mount namespace: a
// size-capped tmpfs holds the overlay's upper and work directories and
// the root mount point, and the root is an overlay of the image (lower)
// and that upper, or the image alone, read-only.
//
// The tmpfs is mounted on <state>/containers, which is never removed:
// a directory that is a mount point in any namespace cannot be removed
// until that namespace's teardown has finished (an RCU grace period after
// the container exits), and rm would have to wait for it.
//
// In a user namespace the init asks the parent for an idmapped view of the
// image at <containers>/lower (see attachIDMappedLower).
func setupRootfs(cfg *initConfig, ask func(string) (byte, error)) (string, error) {
	s := &cfg.Spec
	if err := mountf("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return "", err
	}
	base := filepath.Dir(cfg.Dir)
	size := s.Rootfs.TmpfsSize
	if size == 0 {
		size = DefaultTmpfsSize
	}
	if s.Rootfs.ReadOnly || s.Rootfs.UpperDir != "" {
		size = 64 << 10 // only the root mount point (and idmapped lower)
	}
	if err := mountf("tmpfs", base, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		return "", err
	}
	root := filepath.Join(base, "rootfs")
	if err := os.Mkdir(root, 0o755); err != nil {
		return "", err
	}
	lower := s.Rootfs.Path
	if s.UserNS != nil {
		l := filepath.Join(base, "lower")
		if err := os.Mkdir(l, 0o755); err != nil {
			return "", err
		}
		answer, err := ask("lower " + l)
		if err != nil {
			return "", fmt.Errorf("idmapped image: %w", err)
		}
		if answer == 'L' {
			lower = l
		}
	}
	if s.Rootfs.ReadOnly {
		if err := mountf(lower, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return "", err
		}
		return root, nil
	}
	// The writable layer: on the tmpfs, or kept on disk (UpperDir).
	layer := base
	if s.Rootfs.UpperDir != "" {
		layer = s.Rootfs.UpperDir
	}
	upper, work := filepath.Join(layer, "upper"), filepath.Join(layer, "work")
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil && !(layer != base && errors.Is(err, os.ErrExist)) {
			return "", fmt.Errorf("writable layer: %w", err)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work)
	if s.UserNS != nil {
		opts += ",userxattr"
	}
	if err := mountf("overlay", root, "overlay", 0, opts); err != nil {
		return "", err
	}
	return root, nil
}

// mkdirIn creates path (absolute, in the container) under root without
// following symlinks out of it: each component is resolved relative to
// root with RESOLVE_IN_ROOT.
func mkdirIn(root, p string, mode os.FileMode) (string, error) {
	rel := strings.TrimPrefix(filepath.Clean("/"+p), "/")
	if rel == "" {
		return root, nil
	}
	rootFd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(rootFd)
	cur := "."
	for _, part := range strings.Split(rel, "/") {
		fd, err := unix.Openat2(rootFd, cur, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
		if err != nil {
			return "", fmt.Errorf("mkdir %s: %w", p, err)
		}
		err = unix.Mkdirat(fd, part, uint32(mode))
		unix.Close(fd)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return "", fmt.Errorf("mkdir %s: %w", p, err)
		}
		cur = filepath.Join(cur, part)
	}
	return securePath(root, rel)
}

// securePath resolves rel inside root (symlinks cannot escape) and returns
// a host path for it through /proc/self/fd of an O_PATH descriptor's
// target.
func securePath(root, rel string) (string, error) {
	if rel == "" {
		rel = "."
	}
	rootFd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(rootFd)
	fd, err := unix.Openat2(rootFd, rel, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return "", err
	}
	return p, nil
}

// touchIn creates an empty file at p inside root (for bind mount targets).
func touchIn(root, p string) (string, error) {
	if _, err := mkdirIn(root, filepath.Dir(p), 0o755); err != nil {
		return "", err
	}
	dir, err := securePath(root, strings.TrimPrefix(filepath.Dir(filepath.Clean("/"+p)), "/"))
	if err != nil {
		return "", err
	}
	full := filepath.Join(dir, filepath.Base(p))
	f, err := os.OpenFile(full, os.O_CREATE|os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		if errors.Is(err, unix.EISDIR) {
			return full, nil
		}
		return "", fmt.Errorf("create %s: %w", p, err)
	}
	f.Close()
	return full, nil
}

// setupMounts mounts /proc, /dev, /sys, volumes and tmpfs dirs inside
// root, before pivot_root. It returns the path of a fresh sysfs (where the
// cgroups go, once the parent has moved the init into its cgroup), or "".
// Without mountProc, /proc is only created: a direct start's thread is not
// in the container's pid namespace, its child mounts it (direct.go).
func setupMounts(cfg *initConfig, root string, mountProc bool) (sys string, err error) {
	s := &cfg.Spec
	const nsd = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	p, err := mkdirIn(root, "/proc", 0o555)
	if err != nil {
		return "", err
	}
	if mountProc {
		if err := mountf("proc", p, "proc", nsd, ""); err != nil {
			return "", err
		}
	}
	if err := setupDev(cfg, root); err != nil {
		return "", err
	}
	if p, err = mkdirIn(root, "/sys", 0o555); err != nil {
		return "", err
	}
	sysFlags := uintptr(nsd)
	if !s.Privileged {
		sysFlags |= unix.MS_RDONLY
	}
	if err := unix.Mount("sysfs", p, "sysfs", sysFlags, ""); err != nil {
		// A user namespace may not mount sysfs for a network namespace it
		// does not own (--net host): bind the host's instead.
		if err := mountf("/sys", p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return "", err
		}
		if !s.Privileged {
			_ = remountRO(p)
		}
	} else {
		sys = p
	}
	if s.System || s.UserNS != nil {
		// System containers expect them; in a user namespace the image's
		// own /tmp (owned by an unmapped host root) cannot be copied up.
		for _, d := range []struct {
			path, opts string
		}{{"/run", "mode=0755,size=8m"}, {"/tmp", "mode=1777,size=16m"}} {
			if p, err = mkdirIn(root, d.path, 0o755); err != nil {
				return "", err
			}
			if err := mountf("tmpfs", p, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, d.opts); err != nil {
				return "", err
			}
		}
	}
	for _, m := range s.Mounts {
		if err := bindVolume(root, m); err != nil {
			return "", err
		}
	}
	return sys, nil
}

func bindVolume(root string, m Mount) error {
	st, err := os.Stat(m.Source)
	if err != nil {
		return fmt.Errorf("volume %s: %w", m.Source, err)
	}
	var dst string
	if st.IsDir() {
		dst, err = mkdirIn(root, m.Target, 0o755)
	} else {
		dst, err = touchIn(root, m.Target)
	}
	if err != nil {
		return fmt.Errorf("volume %s:%s: %w", m.Source, m.Target, err)
	}
	if err := mountf(m.Source, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("volume %s: %w", m.Source, err)
	}
	if m.ReadOnly {
		if err := remountRO(dst); err != nil {
			return fmt.Errorf("volume %s: %w", m.Source, err)
		}
	}
	return nil
}

// remountRO makes the bind mount at p read-only, keeping the flags the
// kernel may have locked (nosuid, nodev, noexec…).
func remountRO(p string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", p, err)
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
	for _, f := range []struct{ st, ms int64 }{
		{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC}, {unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if int64(st.Flags)&f.st != 0 {
			flags |= uintptr(f.ms)
		}
	}
	return mountf("", p, "", flags, "")
}

// pivotRoot makes root the new / and detaches the old root.
func pivotRoot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("chdir %s: %w", root, err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root %s: %w", root, err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	return unix.Chdir("/")
}

// maskPathsUnder hides and write-protects the kernel interfaces under
// prefix, after pivot_root.
func maskPathsUnder(prefix string) error {
	for _, p := range maskedPaths {
		if !strings.HasPrefix(p, prefix) {
			continue
		}
		st, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if st.IsDir() {
			err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "size=0")
		} else {
			err = unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("mask %s: %w", p, err)
		}
	}
	for _, p := range readonlyPaths {
		if !strings.HasPrefix(p, prefix) {
			continue
		}
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if err := mountf(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		if err := remountRO(p); err != nil {
			return err
		}
	}
	return nil
}
