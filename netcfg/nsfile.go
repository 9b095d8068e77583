package netcfg

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The container's network namespace is bind-mounted onto
// <state>/<container>.netns while it is attached (as `ip netns` does). It
// then outlives the container's processes until Detach: the DHCP lease can
// still be released from inside it on stop, the container-side link
// removed cleanly, and a reused pid can never make otok act on another
// container's namespace. Sweep unmounts the files of dead containers.

func nsFilePath(dir, container string) string {
	return filepath.Join(dir, container+".netns")
}

// bindNetNS pins the namespace at src onto the container's .netns file
// and returns that path, or "" when it cannot (no permission to mount):
// then the caller keeps using src.
func bindNetNS(dir, container, src string) string {
	dst := nsFilePath(dir, container)
	unbindNetNS(dst) // a leftover of a crash
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o600)
	if err != nil {
		return ""
	}
	f.Close()
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		os.Remove(dst)
		return ""
	}
	return dst
}

// unbindNetNS releases a pinned namespace file (the namespace goes when
// nothing else holds it).
func unbindNetNS(path string) {
	for {
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
			break // EINVAL: not (or no longer) a mount point
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return
	}
}

// isNSFile reports whether path is one of our pinned namespace files.
func isNSFile(dir, path string) bool {
	return filepath.Dir(path) == filepath.Clean(dir) && filepath.Ext(path) == ".netns"
}
