package flash

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otok/otok/test/testimage"
	"golang.org/x/sys/unix"
)

func TestCheckSquashfsBadInput(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "text")
	os.WriteFile(text, []byte("hello, not an image"), 0o644)
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("hsqs\x00\x00"), 0o644)
	sb := make([]byte, 96)
	copy(sb, "hsqs")
	sb[28] = 4                  // major 4
	sb[40], sb[41] = 0x00, 0x10 // bytes_used 4096
	trunc := filepath.Join(dir, "trunc")
	os.WriteFile(trunc, append(sb, make([]byte, 100)...), 0o644)
	for _, c := range []struct{ path, want string }{
		{text, "not a squashfs file"},
		{short, "truncated"},
		{trunc, "truncated squashfs (196 of 4096 bytes)"},
	} {
		f, _ := os.Open(c.path)
		err := checkSquashfs(f, c.path)
		f.Close()
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.path) {
			t.Errorf("%s: %v, want %q", c.path, err, c.want)
		}
	}
	if _, err := AcquireSquashfs(context.Background(), dir, filepath.Join(dir, "missing"), "", "c1"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
}

func TestAcquireReleaseShared(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loop mounts need root")
	}
	// (Also runs under qemu-user: it passes the loop ioctls through.)
	img := testimage.Build(t, t.TempDir())
	run := t.TempDir()
	ctx := context.Background()
	d1, err := AcquireSquashfs(ctx, run, img, "", "c1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(d1, unix.MNT_DETACH) })
	d2, err := AcquireSquashfs(ctx, run, img, "", "c2")
	if err != nil || d2 != d1 {
		t.Fatalf("second acquire: %q %v (first %q)", d2, err, d1)
	}
	if _, err := os.Stat(filepath.Join(d1, "bin", "busybox")); err != nil {
		t.Fatalf("image content: %v", err)
	}
	if n := mountsOf(t, d1); n != 1 {
		t.Fatalf("%d mounts at %s, want 1 (shared)", n, d1)
	}
	if h, _ := SquashfsHolders(run, filepath.Base(d1)); len(h) != 2 {
		t.Fatalf("holders %v", h)
	}
	if err := ReleaseSquashfs(run, filepath.Base(d1), "c1"); err != nil {
		t.Fatal(err)
	}
	if n := mountsOf(t, d1); n != 1 {
		t.Fatalf("unmounted while c2 holds it")
	}
	// A dead holder is swept; the mount goes with the last one.
	if err := SweepSquashfs(run, func(u string) bool { return u != "c2" }); err != nil {
		t.Fatal(err)
	}
	if n := mountsOf(t, d1); n != 0 {
		t.Fatalf("still mounted after the last holder was swept")
	}
	if out, _ := exec.Command("losetup", "-j", img).Output(); len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("loop device left: %s", out)
	}
	// A known digest skips hashing; the mount point is named by it.
	d3, err := AcquireSquashfs(ctx, run, img, "feedbeef", "c3")
	if err != nil || filepath.Base(d3) != "feedbeef" {
		t.Fatalf("acquire with digest: %q %v", d3, err)
	}
	if err := ReleaseSquashfs(run, "feedbeef", "c3"); err != nil {
		t.Fatal(err)
	}
	if n := mountsOf(t, d3); n != 0 {
		t.Fatal("still mounted")
	}
}

func mountsOf(t *testing.T, dir string) int {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			n++
		}
	}
	return n
}
