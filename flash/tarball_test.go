package flash

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
)

// tarEntry describes one entry of a test tarball.
type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
}

func makeTar(t testing.TB, ents ...tarEntry) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body)), Uid: 0, Gid: 0}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if h.Typeflag == tar.TypeChar {
			h.Devmajor, h.Devminor = 1, 3
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return b.Bytes()
}

func gz(b []byte) []byte {
	var o bytes.Buffer
	w := gzip.NewWriter(&o)
	w.Write(b)
	w.Close()
	return o.Bytes()
}

func xzb(t testing.TB, b []byte) []byte {
	var o bytes.Buffer
	w, err := xz.NewWriter(&o)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	w.Close()
	return o.Bytes()
}

func goodRootfs(t testing.TB) []byte {
	return makeTar(t,
		tarEntry{name: "./", typ: tar.TypeDir},
		tarEntry{name: "./bin/", typ: tar.TypeDir},
		tarEntry{name: "./bin/busybox", body: "ELF", mode: 0o755},
		tarEntry{name: "./bin/sh", typ: tar.TypeSymlink, link: "busybox"},
		tarEntry{name: "./bin/ls", typ: tar.TypeLink, link: "./bin/busybox"},
		tarEntry{name: "./etc/resolv.conf", typ: tar.TypeSymlink, link: "/tmp/resolv.conf"},
		tarEntry{name: "./etc/hostname", body: "box\n"},
		tarEntry{name: "./usr/lib/x", typ: tar.TypeSymlink, link: "../../bin/busybox"},
		tarEntry{name: "./ro/", typ: tar.TypeDir, mode: 0o555},
		tarEntry{name: "./ro/file", body: "in a read-only dir"},
		tarEntry{name: "./tmp/", typ: tar.TypeDir, mode: 0o1777},
	)
}

func TestImportRootfsTar(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []byte
	}{{"tar", goodRootfs(t)}, {"tar.gz", gz(goodRootfs(t))}, {"tar.xz", xzb(t, goodRootfs(t))}} {
		t.Run(c.name, func(t *testing.T) {
			st := openTestStore(t, t.TempDir())
			res, err := st.ImportRootfsTar(bg, bytes.NewReader(c.in), RootfsOptions{Name: "rootfs", Version: "1"})
			if err != nil {
				t.Fatal(err)
			}
			dir := res.Image.RootfsDir()
			if b, _ := os.ReadFile(filepath.Join(dir, "bin/ls")); string(b) != "ELF" {
				t.Fatal("hardlink content")
			}
			if l, _ := os.Readlink(filepath.Join(dir, "bin/sh")); l != "busybox" {
				t.Fatal("symlink")
			}
			if fi, _ := os.Stat(filepath.Join(dir, "tmp")); fi.Mode()&os.ModeSticky == 0 {
				t.Fatal("sticky bit lost")
			}
			if fi, _ := os.Stat(filepath.Join(dir, "ro")); fi.Mode().Perm() != 0o555 {
				t.Fatal("dir mode")
			}
			img, err := st.Resolve("rootfs")
			if err != nil || img.Manifest.Kind != KindDir {
				t.Fatalf("resolve: %v", err)
			}
			if _, err := st.Remove(bg, "rootfs", nil); err != nil {
				t.Fatal(err)
			}
			if imgs, _ := st.List(); len(imgs) != 0 || len(st.TempEntries()) != 0 {
				t.Fatal("not removed cleanly")
			}
		})
	}
}

