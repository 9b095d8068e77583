package testenv

import (
	"sync"
	"testing"

	"github.com/otok/otok/test/testimage"
)

var img struct {
	mu                    sync.Mutex
	dir, squashfs, rootfs string
}

// Image returns the busybox image of test/testimage and the tree it was
// made from, built once per test binary into a TempDir. Like
// testimage.Build it skips the test when mksquashfs or busybox is missing.
func Image(t testing.TB) (squashfs, rootfs string) {
	t.Helper()
	img.mu.Lock()
	defer img.mu.Unlock()
	if img.squashfs == "" {
		if img.dir == "" {
			d, err := TempDir("otok-img-")
			if err != nil {
				t.Fatal(err)
			}
			img.dir = d
		}
		img.squashfs, img.rootfs = testimage.BuildBoth(t, img.dir)
	}
	return img.squashfs, img.rootfs
}
