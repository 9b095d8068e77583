package security

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/otok/otok/flash"
	"github.com/otok/otok/test/testimage"
)

// world is an installation with a trusted signing key, one imported image
// and a running sentinel container: what hostile inputs and faults must
// leave alone.
type world struct {
	*otok
	key      ed25519.PrivateKey
	keyPath  string
	rootfs   string // busybox tree the base image was built from
	baseOtok string // the base image's .otok file
	baseSqfs []byte // its squashfs
	sentinel string
	sentPid  int
}

func newWorld(t *testing.T) *world {
	t.Helper()
	o := newOtok(t)
	w := &world{otok: o}
	signer := filepath.Join(o.dir, "signer")
	o.must("key", "gen", signer)
	b, _ := os.ReadFile(signer + ".pub")
	os.WriteFile(filepath.Join(o.keys, "signer.pub"), b, 0o644)
	w.keyPath = signer + ".key"
	k, err := flash.LoadPrivateKey(w.keyPath)
	if err != nil {
		t.Fatal(err)
	}
	w.key = k
	_, w.rootfs = testimage.BuildBoth(t, t.TempDir())
	w.baseOtok = filepath.Join(o.dir, "base.otok")
	o.must("image", "build", "--from", w.rootfs, "--name", "base", "--version", "1", "--key", w.keyPath, "-o", w.baseOtok, "--comp", "gzip")
	o.must("image", "import", w.baseOtok)
	raw, _ := os.ReadFile(w.baseOtok)
	n := int(binary.BigEndian.Uint32(raw[12:16]))
	w.baseSqfs = raw[16+n:]
	w.sentinel = "sec-sentinel-" + randHex(3)
	o.must("run", "-d", "--name", w.sentinel, "base", "sleep", "3600")
	w.sentPid = w.pidOf(w.sentinel)
	if w.sentPid == 0 {
		t.Fatalf("sentinel %s has no pid", w.sentinel)
	}
	return w
}

