package flash

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Commit protocol: everything is written under ROOT/tmp and made durable
// before it is renamed into place: a squashfs image's few files (the
// squashfs, written with O_DIRECT where possible, the manifest, the
// import record) and their directory are fsynced one by one; an unpacked
// rootfs tree of many files is covered by one syncfs of the store's
// filesystem instead. The rename is the commit, then the parent directory
// is fsynced so the rename itself is durable.
// Removal is the reverse: rename out of images/ into tmp/, fsync, delete.
// A crash leaves either the old or the new state plus junk in tmp/, which
// the next writer sweeps.

// syncDir fsyncs a directory so renames and creations in it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// commitRename renames tmp to final and fsyncs final's parent.
func commitRename(tmp, final string) error {
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	return syncDir(filepath.Dir(final))
}

// writeFileSync creates path with data and fsyncs it; it returns the bytes
// written.
func writeFileSync(path string, data []byte, mode os.FileMode) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return 0, err
	}
	n, err := f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return int64(n), err
}

// writeFile creates path with data without syncing it; the caller syncs
// the directory's filesystem before committing.
func writeFile(path string, data []byte, mode os.FileMode) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return 0, err
	}
	n, err := f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return int64(n), err
}

// atomicWriteFile replaces path with data: temp file in the same
// directory, fsync, rename, fsync directory.
func atomicWriteFile(path string, data []byte, mode os.FileMode) (int64, error) {
	tmp := path + ".tmp"
	os.Remove(tmp)
	n, err := writeFileSync(tmp, data, mode)
	if err != nil {
		os.Remove(tmp)
		return n, err
	}
	if err := commitRename(tmp, path); err != nil {
		os.Remove(tmp)
		return n, err
	}
	return n, nil
}

// countWriter counts bytes written through it.
type countWriter struct {
	w io.Writer
	n *int64
}

func (c countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	*c.n += int64(n)
	return n, err
}

// syncFS flushes the filesystem holding p (syncfs(2)): one call makes a
// whole temp tree durable instead of an fsync per file.
func syncFS(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}
