package flashsys

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otok/otok/test/testenv"
)

// TestImagesInUse: a container using an image (squashfs, or directory) is
// shown by df, blocks rm and survives gc; once removed, gc collects.
func TestImagesInUse(t *testing.T) {
	testenv.NeedRoot(t)
	w := newWorld(t)
	if !w.hasCommand("run") {
		t.Skip("skipped: this otok has no run command yet")
	}
	root := busyboxTree(t)
	os.Symlink("busybox", filepath.Join(root, "bin/sleep"))
	w.ok("image", "import", w.build(t, root, "sq", "1"))
	tarball := filepath.Join(w.dir, "r.tar")
	os.WriteFile(tarball, tarDir(t, root), 0o644)
	w.ok("image", "import", tarball, "--name", "dir", "--version", "1", "--insecure-skip-verify")
	w.ok("image", "import", w.build(t, noiseTree(t, 1000), "unused", "1"))
	for _, c := range [][2]string{{"c-sq", "sq"}, {"c-dir", "dir"}} {
		w.ok("run", "-d", "--name", c[0], c[1], "/bin/sleep", "60")
		defer exec.Command(w.bin, "--store", w.store, "--keys", w.keys, "--state", w.state, "rm", "-f", c[0]).Run()
	}
	df := w.ok("df")
	for _, want := range []string{"sq:1", "c-sq", "dir:1", "c-dir"} {
		if !strings.Contains(df, want) {
			t.Errorf("df lacks %q:\n%s", want, df)
		}
	}
	for _, ref := range []string{"sq", "dir"} {
		if _, e, code := w.run(nil, "image", "rm", ref); code != 1 || !strings.Contains(e, "in use by c-") {
			t.Errorf("rm %s: exit %d %s", ref, code, e)
		}
	}
	gc := w.ok("image", "gc")
	if !strings.Contains(gc, "removed unused:1") || strings.Contains(gc, "sq:1") || strings.Contains(gc, "dir:1") {
		t.Fatalf("gc: %s", gc)
	}
	w.ok("rm", "-f", "c-sq")
	w.ok("rm", "-f", "c-dir")
	gc = w.ok("image", "gc")
	if !strings.Contains(gc, "removed 2 image(s)") {
		t.Fatalf("gc after rm: %s", gc)
	}
}
