package flash

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestImportOtok(t *testing.T) {
	root := t.TempDir()
	st := openTestStore(t, root, testKey())
	sq := makeSquashfs(t, map[string]string{"bin/sh": "#!", "etc/motd": "hello"})
	otok := makeOtok(t, sq, imgManifest("hello", "1.0"), testKey())
	res, err := st.ImportOtok(bg, bytes.NewReader(otok), ImportOptions{Source: "hello.otok"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Existed || res.BytesWritten < res.Image.Manifest.Size {
		t.Fatalf("result %+v", res)
	}
	if res.Image.Info.BytesWritten != res.BytesWritten {
		t.Fatalf("info records %d written, import says %d", res.Image.Info.BytesWritten, res.BytesWritten)
	}
	got, _ := os.ReadFile(res.Image.SquashfsPath())
	want, _ := os.ReadFile(sq)
	if !bytes.Equal(got, want) {
		t.Fatal("stored squashfs differs")
	}
	if err := st.Verify(res.Image); err != nil {
		t.Fatal(err)
	}
	// Again: nothing is written.
	before := snapshot(t, root)
	res2, err := st.ImportOtok(bg, bytes.NewReader(otok), ImportOptions{})
	if err != nil || !res2.Existed || res2.BytesWritten != 0 {
		t.Fatalf("re-import: %+v %v", res2, err)
	}
	if snapshot(t, root) != before {
		t.Fatal("re-import changed the store")
	}
	if c := st.Counters(); c.Imports != 1 || c.BytesWritten != res.BytesWritten {
		t.Fatalf("counters %+v", c)
	}
	if len(st.TempEntries()) != 0 {
		t.Fatal("temp left")
	}
}

func TestResolve(t *testing.T) {
	root := t.TempDir()
	st := openTestStore(t, root, testKey())
	digests := map[string]string{}
	for _, v := range []string{"1.9", "1.10", "1.2"} {
		sq := makeSquashfs(t, map[string]string{"version": v})
		res, err := st.ImportOtok(bg, bytes.NewReader(makeOtok(t, sq, imgManifest("app", v), testKey())), ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		digests[v] = res.Image.Digest
	}
	for ref, want := range map[string]string{
		"app": "1.10", "app:1.9": "1.9", "app:1.2": "1.2",
		"sha256:" + digests["1.2"]: "1.2", digests["1.9"][:12]: "1.9",
	} {
		img, err := st.Resolve(ref)
		if err != nil {
			t.Errorf("%s: %v", ref, err)
			continue
		}
		if img.Manifest.Version != want {
			t.Errorf("%s: got %s, want %s", ref, img.Manifest.Version, want)
		}
	}
	var nf *NotFoundError
	if _, err := st.Resolve("app:3"); !errors.As(err, &nf) {
		t.Errorf("app:3: %v", err)
	}
	if _, err := st.Resolve("other"); !errors.As(err, &nf) {
		t.Errorf("other: %v", err)
	}
	imgs, errs := st.List()
	if len(imgs) != 3 || len(errs) != 0 || imgs[0].Manifest.Version != "1.10" {
		t.Fatalf("list: %v %v", imgs, errs)
	}
	img, err := st.Remove(bg, "app:1.9", func(d string) bool { return d == digests["1.2"] })
	if err != nil || img.Manifest.Version != "1.9" {
		t.Fatalf("remove: %v", err)
	}
	if _, err := st.Remove(bg, "app:1.2", func(d string) bool { return d == digests["1.2"] }); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("remove in use: %v", err)
	}
	if imgs, _ := st.List(); len(imgs) != 2 {
		t.Fatalf("after rm: %d images", len(imgs))
	}
}

// badCase is one hostile input; the store must be unchanged after it.
type badCase struct {
	name string
	in   []byte
	opt  ImportOptions
	want string
}

func TestImportBadInputsLeaveStoreUnchanged(t *testing.T) {
	root := t.TempDir()
	st := openTestStore(t, root, testKey())
	sq := makeSquashfs(t, map[string]string{"bin/sh": "#!", "etc/motd": noise(300000)})
	// One good image already in the store.
	good := makeOtok(t, makeSquashfs(t, map[string]string{"a": "b"}), imgManifest("base", "1"), testKey())
	if _, err := st.ImportOtok(bg, bytes.NewReader(good), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	valid := makeOtok(t, sq, imgManifest("app", "1"), testKey())
	hdrLen := len(valid) - fileSize(t, sq)

	wrongArch := imgManifest("app", "1")
	wrongArch.Arch = "sparc64"
	mismatch := imgManifest("app", "1")
	mismatch.Digest = bytes.Repeat([]byte{1}, 32)
	corrupt := append([]byte{}, valid...)
	binary.LittleEndian.PutUint16(corrupt[hdrLen+20:], 9) // compression id 9
	badSig := append([]byte{}, valid...)
	badSig[hdrLen-1] ^= 0x80 // last byte of the COSE signature
	longer := append(append([]byte{}, valid...), "trailing"...)
	hugeBytesUsed := append([]byte{}, valid...)
	binary.LittleEndian.PutUint64(hugeBytesUsed[hdrLen+40:], 1<<40)
	flipped := append([]byte{}, valid...)
	flipped[len(flipped)-5000] ^= 0xff

	cases := []badCase{
		{"bad signature", badSig, ImportOptions{}, "image app: bad signature"},
		{"unknown key", makeOtok(t, sq, imgManifest("app", "1"), otherKey()), ImportOptions{}, "image app: signature by unknown key " + keyHex(otherKey())},
		{"digest mismatch", makeOtok(t, sq, mismatch, testKey()), ImportOptions{}, "image app: digest mismatch"},
		{"content flipped", flipped, ImportOptions{}, "image app: digest mismatch"},
		{"truncated", valid[:len(valid)-1000], ImportOptions{}, "image app: truncated"},
		{"truncated header", valid[:hdrLen-10], ImportOptions{}, "manifest truncated"},
		{"longer than declared", longer, ImportOptions{}, "longer than the declared size"},
		{"wrong arch", makeOtok(t, sq, wrongArch, testKey()), ImportOptions{}, "image app: built for sparc64, this device is"},
		{"corrupt superblock", corrupt, ImportOptions{}, "image app: squashfs: unknown compression id 9"},
		{"bytes_used beyond size", hugeBytesUsed, ImportOptions{}, "bytes_used"},
		{"not otok", []byte("hello world, this is not an image at all"), ImportOptions{}, "bad magic"},
	}
	before := snapshot(t, root)
	for _, c := range cases {
		_, err := st.ImportOtok(bg, bytes.NewReader(c.in), c.opt)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
		if after := snapshot(t, root); after != before {
			t.Errorf("%s: store changed:\nbefore:\n%s\nafter:\n%s", c.name, before, after)
		}
	}
}

// noise is incompressible, reproducible content.
func noise(n int) string {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return string(b)
}

func keyHex(k []byte) string {
	return strings.ToLower(hexOf(KeyID(k[32:])))
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	var s []byte
	for _, c := range b {
		s = append(s, digits[c>>4], digits[c&15])
	}
	return string(s)
}

func fileSize(t *testing.T, p string) int {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Size())
}

func TestImportInsecureAndBare(t *testing.T) {
	root := t.TempDir()
	st := openTestStore(t, root) // trusts nothing
	sq := makeSquashfs(t, map[string]string{"x": "y"})
	otok := makeOtok(t, sq, imgManifest("x", "1"), testKey())
	if _, err := st.ImportOtok(bg, bytes.NewReader(otok), ImportOptions{}); err == nil {
		t.Fatal("untrusted accepted")
	}
	res, err := st.ImportOtok(bg, bytes.NewReader(otok), ImportOptions{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Image.Signed {
		t.Fatal("signed manifest not kept")
	}
	f, _ := os.Open(sq)
	defer f.Close()
	m := *imgManifest("bare", "2")
	if _, err := st.ImportSquashfs(bg, f, -1, m, ImportOptions{}); err == nil {
		t.Fatal("bare squashfs accepted without --insecure-skip-verify")
	}
	f.Seek(0, 0)
	sq2 := makeSquashfs(t, map[string]string{"z": "w"})
	f2, _ := os.Open(sq2)
	defer f2.Close()
	res, err = st.ImportSquashfs(bg, f2, -1, m, ImportOptions{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(sq2)
	if d := sha256.Sum256(data); res.Image.Digest != hexOf(d[:]) || res.Image.Signed {
		t.Fatalf("bare: %+v", res.Image)
	}
}

// TestImportStoreFull mounts a 4 MiB tmpfs as the store and imports an
// image that does not fit: refused before a byte is written, and with an
// image that lies about its size… the digest/size check catches it.
func TestImportStoreFull(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("skipped: mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })
	st, err := Open(root, Options{Keys: keyringWith(t, testKey()), Comps: AllComps()}) // default reserve: 2 MiB
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i*7 + i>>9)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "blob"), big, 0o644)
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		t.Skip("skipped: mksquashfs not installed (squashfs-tools; none in the mips qemu guest)")
	}
	sq := filepath.Join(t.TempDir(), "big.sqfs")
	if o, err := exec.Command("mksquashfs", dir, sq, "-noappend", "-quiet", "-no-progress", "-noI", "-noD", "-noF", "-noX").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, o)
	}
	before := snapshot(t, root)
	_, err = st.ImportOtok(bg, bytes.NewReader(makeOtok(t, sq, imgManifest("big", "1"), testKey())), ImportOptions{})
	var ns *NoSpaceError
	if !errors.As(err, &ns) || !strings.Contains(err.Error(), "image big: no space") {
		t.Fatalf("got %v", err)
	}
	t.Log(err)
	if snapshot(t, root) != before {
		t.Fatal("store changed")
	}
	// Unknown size (bare squashfs from a pipe): aborted when it overruns.
	f, _ := os.Open(sq)
	defer f.Close()
	_, err = st.ImportSquashfs(bg, struct{ io_Reader }{f}, -1, *imgManifest("big", "1"), ImportOptions{InsecureSkipVerify: true})
	if !errors.As(err, &ns) {
		t.Fatalf("unknown size: %v", err)
	}
	t.Log(err)
	if snapshot(t, root) != before {
		t.Fatal("store changed")
	}
}

// A kill -9 between writing the counters' temp and its rename must not
// freeze the counters: the temp of an older otok (store root) and one of
// this version (tmp/) are both swept, and the next import counts.
func TestCountersSurviveStaleTemp(t *testing.T) {
	root := t.TempDir()
	st := openTestStore(t, root, testKey())
	os.WriteFile(filepath.Join(root, fileCounters+".tmp"), nil, 0o644)
	os.WriteFile(filepath.Join(root, dirTmp, "counters-1-abcdef"), nil, 0o644)
	st = openTestStore(t, root, testKey()) // a restart: open sweeps
	for i, name := range []string{"one", "two"} {
		sq := makeSquashfs(t, map[string]string{"etc/" + name: name})
		res, err := st.ImportOtok(bg, bytes.NewReader(makeOtok(t, sq, imgManifest(name, "1"), testKey())), ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if c := st.Counters(); c.Imports != int64(i+1) || c.BytesWritten < res.BytesWritten {
			t.Fatalf("after import %d: counters %+v", i+1, c)
		}
	}
	if _, err := os.Stat(filepath.Join(root, fileCounters+".tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale %s.tmp not swept: %v", fileCounters, err)
	}
	if e := st.TempEntries(); len(e) != 0 {
		t.Errorf("tmp/ left: %v", e)
	}
}
