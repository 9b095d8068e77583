package flash

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Squashfs loop mounts shared by containers.
//
// Layout under runDir (tmpfs, e.g. /run/otok):
//
//	images/.lock                     flock serialising every change below
//	images/<digest>/                 the read-only mount point
//	images/.holders/<digest>/<user>  one empty file per user of the mount
//	images/.digests/<key>            cached sha256 of a file, key = dev-ino-size-mtime
//
// Holders are files so they outlive the CLI process that acquired them;
// SweepSquashfs removes the ones whose user is gone.

const mountMagic = 0x73717368 // "hsqs" little endian

// checkSquashfs verifies that f starts with a squashfs 4 superblock and is
// not shorter than the superblock says.
func checkSquashfs(f *os.File, path string) error {
	var sb [96]byte
	n, err := io.ReadFull(f, sb[:])
	if n < 4 || binary.LittleEndian.Uint32(sb[:4]) != mountMagic {
		return fmt.Errorf("image %s: not a squashfs file", path)
	}
	if err != nil {
		return fmt.Errorf("image %s: truncated squashfs (superblock incomplete)", path)
	}
	if major := binary.LittleEndian.Uint16(sb[28:30]); major != 4 {
		return fmt.Errorf("image %s: squashfs version %d, want 4", path, major)
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("image %s: %w", path, err)
	}
	if used := binary.LittleEndian.Uint64(sb[40:48]); used > uint64(st.Size()) {
		return fmt.Errorf("image %s: truncated squashfs (%d of %d bytes)", path, st.Size(), used)
	}
	return nil
}

func imagesDir(runDir string) string { return filepath.Join(runDir, "images") }

// lockImages takes the exclusive lock over runDir/images.
func lockImages(ctx context.Context, runDir string) (unlock func(), err error) {
	dir := imagesDir(runDir)
	if err := os.MkdirAll(filepath.Join(dir, ".holders"), 0o711); err != nil {
		return nil, fmt.Errorf("images %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("images %s: lock: %w", dir, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("images %s: lock: %w", dir, err)
		}
		if ctx.Err() != nil {
			f.Close()
			return nil, fmt.Errorf("images %s: lock: %w", dir, ctx.Err())
		}
		sleepCtx(ctx)
	}
}

// fileDigest returns the sha256 of f, cached by identity (device, inode,
// size, mtime) so repeated runs of the same file do not rehash it.
func fileDigest(ctx context.Context, runDir string, f *os.File) (string, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return "", err
	}
	key := fmt.Sprintf("%x-%x-%x-%d.%d", st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec)
	cache := filepath.Join(imagesDir(runDir), ".digests", key)
	if b, err := os.ReadFile(cache); err == nil && len(b) == 64 {
		return string(b), nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, st.Size)); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	d := hex.EncodeToString(h.Sum(nil))
	if os.MkdirAll(filepath.Dir(cache), 0o700) == nil {
		_ = os.WriteFile(cache, []byte(d), 0o600)
	}
	return d, nil
}

