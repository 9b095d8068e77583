package flash

import (
	"context"
	"errors"
	"io/fs"
)

// The runtime asks the store for a rootfs instead of mounting images
// itself: a squashfs image is loop-mounted read-only once per digest under
// runDir and shared (refcounted by holder, see mount.go); a directory
// image is used in place.

// MountImage returns a read-only rootfs directory for img on behalf of
// holder (a container name).
func (s *Store) MountImage(ctx context.Context, runDir string, img *Image, holder string) (string, error) {
	if img.Manifest.Kind == KindDir {
		return img.RootfsDir(), nil
	}
	return AcquireSquashfs(ctx, runDir, img.SquashfsPath(), img.Digest, holder)
}

// UnmountImage drops holder's use of img.
func (s *Store) UnmountImage(runDir string, img *Image, holder string) error {
	if img.Manifest.Kind == KindDir {
		return nil
	}
	return ReleaseSquashfs(runDir, img.Digest, holder)
}

// Holders lists who holds a mount of the image with this digest.
func Holders(runDir, digest string) []string {
	h, err := SquashfsHolders(runDir, digest)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return h
}
