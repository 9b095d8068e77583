package agent

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// resolveUser maps "UID[:GID]" or "NAME[:GROUP]" to ids, names looked up
// in the image's /etc/passwd and /etc/group. The files are opened inside
// rootfs (RESOLVE_IN_ROOT), so an image's symlinks cannot make the agent
// read host files. Without a group, the user's primary group (or the uid).
func resolveUser(rootfs, user string) (uid, gid int, err error) {
	if user == "" {
		return 0, 0, nil
	}
	u, g, hasG := strings.Cut(user, ":")
	gid = -1
	if n, err := strconv.Atoi(u); err == nil && n >= 0 {
		uid = n
		if ent, ok := lookupDB(rootfs, "etc/passwd", func(f []string) bool { return f[2] == u }); ok {
			gid, _ = strconv.Atoi(ent[3])
		}
	} else {
		ent, ok := lookupDB(rootfs, "etc/passwd", func(f []string) bool { return f[0] == u })
		if !ok {
			return 0, 0, fmt.Errorf("user %s: not in the image's /etc/passwd", u)
		}
		uid, _ = strconv.Atoi(ent[2])
		gid, _ = strconv.Atoi(ent[3])
	}
	if hasG {
		if n, err := strconv.Atoi(g); err == nil && n >= 0 {
			gid = n
		} else {
			ent, ok := lookupDB(rootfs, "etc/group", func(f []string) bool { return f[0] == g })
			if !ok {
				return 0, 0, fmt.Errorf("group %s: not in the image's /etc/group", g)
			}
			gid, _ = strconv.Atoi(ent[2])
		}
	}
	if gid < 0 {
		gid = uid
	}
	return uid, gid, nil
}

// lookupDB finds the first colon-separated line of rootfs/rel with at
// least 4 fields that match accepts.
func lookupDB(rootfs, rel string, match func([]string) bool) ([]string, bool) {
	root, err := os.Open(rootfs)
	if err != nil {
		return nil, false
	}
	defer root.Close()
	fd, err := unix.Openat2(int(root.Fd()), rel, &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
	if errors.Is(err, unix.ENOSYS) {
		// no openat2 (kernel < 5.6, qemu-user): walk without following
		// any symlink
		fd, err = openNoFollow(int(root.Fd()), rel)
	}
	if err != nil {
		return nil, false
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(sc.Text(), ":")
		if len(fs) >= 4 && match(fs) {
			return fs, true
		}
	}
	return nil, false
}

// openNoFollow opens dirfd/rel refusing symlinks in every component.
func openNoFollow(dirfd int, rel string) (int, error) {
	parts := strings.Split(rel, "/")
	cur := dirfd
	for i, p := range parts {
		flags := unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW
		if i < len(parts)-1 {
			flags |= unix.O_DIRECTORY
		}
		fd, err := unix.Openat(cur, p, flags, 0)
		if cur != dirfd {
			unix.Close(cur)
		}
		if err != nil {
			return -1, err
		}
		cur = fd
	}
	return cur, nil
}
