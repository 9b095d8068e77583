// Package testimage builds the busybox squashfs image system tests run
// containers from: Debian's busybox-static with every applet linked,
// /etc/passwd (root, user 1000, nobody), /etc/group and an inittab for
// system-container tests, packed by mksquashfs. build.sh does the same for
// shell scripts (demo, bench).
//
//	img := testimage.Build(t, t.TempDir()) // …/busybox.sqfs
package testimage

import (
	_ "embed"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

//go:embed build.sh
var script []byte

// Build makes dir/busybox.sqfs (and the tree at dir/rootfs) and returns the
// squashfs path. It skips the test when mksquashfs or busybox is missing.
func Build(t testing.TB, dir string) string {
	t.Helper()
	sq, _ := BuildBoth(t, dir)
	return sq
}

// BuildBoth also returns the unpacked rootfs directory.
func BuildBoth(t testing.TB, dir string) (squashfs, rootfs string) {
	t.Helper()
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		t.Skip("mksquashfs not installed (apt-get install squashfs-tools)")
	}
	bb := os.Getenv("BUSYBOX")
	if bb == "" {
		bb = "/bin/busybox"
	}
	if _, err := os.Stat(bb); err != nil {
		t.Skip("busybox-static not installed (apt-get install busybox-static)")
	}
	sh := filepath.Join(dir, "build.sh")
	if err := os.WriteFile(sh, script, 0o755); err != nil {
		t.Fatal(err)
	}
	squashfs, rootfs = filepath.Join(dir, "busybox.sqfs"), filepath.Join(dir, "rootfs")
	out, err := exec.Command("bash", sh, squashfs, rootfs).CombinedOutput()
	if err != nil {
		t.Fatalf("build busybox image: %v\n%s", err, out)
	}
	return squashfs, rootfs
}
