package flashsys

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otok/otok/test/testenv"
	"golang.org/x/sys/unix"
)

// noiseTree is a rootfs with n bytes of incompressible data.
func noiseTree(t *testing.T, n int) string {
	root := filepath.Join(t.TempDir(), "noise")
	os.MkdirAll(filepath.Join(root, "data"), 0o755)
	b := make([]byte, n)
	rand.New(rand.NewSource(1)).Read(b)
	os.WriteFile(filepath.Join(root, "data/blob"), b, 0o644)
	return root
}

func (w *world) build(t *testing.T, from, name, version string, extra ...string) string {
	needMksquashfs(t)
	out := filepath.Join(t.TempDir(), name+"-"+version+".otok")
	w.ok(append([]string{"image", "build", "--from", from, "--name", name, "--version", version, "--key", w.key, "-o", out, "--comp", "gzip"}, extra...)...)
	return out
}

func tarOf(ents ...[4]string) []byte { // name, type, link, body
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		h := &tar.Header{Name: e[0], Typeflag: e[1][0], Linkname: e[2], Size: int64(len(e[3])), Mode: 0o644}
		switch e[1] {
		case "4":
			h.Mode = 0o4755
			h.Typeflag = tar.TypeReg
		case "3":
			h.Devmajor, h.Devminor, h.Size = 1, 1, 0
		default:
			if h.Typeflag != tar.TypeReg {
				h.Size = 0
			}
		}
		tw.WriteHeader(h)
		tw.Write([]byte(e[3]))
	}
	tw.Close()
	return b.Bytes()
}

// TestHostileInputsLeaveStoreUnchanged feeds every bad input of the issue
// to `otok image import` and compares the store, file by file with sizes
// and digests, before and after.
func TestHostileInputsLeaveStoreUnchanged(t *testing.T) {
	w := newWorld(t)
	good := w.build(t, busyboxTree(t), "base", "1")
	w.ok("image", "import", good)
	valid, _ := os.ReadFile(w.build(t, noiseTree(t, 200000), "app", "1"))
	hdr := 16 + int(binary.BigEndian.Uint32(valid[12:16]))
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, valid...)) }

	// An image signed by a key this device does not trust.
	stranger := newWorld(t)
	unknown, _ := os.ReadFile(stranger.build(t, noiseTree(t, 1000), "app", "1"))
	wrongArch, _ := os.ReadFile(w.build(t, noiseTree(t, 1000), "app", "1", "--arch", "mips"))
	bomb, err := os.ReadFile("../../flash/testdata/bomb.tar.xz")
	if err != nil {
		t.Fatal(err)
	}
	type c struct {
		name string
		in   []byte
		args []string
		want string
	}
	tarArgs := []string{"--name", "evil", "--insecure-skip-verify"}
	cases := []c{
		{"bad signature", mod(func(b []byte) []byte { b[hdr-1] ^= 1; return b }), nil, "image app: bad signature"},
		{"unknown key", unknown, nil, "image app: signature by unknown key"},
		{"manifest/digest mismatch", mod(func(b []byte) []byte { b[len(b)-100] ^= 1; return b }), nil, "image app: digest mismatch"},
		{"truncated", valid[:len(valid)-4096], nil, "image app: truncated"},
		{"truncated in the manifest", valid[:hdr-5], nil, "manifest truncated"},
		{"trailing data", append(append([]byte{}, valid...), 1, 2, 3), nil, "longer than the declared size"},
		{"wrong arch", wrongArch, nil, "image app: built for mips, this device is"},
		{"corrupt superblock", mod(func(b []byte) []byte { copy(b[hdr:], "XXXX"); return b }), nil, "squashfs: bad magic"},
		{"superblock bytes_used", mod(func(b []byte) []byte { binary.LittleEndian.PutUint64(b[hdr+40:], 1<<33); return b }), nil, "bytes_used"},
		{"tar ../", tarOf([4]string{"../../etc/passwd", "0", "", "x"}), tarArgs, "path contains .."},
		{"tar absolute", tarOf([4]string{"/etc/passwd", "0", "", "x"}), tarArgs, "absolute path"},
		{"tar symlink escape", tarOf([4]string{"up", "2", "../../..", ""}), tarArgs, "escapes the root"},
		{"tar write through symlink", tarOf([4]string{"etc", "2", "/etc", ""}, [4]string{"etc/shadow", "0", "", "x"}), tarArgs, "writing through symlinks is refused"},
		{"tar hardlink outside", tarOf([4]string{"shadow", "1", "../../etc/shadow", ""}), tarArgs, "outside the tree"},
		{"tar device node", tarOf([4]string{"dev/sda", "3", "", ""}), tarArgs, "device node refused"},
		{"tar setuid", tarOf([4]string{"bin/su", "4", "", "x"}), tarArgs, "setuid/setgid file refused"},
		{"xz bomb", bomb, append(tarArgs, "--max-size", "16M"), "expanded size exceeds 16.0 MiB"},
		{"unsigned tarball", tarOf([4]string{"a", "0", "", "x"}), []string{"--name", "evil"}, "carries no signature"},
	}
	before := snapshot(t, w.store)
	dir := t.TempDir()
	for i, c := range cases {
		p := filepath.Join(dir, strings.NewReplacer(" ", "_", "/", "_").Replace(c.name))
		os.WriteFile(p, c.in, 0o644)
		_, e, code := w.run(nil, append([]string{"image", "import", p}, c.args...)...)
		if code != 1 || !strings.Contains(e, c.want) {
			t.Errorf("%d %s: exit %d, stderr %q, want %q", i, c.name, code, e, c.want)
		} else {
			t.Logf("%-26s %s", c.name+":", strings.TrimSpace(strings.Split(e, "\n")[len(strings.Split(strings.TrimSpace(e), "\n"))-1]))
		}
		if after := snapshot(t, w.store); after != before {
			t.Errorf("%s: store changed\nbefore:\n%s\nafter:\n%s", c.name, before, after)
		}
	}
}

