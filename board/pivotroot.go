package board

import (
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// checkPivotRoot reports whether containers can pivot_root. It fails when
// the host root is the initramfs (rootfs/ramfs), where the kernel refuses
// pivot_root. As root, it also really pivots, in a throwaway mount
// namespace on a locked thread that Go discards afterwards.
func checkPivotRoot(procRoot string, probe bool) Feature {
	f := Feature{Group: "security", Name: "pivot_root", Required: true}
	for _, m := range readMountinfo(filepath.Join(procRoot, "self/mountinfo")) {
		if m.Point == "/" && (m.FSType == "rootfs" || m.FSType == "ramfs") {
			f.Status, f.Detail = Limited, "host root is "+m.FSType+" (initramfs): pivot_root is refused there"
			f.Hint = "switch_root to a tmpfs first; otok falls back to MS_MOVE + chroot"
		}
	}
	if !probe {
		if f.Status == "" {
			f.Status, f.Detail = OK, "not probed (needs root)"
		}
		return f
	}
	if err := probePivotRoot(); err != nil {
		f.Status, f.Detail = Missing, "probe: "+err.Error()
		if f.Hint == "" {
			f.Hint = "the kernel refused pivot_root into a tmpfs in a new mount namespace"
		}
		return f
	}
	f.Status, f.Detail = OK, "pivoted into a tmpfs in a scratch mount namespace"
	return f
}

func probePivotRoot() error {
	ch := make(chan error, 1)
	go func() {
		// Never unlocked: Go ends the thread with the goroutine. If the
		// thread is the process's main thread, Go parks it forever instead,
		// and /proc/self shows that thread's namespaces — so it goes back
		// to the original mount namespace first.
		runtime.LockOSThread()
		back, err := saveNamespace("mnt")
		if err != nil {
			ch <- err
			return
		}
		err = pivotInScratchNamespace()
		back() // before answering: the caller may look at /proc right away
		ch <- err
	}()
	return <-ch
}

func pivotInScratchNamespace() error {
	if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
		return os.NewSyscallError("unshare(CLONE_NEWNS)", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_PRIVATE|unix.MS_REC, ""); err != nil {
		return os.NewSyscallError("make / private", err)
	}
	// /tmp exists everywhere; the tmpfs over it is private to this namespace.
	const dir = "/tmp"
	if err := unix.Mount("otok-probe", dir, "tmpfs", 0, "size=64k"); err != nil {
		return os.NewSyscallError("mount tmpfs", err)
	}
	if err := unix.Mkdir(dir+"/old", 0o700); err != nil {
		return os.NewSyscallError("mkdir", err)
	}
	if err := unix.PivotRoot(dir, dir+"/old"); err != nil {
		return os.NewSyscallError("pivot_root", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return os.NewSyscallError("chdir", err)
	}
	if err := unix.Unmount("/old", unix.MNT_DETACH); err != nil {
		return os.NewSyscallError("detach old root", err)
	}
	return nil
}