// isMountPoint reports whether dir is the root of a mount (its device
// differs from its parent's).
func isMountPoint(dir string) bool {
	var a, b unix.Stat_t
	if unix.Lstat(dir, &a) != nil || unix.Lstat(filepath.Dir(dir), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

func validName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}

// AcquireSquashfs mounts the squashfs file read-only at
// runDir/images/<digest>/ (once per digest; later callers share the mount)
// and records user as a holder. digest "" means: compute the sha256 of the
// file (cached per file identity). It returns the mount directory.
func AcquireSquashfs(ctx context.Context, runDir, file, digest, user string) (string, error) {
	if !validName(user) {
		return "", fmt.Errorf("image %s: invalid holder name %q", file, user)
	}
	f, err := os.OpenFile(file, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", file, unwrapPath(err))
	}
	defer f.Close() // after the mount: the loop device holds its own reference
	if err := checkSquashfs(f, file); err != nil {
		return "", err
	}
	if digest == "" {
		if digest, err = fileDigest(ctx, runDir, f); err != nil {
			return "", fmt.Errorf("image %s: digest: %w", file, err)
		}
	}
	if !validName(digest) {
		return "", fmt.Errorf("image %s: invalid digest %q", file, digest)
	}
	unlock, err := lockImages(ctx, runDir)
	if err != nil {
		return "", err
	}
	defer unlock()
	dir := filepath.Join(imagesDir(runDir), digest)
	holders := filepath.Join(imagesDir(runDir), ".holders", digest)
	if err := os.MkdirAll(holders, 0o700); err != nil {
		return "", fmt.Errorf("image %s: %w", file, err)
	}
	if err := os.WriteFile(filepath.Join(holders, user), nil, 0o600); err != nil {
		return "", fmt.Errorf("image %s: record holder: %w", file, err)
	}
	if isMountPoint(dir) {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		os.Remove(filepath.Join(holders, user))
		return "", fmt.Errorf("image %s: %w", file, err)
	}
	if err := mountSquashfs(ctx, f, dir); err != nil {
		os.Remove(filepath.Join(holders, user))
		os.Remove(holders)
		os.Remove(dir)
		return "", fmt.Errorf("image %s: %w", file, err)
	}
	return dir, nil
}

func mountSquashfs(ctx context.Context, f *os.File, dir string) error {
	dev, loop, err := attachLoop(ctx, f)
	if err != nil {
		return err
	}
	defer loop.Close()
	if err := unix.Mount(dev, dir, "squashfs", unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
		detachLoop(loop)
		if errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("mount %s: corrupt or truncated squashfs: %w", dev, err)
		}
		if errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("mount %s: kernel has no squashfs support: %w", dev, err)
		}
		return fmt.Errorf("mount %s on %s: %w", dev, dir, err)
	}
	return nil
}

// ReleaseSquashfs drops user's hold on the mount of digest and unmounts it
// (freeing the loop device) when no holder remains.
func ReleaseSquashfs(runDir, digest, user string) error {
	if !validName(digest) || !validName(user) {
		return fmt.Errorf("image %s: invalid digest or holder %q", digest, user)
	}
	unlock, err := lockImages(context.Background(), runDir)
	if err != nil {
		return err
	}
	defer unlock()
	holders := filepath.Join(imagesDir(runDir), ".holders", digest)
	if err := os.Remove(filepath.Join(holders, user)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("image %s: drop holder %s: %w", digest, user, err)
	}
	return unmountIfUnused(runDir, digest)
}

// unmountIfUnused must be called with the images lock held.
func unmountIfUnused(runDir, digest string) error {
	holders := filepath.Join(imagesDir(runDir), ".holders", digest)
	if names, _ := readNames(holders); len(names) > 0 {
		return nil
	}
	os.Remove(holders)
	dir := filepath.Join(imagesDir(runDir), digest)
	if isMountPoint(dir) {
		if err := unix.Unmount(dir, 0); err != nil {
			if !errors.Is(err, unix.EBUSY) {
				return fmt.Errorf("image %s: unmount: %w", digest, err)
			}
			// Still referenced from a dying mount namespace: detach
			// lazily; autoclear frees the loop device when it goes.
			if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
				return fmt.Errorf("image %s: unmount: %w", digest, err)
			}
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("image %s: remove mount point: %w", digest, err)
	}
	return nil
}

// SweepSquashfs drops holders for which alive returns false and unmounts
// every image mount left without holders (after a crash or kill -9).
func SweepSquashfs(runDir string, alive func(user string) bool) error {
	if _, err := os.Stat(imagesDir(runDir)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	unlock, err := lockImages(context.Background(), runDir)
	if err != nil {
		return err
	}
	defer unlock()
	digests := map[string]bool{}
	hroot := filepath.Join(imagesDir(runDir), ".holders")
	names, _ := readNames(hroot)
	for _, d := range names {
		digests[d] = true
		users, _ := readNames(filepath.Join(hroot, d))
		for _, u := range users {
			if !alive(u) {
				os.Remove(filepath.Join(hroot, d, u))
			}
		}
	}
	names, _ = readNames(imagesDir(runDir))
	for _, d := range names {
		if !strings.HasPrefix(d, ".") {
			digests[d] = true
		}
	}
	var errs []error
	for d := range digests {
		if err := unmountIfUnused(runDir, d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// SquashfsHolders lists the holders of digest's mount.
func SquashfsHolders(runDir, digest string) ([]string, error) {
	return readNames(filepath.Join(imagesDir(runDir), ".holders", digest))
}

func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, os.ErrNotExist) {
			return errors.New("no such file")
		}
		return pe.Err
	}
	return err
}
