package runtime

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// attachIDMappedLower gives a user-namespace container an idmapped view
// of its image: the image's files, owned by host root, appear owned by
// the container's root (host ids shifted by the namespace's map), so the
// overlay can copy them up and the container's root owns /etc, /tmp…
// The parent clones the image mount (open_tree), idmaps it with the
// container's user namespace (mount_setattr) and attaches it at target in
// the init's mount namespace (from a discarded thread that joined it). It
// returns an error where the kernel or the filesystem cannot idmap; the
// caller then uses the image as it is.
func attachIDMappedLower(pid int, src, target string) error {
	usr, err := unix.Open(fmt.Sprintf("/proc/%d/ns/user", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(usr)
	mnt, err := unix.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(mnt)
	tree, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree %s: %w", src, err)
	}
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(usr)}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return fmt.Errorf("idmap %s: %w", src, err)
	}
	errc := make(chan error, 1)
	go func() {
		lockThread() // never unlocked: the thread leaves with the goroutine
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- err
			return
		}
		if err := unix.Setns(mnt, unix.CLONE_NEWNS); err != nil {
			errc <- fmt.Errorf("setns mnt: %w", err)
			return
		}
		if err := unix.MoveMount(tree, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			errc <- fmt.Errorf("attach idmapped image at %s: %w", target, err)
			return
		}
		errc <- nil
	}()
	return <-errc
}
