package flash

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// otokWith signs m for the content of sq and appends payload (which may
// differ from sq) as the squashfs stream.
func otokWith(t *testing.T, sq string, m *Manifest, payload []byte) []byte {
	t.Helper()
	full := makeOtok(t, sq, m, testKey())
	data, err := os.ReadFile(sq)
	if err != nil {
		t.Fatal(err)
	}
	hdr := full[:len(full)-len(data)]
	return append(append([]byte{}, hdr...), payload...)
}

// TestReimportIdenticalWritesNothing: the known-digest path reads and
// hashes the stream but writes nothing to flash.
func TestReimportIdenticalWritesNothing(t *testing.T) {
	root := t.TempDir()
	st := openTestStore(t, root, testKey())
	sq := makeSquashfs(t, map[string]string{"bin/sh": "#!", "etc/motd": noise(200000)})
	otok := makeOtok(t, sq, imgManifest("app", "1"), testKey())
	if _, err := st.ImportOtok(bg, bytes.NewReader(otok), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, root)
	r := bytes.NewReader(otok)
	var last int64
	res, err := st.ImportOtok(bg, r, ImportOptions{Progress: func(done, _ int64) { last = done }})
	if err != nil || !res.Existed || res.BytesWritten != 0 || res.Image.Ref() != "app:1" {
		t.Fatalf("re-import: %+v %v", res, err)
	}
	if r.Len() != 0 {
		t.Fatalf("re-import left %d bytes of the stream unread", r.Len())
	}
	if last != int64(fileSize(t, sq)) {
		t.Fatalf("progress reached %d of %d", last, fileSize(t, sq))
	}
	if after := snapshot(t, root); after != before {
		t.Fatalf("re-import changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if c := st.Counters(); c.Imports != 1 {
		t.Fatalf("counters %+v", c)
	}
}

// TestReimportKnownDigestBadPayload: a signed manifest naming stored
// content, followed by a stream that is not exactly that content, is
// refused and the store stays byte for byte as it was, under any name.
func TestReimportKnownDigestBadPayload(t *testing.T) {
	root := t.TempDir()
	st := openTestStore(t, root, testKey())
	sq := makeSquashfs(t, map[string]string{"bin/sh": "#!", "etc/motd": noise(200000)})
	if _, err := st.ImportOtok(bg, bytes.NewReader(makeOtok(t, sq, imgManifest("app", "1"), testKey())), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(sq)
	flipped := append([]byte{}, data...)
	flipped[len(flipped)-1] ^= 0xff
	flippedHead := append([]byte{}, data...)
	flippedHead[100] ^= 0x01
	payloads := []struct {
		name, want string
		data       []byte
	}{
		{"truncated", "truncated", data[:len(data)-100]},
		{"empty", "truncated", nil},
		{"padded", "longer than the declared size", append(append([]byte{}, data...), 0, 1, 2, 3)},
		{"different tail", "digest mismatch", flipped},
		{"different head", "digest mismatch", flippedHead},
		{"twice", "longer than the declared size", append(append([]byte{}, data...), data...)},
	}
	before := snapshot(t, root)
	for _, name := range []string{"app", "other"} {
		for _, p := range payloads {
			in := otokWith(t, sq, imgManifest(name, "2"), p.data)
			_, err := st.ImportOtok(bg, bytes.NewReader(in), ImportOptions{})
			if err == nil || !strings.Contains(err.Error(), p.want) {
				t.Errorf("%s %s: got %v, want %q", name, p.name, err, p.want)
			}
			if after := snapshot(t, root); after != before {
				t.Errorf("%s %s: store changed:\nbefore:\n%s\nafter:\n%s", name, p.name, before, after)
			}
		}
	}
	imgs, _ := st.List()
	if len(imgs) != 1 || imgs[0].Ref() != "app:1" {
		t.Fatalf("store lists %v", imgs)
	}
	// A cancelled context stops the known-digest read too.
	ctx, cancel := context.WithCancel(bg)
	cancel()
	if _, err := st.ImportOtok(ctx, bytes.NewReader(makeOtok(t, sq, imgManifest("app", "3"), testKey())), ImportOptions{}); err == nil {
		t.Error("cancelled import accepted")
	}
	if after := snapshot(t, root); after != before {
		t.Errorf("cancelled: store changed")
	}
}

// TestSameSquashfsTwoNames: one squashfs imported under a second name is
// listed under both; removing either keeps the other working, the content
// goes with the last; GC frees it only with the last reference.
func TestSameSquashfsTwoNames(t *testing.T) {
	root := t.TempDir()
	st := openTestStore(t, root, testKey())
	sq := makeSquashfs(t, map[string]string{"bin/sh": "#!", "etc/motd": "shared"})
	a, err := st.ImportOtok(bg, bytes.NewReader(makeOtok(t, sq, imgManifest("alpha", "1"), testKey())), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sqBytes := a.BytesWritten
	b, err := st.ImportOtok(bg, bytes.NewReader(makeOtok(t, sq, imgManifest("beta", "7"), testKey())), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !b.Existed || b.Image.Ref() != "beta:7" || b.Image.Digest != a.Image.Digest || b.BytesWritten <= 0 || b.BytesWritten >= sqBytes/2 {
		t.Fatalf("second name: %+v (first wrote %d)", b, sqBytes)
	}
	imgs, errs := st.List()
	if len(errs) != 0 || len(imgs) != 2 || imgs[0].Ref() != "alpha:1" || imgs[1].Ref() != "beta:7" {
		t.Fatalf("list: %v %v", imgs, errs)
	}
	for _, ref := range []string{"alpha", "alpha:1", "beta", "beta:7"} {
		img, err := st.Resolve(ref)
		if err != nil || img.Manifest.Name != strings.Split(ref, ":")[0] {
			t.Fatalf("resolve %s: %v %v", ref, img, err)
		}
		if err := st.Verify(img); err != nil {
			t.Fatalf("verify %s: %v", ref, err)
		}
	}
	if img, err := st.Resolve("sha256:" + a.Image.Digest); err != nil || img.Digest != a.Image.Digest {
		t.Fatalf("resolve by digest: %v %v", img, err)
	}
	// Re-importing either name again changes nothing.
	before := snapshot(t, root)
	for _, m := range []*Manifest{imgManifest("alpha", "1"), imgManifest("beta", "7")} {
		res, err := st.ImportOtok(bg, bytes.NewReader(makeOtok(t, sq, m, testKey())), ImportOptions{})
		if err != nil || !res.Existed || res.BytesWritten != 0 || res.Image.Ref() != m.Ref() {
			t.Fatalf("re-import %s: %+v %v", m.Ref(), res, err)
		}
	}
	if snapshot(t, root) != before {
		t.Fatal("re-import of a shared content changed the store")
	}

	// GC with nothing kept and beta in use by digest: both stay.
	rm, _, err := st.GC(bg, GCOptions{InUse: func(d string) bool { return d == a.Image.Digest }})
	if err != nil || len(rm) != 0 {
		t.Fatalf("gc in use: %v %v", rm, err)
	}

	if _, err := st.Remove(bg, "alpha", nil); err != nil {
		t.Fatal(err)
	}
	imgs, _ = st.List()
	if len(imgs) != 1 || imgs[0].Ref() != "beta:7" {
		t.Fatalf("after rm alpha: %v", imgs)
	}
	if _, err := os.Stat(imgs[0].SquashfsPath()); err != nil {
		t.Fatalf("content gone with alpha: %v", err)
	}
	if err := st.Verify(imgs[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Resolve("alpha"); err == nil {
		t.Fatal("alpha still resolves")
	}
	// alpha again, then GC drops one name without freeing, the other with.
	if _, err := st.ImportOtok(bg, bytes.NewReader(makeOtok(t, sq, imgManifest("alpha", "1"), testKey())), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	rm, freed, err := st.GC(bg, GCOptions{DryRun: true})
	if err != nil || len(rm) != 2 || freed != a.Image.Info.DiskBytes {
		t.Fatalf("gc dry run: %v freed %d (disk %d) %v", rm, freed, a.Image.Info.DiskBytes, err)
	}
	rm, freed, err = st.GC(bg, GCOptions{})
	if err != nil || len(rm) != 2 || freed != a.Image.Info.DiskBytes {
		t.Fatalf("gc: %v freed %d %v", rm, freed, err)
	}
	if imgs, _ := st.List(); len(imgs) != 0 {
		t.Fatalf("left %v", imgs)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, dirImages)); len(ents) != 0 {
		t.Fatalf("images/ holds %v", ents)
	}
	if len(st.TempEntries()) != 0 {
		t.Fatal("temp left")
	}
}

// TestSameSquashfsRemoveSecondKeepsFirst: removing the later name leaves
// the first one, and the first one's manifest file, as they were.
func TestSameSquashfsRemoveSecondKeepsFirst(t *testing.T) {
	root := t.TempDir()
	st := openTestStore(t, root, testKey())
	sq := makeSquashfs(t, map[string]string{"bin/sh": "#!"})
	if _, err := st.ImportOtok(bg, bytes.NewReader(makeOtok(t, sq, imgManifest("alpha", "1"), testKey())), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, root)
	if _, err := st.ImportOtok(bg, bytes.NewReader(makeOtok(t, sq, imgManifest("beta", "1"), testKey())), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Remove(bg, "beta:1", nil); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, root); after != before {
		t.Fatalf("rm of the second name did not restore the store:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	img, err := st.Resolve("alpha")
	if err != nil || st.Verify(img) != nil {
		t.Fatalf("alpha: %v %v", img, err)
	}
}
