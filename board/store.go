package board

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// minStoreFree is the least free space for a useful store: one small image
// plus the default reserve.
const minStoreFree = 8 << 20

// fsTypeNames names the statfs magic numbers seen on routers and hosts.
var fsTypeNames = map[int64]string{
	0xEF53:     "ext4",
	0x24051905: "ubifs",
	0x72b6:     "jffs2",
	0xF2F52010: "f2fs",
	0x01021994: "tmpfs",
	0x794c7630: "overlay",
	0x73717368: "squashfs",
	0x9123683E: "btrfs",
	0x58465342: "xfs",
	0x4d44:     "vfat",
	0x858458f6: "ramfs",
	0x6969:     "nfs",
}

// FSTypeName names a statfs f_type, or gives it in hex.
func FSTypeName(t int64) string {
	if n, ok := fsTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("0x%x", t)
}

// StoreSpace describes the filesystem under a (possibly not yet created)
// store path.
type StoreSpace struct {
	Path     string // the directory that exists: the path or its nearest parent
	FSType   string
	Free     uint64 // bytes available to root
	Total    uint64
	ReadOnly bool
}

// StatStore finds the nearest existing directory of path and statfs'es it.
func StatStore(path string) (*StoreSpace, error) {
	p := filepath.Clean(path)
	for {
		if _, err := os.Stat(p); err == nil {
			break
		}
		parent := filepath.Dir(p)
		if parent == p {
			return nil, fmt.Errorf("store %s: no existing parent directory", path)
		}
		p = parent
	}
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return nil, fmt.Errorf("store %s: statfs %s: %w", path, p, err)
	}
	return &StoreSpace{
		Path:     p,
		FSType:   FSTypeName(int64(st.Type)),
		Free:     uint64(st.Bfree) * uint64(st.Bsize),
		Total:    uint64(st.Blocks) * uint64(st.Bsize),
		ReadOnly: st.Flags&unix.ST_RDONLY != 0,
	}, nil
}

func checkStore(path string) Feature {
	f := Feature{Group: "storage", Name: "store", Required: true}
	if path == "" {
		f.Status, f.Detail = Limited, "no store path configured"
		return f
	}
	s, err := StatStore(path)
	if err != nil {
		f.Status, f.Detail = Missing, err.Error()
		return f
	}
	f.Detail = fmt.Sprintf("%s on %s (%s): %s free of %s", path, s.Path, s.FSType, HumanBytes(s.Free), HumanBytes(s.Total))
	switch {
	case s.ReadOnly:
		f.Status, f.Hint = Missing, "read-only filesystem: choose a writable store (--store, or the agent's 'option store')"
	case s.Free < minStoreFree:
		f.Status, f.Hint = Limited, fmt.Sprintf("less than %s free: images will not fit; use an extroot or USB storage", HumanBytes(minStoreFree))
	case s.FSType == "tmpfs" || s.FSType == "ramfs":
		f.Status, f.Hint = Limited, "store in RAM: images are lost at reboot"
	default:
		f.Status = OK
	}
	return f
}

// HumanBytes formats a byte count with binary units: "7.5 MiB".
func HumanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