// freshSquashfs is the base tree plus one file: same layout, new digest.
func (w *world) freshSquashfs(t *testing.T) []byte {
	t.Helper()
	os.WriteFile(filepath.Join(w.rootfs, "etc", "otok-sec-fresh"), []byte(randHex(8)), 0o644)
	out := filepath.Join(t.TempDir(), "fresh.sqfs")
	if b, err := exec.Command("mksquashfs", w.rootfs, out, "-noappend", "-quiet", "-all-root", "-comp", "gzip").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (w *world) pidOf(name string) int {
	out, _, code := w.run(30*time.Second, "inspect", name)
	if code != 0 {
		return 0
	}
	var m struct {
		Pid    int    `json:"pid"`
		Status string `json:"status"`
	}
	json.Unmarshal([]byte(out), &m)
	if m.Status != "running" {
		return 0
	}
	return m.Pid
}

// snapshot is everything a rejected input must leave as it was.
type snapshot struct {
	store, containers, mounts string
	sentinelPid               int
}

func (w *world) snap() snapshot {
	var cs []string
	for _, c := range w.ps() {
		cs = append(cs, fmt.Sprintf("%s %s %d", c.Spec.Name, c.Status, c.Pid))
	}
	sort.Strings(cs)
	ms := mountsUnder(w.dir)
	sort.Strings(ms)
	return snapshot{treeDigest(w.store), strings.Join(cs, "\n"), strings.Join(ms, "\n"), w.pidOf(w.sentinel)}
}

// diff describes how b differs from a ("" if not at all).
func (a snapshot) diff(b snapshot) string {
	var d []string
	if a.store != b.store {
		d = append(d, "store changed:\n"+lineDiff(a.store, b.store))
	}
	if a.containers != b.containers {
		d = append(d, fmt.Sprintf("containers changed: %q -> %q", a.containers, b.containers))
	}
	if a.mounts != b.mounts {
		d = append(d, fmt.Sprintf("mounts changed: %q -> %q", a.mounts, b.mounts))
	}
	if a.sentinelPid != b.sentinelPid {
		d = append(d, fmt.Sprintf("sentinel pid %d -> %d", a.sentinelPid, b.sentinelPid))
	}
	return strings.Join(d, "; ")
}

func lineDiff(a, b string) string {
	in := map[string]int{}
	for _, l := range strings.Split(a, "\n") {
		in[l]++
	}
	var out []string
	for _, l := range strings.Split(b, "\n") {
		if in[l] > 0 {
			in[l]--
			continue
		}
		out = append(out, "+ "+l)
	}
	for l, n := range in {
		if n > 0 {
			out = append(out, "- "+l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// treeDigest lists every entry under root with mode, size and content
// digest (atimes and mtimes of directories aside).
func treeDigest(root string) string {
	var lines []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			lines = append(lines, fmt.Sprintf("%s %v %d %x", rel, fi.Mode(), fi.Size(), sha256.Sum256(b)))
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			lines = append(lines, fmt.Sprintf("%s -> %s", rel, l))
		default:
			lines = append(lines, fmt.Sprintf("%s %v", rel, fi.Mode()))
		}
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// corpusDir is test/security/testdata/generated/<kind> (gitignored),
// emptied first: the corpus is made at test time, never committed.
func corpusDir(t *testing.T, kind string) string {
	d := filepath.Join("testdata", "generated", kind)
	os.RemoveAll(d)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

type hostileRec struct {
	Kind   string `json:"kind"`
	Case   string `json:"case"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// clearError checks an error message is one an operator can act on: one
// or a few lines, no Go panic or stack trace.
func clearError(stderr string) error {
	s := strings.TrimSpace(stderr)
	switch {
	case s == "":
		return fmt.Errorf("no error message")
	case strings.Contains(s, "panic:") || strings.Contains(s, "goroutine "):
		return fmt.Errorf("panic: %.200s", s)
	case strings.Count(s, "\n") > 5:
		return fmt.Errorf("%d lines of error output", strings.Count(s, "\n")+1)
	}
	return nil
}

// sign makes a signed manifest for squashfs bytes sq.
func (w *world) sign(t *testing.T, m flash.Manifest, sq []byte) []byte {
	t.Helper()
	if m.Digest == nil {
		d := sha256.Sum256(sq)
		m.Digest = d[:]
	}
	if m.Size == 0 {
		m.Size = int64(len(sq))
	}
	p, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := flash.SignCOSE(p, w.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func baseManifest(name string) flash.Manifest {
	return flash.Manifest{Name: name, Version: "1", Arch: runtime.GOARCH, Kind: flash.KindSquashfs,
		Created: 1700000000, Process: flash.Process{Args: []string{"sleep", "3600"}}}
}

// otokFile assembles header + signed manifest + squashfs, with the length
// field taken from signed unless hdrLen >= 0.
func otokFile(signed, sq []byte, hdrLen int64) []byte {
	var b bytes.Buffer
	b.Write(flash.OtokMagic[:])
	binary.Write(&b, binary.BigEndian, uint16(flash.OtokVersion))
	binary.Write(&b, binary.BigEndian, uint16(0))
	if hdrLen < 0 {
		hdrLen = int64(len(signed))
	}
	binary.Write(&b, binary.BigEndian, uint32(hdrLen))
	b.Write(signed)
	b.Write(sq)
	return b.Bytes()
}

type tarEnt struct {
	name     string
	typ      byte
	link     string
	body     string
	mode     int64
	maj, min int64
}

func tarGz(ents ...tarEnt) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o644, Devmajor: e.maj, Devminor: e.min, ModTime: time.Unix(1700000000, 0)}
		if e.mode != 0 {
			h.Mode = e.mode
		}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		tw.WriteHeader(h)
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	zw.Close()
	return b.Bytes()
}

// gzipBomb is a tarball of one file of n zero bytes, gzip'd.
func gzipBomb(n int64) []byte {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: n})
	io.CopyN(tw, zeroReader{}, n)
	tw.Close()
	zw.Close()
	return b.Bytes()
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// squashfs superblock offsets (squashfs 4.0, little endian).
const (
	sbInodes, sbBlockSize, sbFragments = 4, 12, 16
	sbComp, sbBlockLog, sbMajor        = 20, 22, 28
	sbBytesUsed, sbIDTable             = 40, 48
	sbInodeTable, sbDirTable, sbFrag   = 64, 72, 80
)

func patch(b []byte, f func(b []byte)) []byte {
	c := append([]byte(nil), b...)
	f(c)
	return c
}

type importCase struct {
	name string
	data []byte
	args []string
	want string // substring of the error, if known
	// runnable: the input may be accepted at import (the damage is only
	// visible on use); then `otok run` of it must fail cleanly, leave no
	// mount, and the image must be removable.
	runnable bool
}

// TestHostileImages feeds generated hostile images and tarballs to `otok
// image import` next to a running container: each must fail with a clear
// error and leave the store, the containers and the mounts as they were.
func TestHostileImages(t *testing.T) {
	w := newWorld(t)
	dir := corpusDir(t, "images")
	// The hostile .otok files carry a squashfs whose digest is not in the
	// store yet (a known digest takes a shortcut: see the -known-digest
	// cases).
	sq := w.freshSquashfs(t)
	unsigned := []string{"--insecure-skip-verify"}
	tarArgs := []string{"--name", "evil", "--insecure-skip-verify"}
	escape := "/tmp/otok-sec-escape-" + randHex(4)
	t.Cleanup(func() {
		for _, s := range []string{"", "-abs", "-sym", "-hl"} {
			os.RemoveAll(escape + s)
		}
	})
	good := func(name string) []byte { return otokFile(w.sign(t, baseManifest(name), sq), sq, -1) }
	signedSq := func(name string, s []byte) []byte { return otokFile(w.sign(t, baseManifest(name), s), s, -1) }

	// Someone else's key.
	strangerKey := filepath.Join(t.TempDir(), "stranger")
	w.must("key", "gen", strangerKey)
	sk, _ := flash.LoadPrivateKey(strangerKey + ".key")
	strangerSigned := func() []byte {
		m := baseManifest("stranger")
		d := sha256.Sum256(sq)
		m.Digest, m.Size = d[:], int64(len(sq))
		p, _ := m.Marshal()
		s, _ := flash.SignCOSE(p, sk)
		return otokFile(s, sq, -1)
	}()
	other := patch(sq, func(b []byte) { b[len(b)-1] ^= 0xff })
	hugeLabels := baseManifest("huge")
	hugeLabels.Labels = map[string]string{}
	for i := 0; i < 4000; i++ {
		hugeLabels.Labels[fmt.Sprintf("k%05d", i)] = strings.Repeat("v", 40)
	}
	hugeSigned := func() []byte {
		d := sha256.Sum256(sq)
		hugeLabels.Digest, hugeLabels.Size = d[:], int64(len(sq))
		p, err := hugeLabels.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		s, _ := flash.SignCOSE(p, w.key)
		return s
	}()
	mipsArch := baseManifest("wrongarch")
	mipsArch.Arch = "mips"
	if runtime.GOARCH == "mips" {
		mipsArch.Arch = "arm64"
	}
	wrongDigest := baseManifest("wrongdigest")
	wrongDigest.Digest = make([]byte, 32)
	bigSize := baseManifest("bigsize")
	bigSize.Size = int64(len(sq)) + 4096
	bigSize.Digest = func() []byte { d := sha256.Sum256(sq); return d[:] }()

	cases := []importCase{
		// Rootfs tarballs.
		{name: "tar-traversal", data: tarGz(tarEnt{name: "../../../../../../.." + escape, typ: tar.TypeReg, body: "x"}), args: tarArgs},
		{name: "tar-absolute", data: tarGz(tarEnt{name: escape + "-abs", typ: tar.TypeReg, body: "x"}), args: tarArgs},
		{name: "tar-symlink-then-write", data: tarGz(tarEnt{name: "lnk", typ: tar.TypeSymlink, link: "/tmp"}, tarEnt{name: "lnk/" + filepath.Base(escape) + "-sym", typ: tar.TypeReg, body: "x"}), args: tarArgs},
		{name: "tar-symlink-dotdot-then-write", data: tarGz(tarEnt{name: "d", typ: tar.TypeSymlink, link: "../../../../../../../../tmp"}, tarEnt{name: "d/" + filepath.Base(escape) + "-sym", typ: tar.TypeReg, body: "x"}), args: tarArgs},
		{name: "tar-hardlink-outside", data: tarGz(tarEnt{name: "pw", typ: tar.TypeLink, link: "../../../../../../../etc/passwd"}), args: tarArgs},
		{name: "tar-hardlink-absolute", data: tarGz(tarEnt{name: "sh", typ: tar.TypeLink, link: "/etc/shadow"}), args: tarArgs},
		{name: "tar-device-node", data: tarGz(tarEnt{name: "mem", typ: tar.TypeChar, maj: 1, min: 1}), args: tarArgs},
		{name: "tar-setuid", data: tarGz(tarEnt{name: "su", typ: tar.TypeReg, body: "x", mode: 0o4755}), args: tarArgs},
		{name: "tar-gzip-bomb-256M", data: gzipBomb(256 << 20), args: append(tarArgs, "--max-size", "16M")},
		{name: "tar-truncated", data: tarGz(tarEnt{name: "a", typ: tar.TypeReg, body: strings.Repeat("x", 10000)})[:60], args: tarArgs},
		{name: "tar-garbage", data: bytes.Repeat([]byte{0x1f, 0x8b, 0x08, 0, 0xde, 0xad}, 1000), args: tarArgs},
		{name: "tar-long-name", data: tarGz(tarEnt{name: strings.Repeat("a/", 3000) + "f", typ: tar.TypeReg, body: "x"}), args: tarArgs},
		// .otok containers.
		{name: "otok-bad-magic", data: patch(good("badmagic"), func(b []byte) { b[1] = 'X' })},
		{name: "otok-version-2", data: patch(good("v2"), func(b []byte) { b[9] = 2 })},
		{name: "otok-flags", data: patch(good("flags"), func(b []byte) { b[11] = 1 })},
		{name: "otok-manifest-len-0", data: otokFile(nil, sq, 0)},
		{name: "otok-manifest-len-4G", data: otokFile(w.sign(t, baseManifest("len4g"), sq), sq, 0xffffffff)},
		{name: "otok-huge-manifest-1MiB", data: otokFile(bytes.Repeat([]byte{0x41}, 1<<20), sq, -1)},
		{name: "otok-huge-manifest-in-limit-but-over-cbor-limits", data: otokFile(hugeSigned, sq, -1)},
		{name: "otok-truncated-manifest", data: good("trunc")[:40]},
		{name: "otok-truncated-squashfs", data: good("truncsq")[:len(good("truncsq"))-100]},
		{name: "otok-trailing-bytes", data: append(good("trailing"), 0, 1, 2, 3)},
		{name: "otok-signature-flipped", data: patch(good("sigflip"), func(b []byte) {
			n := int(binary.BigEndian.Uint32(b[12:16]))
			b[16+n-5] ^= 0x01
		})},
		{name: "otok-signature-swap", data: otokFile(w.sign(t, baseManifest("swap"), sq), other, -1)},
		{name: "otok-untrusted-key", data: strangerSigned},
		{name: "otok-wrong-arch", data: otokFile(w.sign(t, mipsArch, sq), sq, -1)},
		{name: "otok-digest-mismatch", data: otokFile(w.sign(t, wrongDigest, sq), sq, -1)},
		{name: "otok-size-larger-than-stream", data: otokFile(w.sign(t, bigSize, sq), sq, -1)},
		{name: "otok-not-squashfs", data: signedSq("notsq", bytes.Repeat([]byte("not a squashfs "), 300))},
		// Signed, correct digest, damaged squashfs superblock.
		{name: "sqfs-bad-magic", data: signedSq("sbmagic", patch(sq, func(b []byte) { b[0] = 'X' }))},
		{name: "sqfs-major-3", data: signedSq("sbmajor", patch(sq, func(b []byte) { binary.LittleEndian.PutUint16(b[sbMajor:], 3) }))},
		{name: "sqfs-unknown-compressor", data: signedSq("sbcomp", patch(sq, func(b []byte) { binary.LittleEndian.PutUint16(b[sbComp:], 99) }))},
		{name: "sqfs-block-size-1G", data: signedSq("sbblock", patch(sq, func(b []byte) {
			binary.LittleEndian.PutUint32(b[sbBlockSize:], 1<<30)
			binary.LittleEndian.PutUint16(b[sbBlockLog:], 30)
		}))},
		{name: "sqfs-block-log-mismatch", data: signedSq("sblog", patch(sq, func(b []byte) { binary.LittleEndian.PutUint16(b[sbBlockLog:], 12) }))},
		{name: "sqfs-bytes-used-beyond-file", data: signedSq("sbused", patch(sq, func(b []byte) { binary.LittleEndian.PutUint64(b[sbBytesUsed:], uint64(len(sq))*4) }))},
		{name: "sqfs-inode-table-beyond", data: signedSq("sbinode", patch(sq, func(b []byte) { binary.LittleEndian.PutUint64(b[sbInodeTable:], 1<<40) })), runnable: true},
		{name: "sqfs-truncated-to-superblock", data: signedSq("sbtrunc", sq[:96])},
		// Signed, correct digest, damaged tables only the kernel reads.
		{name: "sqfs-fragment-table-beyond", data: signedSq("fragbeyond", patch(sq, func(b []byte) {
			binary.LittleEndian.PutUint64(b[sbFrag:], binary.LittleEndian.Uint64(b[sbBytesUsed:])+8192)
		})), runnable: true},
		{name: "sqfs-fragment-index-garbage", data: signedSq("fraggarbage", patch(sq, func(b []byte) {
			off := binary.LittleEndian.Uint64(b[sbFrag:])
			if off+8 <= uint64(len(b)) {
				binary.LittleEndian.PutUint64(b[off:], 0x7fffffffffff)
			}
		})), runnable: true},
		{name: "sqfs-fragment-count-huge", data: signedSq("fragcount", patch(sq, func(b []byte) { binary.LittleEndian.PutUint32(b[sbFragments:], 0xfffffff) })), runnable: true},
		{name: "sqfs-data-garbage", data: signedSq("datagarbage", patch(sq, func(b []byte) {
			end := int(binary.LittleEndian.Uint64(b[sbInodeTable:]))
			for i := 96; i < end && i < len(b); i += 7 {
				b[i] ^= 0x5a
			}
		})), runnable: true},
		{name: "sqfs-dir-table-garbage", data: signedSq("dirgarbage", patch(sq, func(b []byte) {
			s, e := int(binary.LittleEndian.Uint64(b[sbDirTable:])), int(binary.LittleEndian.Uint64(b[sbFrag:]))
			for i := s; i < e && i < len(b); i += 3 {
				b[i] ^= 0xa5
			}
		})), runnable: true},
		// The digest is already in the store: the squashfs that follows
		// must still be exactly what the format says.
		{name: "otok-truncated-squashfs-known-digest", data: otokFile(w.sign(t, baseManifest("kdtrunc"), w.baseSqfs), w.baseSqfs[:len(w.baseSqfs)-100], -1)},
		{name: "otok-trailing-bytes-known-digest", data: append(otokFile(w.sign(t, baseManifest("kdtrail"), w.baseSqfs), w.baseSqfs, -1), 0, 1, 2, 3)},
		{name: "otok-other-squashfs-known-digest", data: otokFile(w.sign(t, baseManifest("kdswap"), w.baseSqfs), patch(w.baseSqfs, func(b []byte) { b[len(b)-1] ^= 0xff }), -1)},
		// Bare squashfs (no manifest) without --insecure-skip-verify.
		{name: "bare-squashfs-unsigned", data: sq, args: []string{"--name", "bare"}},
		{name: "bare-squashfs-wrong-arch", data: sq, args: append([]string{"--name", "barearch", "--arch", mipsArch.Arch}, unsigned...)},
	}
	_ = unsigned

	before := w.snap()
	for _, c := range cases {
		p := filepath.Join(dir, c.name)
		if strings.HasPrefix(c.name, "tar-") {
			p += ".tar.gz"
		} else if strings.HasPrefix(c.name, "otok-") || strings.HasPrefix(c.name, "sqfs-") {
			p += ".otok"
		} else {
			p += ".sqfs"
		}
		if err := os.WriteFile(p, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		out, errOut, code := w.run(2*time.Minute, append([]string{"image", "import", p}, c.args...)...)
		took := time.Since(start)
		rec := hostileRec{Kind: "images and tarballs (otok image import)", Case: c.name, OK: true}
		last := lastLine(errOut)
		switch {
		case code == 0 && c.runnable:
			// Accepted: the damage is for the kernel to find. Running it
			// must fail cleanly and leave nothing mounted.
			rec.Detail = "accepted at import; run: " + w.runDamaged(t, strings.TrimSpace(out))
			if strings.HasPrefix(rec.Detail, "accepted at import; run: VIOLATION") {
				rec.OK = false
			}
		case code == 0:
			rec.OK, rec.Detail = false, "accepted: "+strings.TrimSpace(out)
		case code < 0:
			rec.OK, rec.Detail = false, "timed out or crashed: "+errOut
		default:
			if err := clearError(errOut); err != nil {
				rec.OK, rec.Detail = false, err.Error()
			} else {
				rec.Detail = last
			}
			if c.want != "" && !strings.Contains(errOut, c.want) {
				rec.OK, rec.Detail = false, fmt.Sprintf("error %q lacks %q", last, c.want)
			}
			if d := before.diff(w.snap()); d != "" {
				rec.OK, rec.Detail = false, d
			}
		}
		if code == 0 {
			// Back to the reference state for the next case: drop what
			// was accepted, put the base image's manifest back.
			if !c.runnable {
				if f := strings.Fields(out); len(f) > 0 {
					w.run(30*time.Second, "image", "rm", strings.Split(f[0], ":")[0])
				}
			}
			w.run(time.Minute, "image", "import", w.baseOtok)
			before = w.snap()
		}
		for _, s := range []string{"", "-abs", "-sym", "-hl"} {
			if _, err := os.Lstat(escape + s); err == nil {
				rec.OK, rec.Detail = false, "wrote outside the store: "+escape+s
			}
		}
		if took > time.Minute {
			rec.OK, rec.Detail = false, fmt.Sprintf("took %v", took)
		}
		record(t, "hostile", rec)
		if !rec.OK {
			t.Errorf("%s: %s", c.name, rec.Detail)
		} else {
			t.Logf("%-48s exit %d (%v): %s", c.name, code, took.Round(time.Millisecond), rec.Detail)
		}
	}
}

// runDamaged runs an accepted but damaged image (ref as printed by
// import, else its name), expects failure or a clean exit, no mount left,
// and removes it again.
func (w *world) runDamaged(t *testing.T, importOut string) string {
	ref := ""
	if f := strings.Fields(importOut); len(f) > 0 {
		ref = f[0]
	}
	var imgs []struct{ Name, Version, Digest string }
	o, _, _ := w.run(30*time.Second, "image", "ls", "--json")
	json.Unmarshal([]byte(o), &imgs)
	for _, im := range imgs {
		if im.Name != "base" {
			ref = im.Name
		}
	}
	name := "sec-damaged-" + randHex(3)
	mountsBefore := strings.Join(mountsUnder(w.dir), "\n")
	out, errOut, code := w.run(time.Minute, "run", "--rm", "--name", name, ref, "cat", "/etc/passwd", "/bin/busybox")
	res := fmt.Sprintf("exit %d %s", code, lastLine(errOut))
	if code < 0 {
		return "VIOLATION: run hung: " + res
	}
	if err := clearError(errOut); err != nil && code != 0 {
		return "VIOLATION: " + err.Error()
	}
	_ = out
	w.run(30*time.Second, "rm", "-f", name)
	if _, e, c := w.run(30*time.Second, "image", "rm", ref); c != 0 {
		return "VIOLATION: image rm " + ref + ": " + lastLine(e)
	}
	deadline := time.Now().Add(5 * time.Second)
	for strings.Join(mountsUnder(w.dir), "\n") != mountsBefore {
		if time.Now().After(deadline) {
			return "VIOLATION: mounts left: " + lineDiff(mountsBefore, strings.Join(mountsUnder(w.dir), "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if w.pidOf(w.sentinel) != w.sentPid {
		return "VIOLATION: sentinel changed"
	}
	return res
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(l[len(l)-1])
}
