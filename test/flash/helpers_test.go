// Package flashsys holds the image store's system tests: they run the otok
// binary (OTOK_BIN, else built into a temp dir) with a temporary --store and
// --keys and check round trips, hostile inputs, a full store and crash
// safety from the outside.
package flashsys

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/otok/otok/test/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// world is one isolated installation: store, keys, state, signing key.
type world struct {
	t                       *testing.T
	bin, dir                string
	store, keys, state, key string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, bin: testenv.Otok(t), dir: t.TempDir()}
	w.store = filepath.Join(w.dir, "store")
	w.keys = filepath.Join(w.dir, "keys")
	w.state = filepath.Join(w.dir, "run")
	os.MkdirAll(w.keys, 0o755)
	w.ok("key", "gen", filepath.Join(w.dir, "signer"))
	w.key = filepath.Join(w.dir, "signer.key")
	b, _ := os.ReadFile(filepath.Join(w.dir, "signer.pub"))
	os.WriteFile(filepath.Join(w.keys, "signer.pub"), b, 0o644)
	return w
}

// run runs otok with the world's global flags.
func (w *world) run(stdin io.Reader, args ...string) (stdout, stderr string, code int) {
	cmd := exec.Command(w.bin, append([]string{"--store", w.store, "--keys", w.keys, "--state", w.state}, args...)...)
	cmd.Stdin = stdin
	return testenv.RunCmd(w.t, cmd)
}

func (w *world) ok(args ...string) string {
	w.t.Helper()
	o, e, code := w.run(nil, args...)
	if code != 0 {
		w.t.Fatalf("otok %s: exit %d\n%s%s", strings.Join(args, " "), code, o, e)
	}
	return o
}

// hasCommand reports whether the binary has a command (e.g. run, which
// another part of the project provides).
func (w *world) hasCommand(name string) bool {
	o, _, _ := w.run(nil, "help")
	for _, l := range strings.Split(o, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name {
			return true
		}
	}
	return false
}

// needMksquashfs skips a test that builds images where squashfs-tools are
// missing (the mips qemu guest: Debian has no mips port to take them from;
// importing, mounting and running images is tested there by the qemu
// scenario with an image built on the host).
func needMksquashfs(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		t.Skip("skipped: this test builds images and mksquashfs is not installed (squashfs-tools; none in the mips qemu guest)")
	}
}

// busyboxTree makes a minimal rootfs with the static busybox.
func busyboxTree(t *testing.T) string {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("skipped: busybox-static not installed")
	}
	needMksquashfs(t)
	root := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "bin/busybox"), b, 0o755)
	for _, l := range []string{"sh", "echo", "cat", "ls", "test", "true"} {
		os.Symlink("busybox", filepath.Join(root, "bin", l))
	}
	os.WriteFile(filepath.Join(root, "etc/motd"), []byte("hello from the store\n"), 0o644)
	return root
}

// tarDir writes dir as a tar stream.
func tarDir(t *testing.T, dir string) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		link := ""
		if fi.Mode()&os.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		h, _ := tar.FileInfoHeader(fi, link)
		h.Name = "./" + rel
		if fi.IsDir() {
			h.Name += "/"
		}
		tw.WriteHeader(h)
		if fi.Mode().IsRegular() {
			f, _ := os.Open(p)
			io.Copy(tw, f)
			f.Close()
		}
		return nil
	})
	tw.Close()
	return b.Bytes()
}

// snapshot lists every file of the store with mode, size and sha256.
func snapshot(t *testing.T, root string) string {
	var lines []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			lines = append(lines, fmt.Sprintf("%s %v %d %x", rel, fi.Mode(), fi.Size(), sha256.Sum256(b)))
		} else {
			lines = append(lines, fmt.Sprintf("%s %v", rel, fi.Mode()))
		}
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