// TestStoreFull imports into a store on a small tmpfs: refused before a
// byte is written, with the numbers in the message.
func TestStoreFull(t *testing.T) {
	testenv.NeedRoot(t)
	w := newWorld(t) // keys outside the small fs
	small := filepath.Join(t.TempDir(), "small")
	os.Mkdir(small, 0o755)
	if err := unix.Mount("tmpfs", small, "tmpfs", 0, "size=6m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(small, unix.MNT_DETACH) })
	w.store = small
	img := w.build(t, noiseTree(t, 5<<20), "big", "1")
	w.ok("df")
	before := snapshot(t, small)
	_, e, code := w.run(nil, "image", "import", img)
	if code != 1 || !strings.Contains(e, "image big: no space: needs 5.0 MiB plus reserve 2.0 MiB, only 6.0 MiB available") {
		t.Fatalf("exit %d: %s", code, e)
	}
	t.Log(strings.TrimSpace(e))
	// From a pipe the size is unknown until the manifest is read: same.
	f, _ := os.Open(img)
	defer f.Close()
	if _, e, code = w.run(f, "image", "import", "-"); code != 1 || !strings.Contains(e, "no space") {
		t.Fatalf("stdin: exit %d: %s", code, e)
	}
	// A smaller reserve lets it in.
	if after := snapshot(t, small); after != before {
		t.Fatal("store changed")
	}
	if _, e, code = w.run(nil, "image", "import", "--reserve", "256k", img); code != 0 {
		t.Fatalf("with --reserve 256k: %s", e)
	}
}

// TestCrashSafety kills the importer with SIGKILL at 50 random moments.
// After each kill the next command sweeps the temp files, every listed
// image verifies, and no half image is listed.
func TestCrashSafety(t *testing.T) {
	w := newWorld(t)
	img := w.build(t, noiseTree(t, 16<<20), "crash", "1")
	var times []time.Duration
	for i := 0; i < 3; i++ {
		start := time.Now()
		w.ok("image", "import", img)
		times = append(times, time.Since(start))
		w.ok("image", "rm", "crash")
	}
	full := median(times)
	t.Logf("one import of %d bytes takes %v", fileSize(img), full)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	committed, killed := 0, 0
	// Until 50 kills have landed before the commit (at most 200 tries).
	for i := 0; killed < 50 && i < 200; i++ {
		cmd := exec.Command(w.bin, "--store", w.store, "--keys", w.keys, "image", "import", img)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int63n(int64(full))))
		cmd.Process.Signal(os.Kill)
		if err := cmd.Wait(); err == nil {
			committed++
		} else {
			killed++
		}
		var imgs []struct{ Name, Digest, Version string }
		if err := json.Unmarshal([]byte(w.ok("image", "ls", "--json")), &imgs); err != nil {
			t.Fatal(err)
		}
		if ents, _ := os.ReadDir(filepath.Join(w.store, "tmp")); len(ents) != 0 {
			t.Fatalf("round %d: temp files left after the next command: %v", i, ents)
		}
		for _, im := range imgs {
			w.ok("image", "inspect", "--verify", im.Digest)
		}
		if len(imgs) > 0 {
			w.ok("image", "rm", "crash")
		}
	}
	t.Logf("SIGKILL: %d imports killed midway, %d had already committed", killed, committed)
	if killed < 50 {
		t.Errorf("only %d kills landed midway", killed)
	}
}

func fileSize(p string) int64 {
	fi, _ := os.Stat(p)
	return fi.Size()
}