func TestImportLXDTarball(t *testing.T) {
	st := openTestStore(t, t.TempDir())
	in := makeTar(t,
		tarEntry{name: "metadata.yaml", body: "architecture: x86_64\n"},
		tarEntry{name: "rootfs/", typ: tar.TypeDir},
		tarEntry{name: "rootfs/bin/busybox", body: "ELF", mode: 0o755},
		tarEntry{name: "rootfs/bin/ls", typ: tar.TypeLink, link: "rootfs/bin/busybox"},
		tarEntry{name: "templates/hostname.tpl", body: "x"},
	)
	res, err := st.ImportRootfsTar(bg, bytes.NewReader(xzb(t, in)), RootfsOptions{Name: "lxd", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(res.Image.RootfsDir(), "bin/ls")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(res.Image.Dir, "metadata.yaml")); !strings.Contains(string(b), "x86_64") {
		t.Fatal("metadata")
	}
}

func TestImportBadTarballsLeaveStoreUnchanged(t *testing.T) {
	root := t.TempDir()
	st := openTestStore(t, root)
	if _, err := st.ImportRootfsTar(bg, bytes.NewReader(goodRootfs(t)), RootfsOptions{Name: "base", Version: "1"}); err != nil {
		t.Fatal(err)
	}
	bomb, err := os.ReadFile("testdata/bomb.tar.xz")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		in   []byte
		want string
		max  int64
	}{
		{"dotdot", makeTar(t, tarEntry{name: "a/../../etc/passwd", body: "x"}), "path contains ..", 0},
		{"absolute", makeTar(t, tarEntry{name: "/etc/passwd", body: "x"}), "absolute path", 0},
		{"symlink escape", makeTar(t, tarEntry{name: "a/evil", typ: tar.TypeSymlink, link: "../../../etc"}), "escapes the root", 0},
		{"write through symlink", makeTar(t,
			tarEntry{name: "etc", typ: tar.TypeSymlink, link: "/etc"},
			tarEntry{name: "etc/passwd", body: "root::0:0::/:/bin/sh\n"}), "is a symlink (writing through symlinks is refused)", 0},
		{"write through symlinked dir", makeTar(t,
			tarEntry{name: "d/", typ: tar.TypeDir},
			tarEntry{name: "d/up", typ: tar.TypeSymlink, link: ".."},
			tarEntry{name: "d/up/x", body: "x"}), "is a symlink", 0},
		{"hardlink outside", makeTar(t, tarEntry{name: "passwd", typ: tar.TypeLink, link: "../../etc/passwd"}), "outside the tree", 0},
		{"hardlink absolute", makeTar(t, tarEntry{name: "passwd", typ: tar.TypeLink, link: "/etc/passwd"}), "outside the tree", 0},
		{"hardlink via symlink", makeTar(t,
			tarEntry{name: "e", typ: tar.TypeSymlink, link: "/etc"},
			tarEntry{name: "passwd", typ: tar.TypeLink, link: "e/passwd"}), "symlink", 0},
		{"device node", makeTar(t, tarEntry{name: "dev/mem", typ: tar.TypeChar, mode: 0o600}), "device node refused", 0},
		{"setuid", makeTar(t, tarEntry{name: "bin/su", body: "x", mode: 0o4755}), "setuid/setgid file refused", 0},
		{"setgid", makeTar(t, tarEntry{name: "bin/sg", body: "x", mode: 0o2755}), "setuid/setgid file refused", 0},
		{"xz bomb", bomb, "expanded size exceeds 16.0 MiB", 16 << 20},
		{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3}, "zstd", 0},
		{"garbage", []byte(strings.Repeat("garbage!", 200)), "read tar", 0},
	}
	before := snapshot(t, root)
	for _, c := range cases {
		_, err := st.ImportRootfsTar(bg, bytes.NewReader(c.in), RootfsOptions{Name: "evil", Version: "1", MaxBytes: c.max})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
		if c.name == "xz bomb" && !errors.Is(err, ErrTooBig) {
			t.Errorf("bomb: not ErrTooBig")
		}
		if after := snapshot(t, root); after != before {
			t.Errorf("%s: store changed", c.name)
		}
	}
	// A good tarball declared for another architecture.
	_, err = st.ImportRootfsTar(bg, bytes.NewReader(goodRootfs(t)), RootfsOptions{Name: "evil", Version: "1", Arch: "sparc64"})
	if err == nil || !strings.Contains(err.Error(), "image evil: built for sparc64, this device is "+runtime.GOARCH) {
		t.Errorf("other arch: %v", err)
	}
	if after := snapshot(t, root); after != before {
		t.Errorf("other arch: store changed")
	}
	// The same specials pass with AllowSpecial (device nodes need root).
	if os.Getuid() == 0 && !underQemu() {
		in := makeTar(t, tarEntry{name: "dev/null", typ: tar.TypeChar, mode: 0o666}, tarEntry{name: "bin/su", body: "x", mode: 0o4755})
		res, err := st.ImportRootfsTar(bg, bytes.NewReader(in), RootfsOptions{Name: "special", Version: "1", AllowSpecial: true})
		if err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(filepath.Join(res.Image.RootfsDir(), "bin/su")); fi.Mode()&os.ModeSetuid == 0 {
			t.Fatal("setuid lost")
		}
	}
}

func TestSymlinkEscapes(t *testing.T) {
	for _, c := range []struct {
		rel, target string
		want        bool
	}{
		{"a", "b", false}, {"a", "..", true}, {"a/b", "..", false}, {"a/b", "../..", true},
		{"a/b", "/etc/passwd", false}, {"a/b", "./../c/../../x", true}, {"x", ".", false},
	} {
		if got := symlinkEscapes(c.rel, c.target); got != c.want {
			t.Errorf("%s -> %s: got %v", c.rel, c.target, got)
		}
	}
}

func FuzzUnpack(f *testing.F) {
	f.Add(goodRootfs(f))
	f.Add(makeTar(f, tarEntry{name: "etc", typ: tar.TypeSymlink, link: "/etc"}, tarEntry{name: "etc/passwd", body: "x"}))
	addSeeds(f, "tar")
	f.Fuzz(func(t *testing.T, in []byte) {
		dir := t.TempDir()
		root := filepath.Join(dir, "root")
		os.Mkdir(root, 0o755)
		Unpack(bg, bytes.NewReader(in), root, UnpackOptions{MaxBytes: 1 << 20, MaxEntries: 1000, Whiteouts: true, LXD: true})
		// Nothing may appear outside root.
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 {
			t.Fatalf("wrote outside the root: %v", ents)
		}
		removeAllWritable(dir)
	})
}

func TestXzDictSize(t *testing.T) {
	for _, level := range []string{"-0", "-6", "-9"} {
		out, err := exec.Command("sh", "-c", "echo hello | xz "+level).Output()
		if err != nil {
			t.Skip("skipped: xz not installed")
		}
		d, ok := xzDictSize(out)
		want := map[string]int64{"-0": 256 << 10, "-6": 8 << 20, "-9": 64 << 20}[level]
		if !ok || d != want {
			t.Errorf("xz %s: dict %d %v, want %d", level, d, ok, want)
		}
	}
	if d, ok := xzDictSize(xzb(t, []byte("x"))); !ok || d <= 0 {
		t.Errorf("ulikunitz stream: %d %v", d, ok)
	}
}
