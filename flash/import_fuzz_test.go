package flash

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzImportSquashfs streams arbitrary bytes, cut into reads of arbitrary
// sizes, into the store as a bare squashfs (size unknown, as from stdin)
// and as one of declared size. Either the import fails and the store holds
// no image and no temp file, or it succeeds and the stored squashfs is
// exactly the input, named by its sha256. This drives the import pipeline
// (reader, hasher, writer; O_DIRECT and its buffered fallback for
// unaligned tails) through its error and success paths.
func FuzzImportSquashfs(f *testing.F) {
	// Seeds: small squashfs images of the unit tests (testdata/squashfs),
	// one of them not a multiple of 4 KiB (large inputs slow the fuzzer to
	// a crawl; chunk sizes vary the cuts instead).
	for _, fx := range []struct {
		files map[string]string
		extra []string
	}{
		{map[string]string{"bin/sh": "#!", "etc/motd": "hello"}, nil},
		{map[string]string{"f": "x"}, []string{"-nopad"}},
		{map[string]string{"x": "y"}, nil},
	} {
		if sq, err := os.ReadFile(squashfsFixture(fx.files, fx.extra)); err == nil {
			f.Add(sq, uint16(1000), true)
			f.Add(sq[:len(sq)-1], uint16(4096), false)
			f.Add(append(sq, 0), uint16(0), true)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint16, declare bool) {
		root := t.TempDir()
		st := openTestStore(t, root)
		size := int64(-1)
		if declare {
			size = int64(len(in))
		}
		r := &pieces{b: in, n: int(chunk)%(1<<20) + 1}
		m := Manifest{Name: "fuzz", Version: "1", Arch: HostArch(), Created: 1, Process: Process{Args: []string{"/bin/sh"}}}
		res, err := st.ImportSquashfs(bg, r, size, m, ImportOptions{InsecureSkipVerify: true})
		imgs, _ := os.ReadDir(filepath.Join(root, dirImages))
		if tmp := st.TempEntries(); len(tmp) != 0 {
			t.Fatalf("temp left after import (err %v): %v", err, tmp)
		}
		if err != nil {
			if len(imgs) != 0 {
				t.Fatalf("failed import (%v) left images %v", err, imgs)
			}
			return
		}
		sum := sha256.Sum256(in)
		if res.Image.Digest != hex.EncodeToString(sum[:]) || len(imgs) != 1 {
			t.Fatalf("imported %s (%d images), input is sha256:%x", res.Image.Digest, len(imgs), sum)
		}
		got, rerr := os.ReadFile(res.Image.SquashfsPath())
		if rerr != nil || !bytes.Equal(got, in) {
			t.Fatalf("stored %d bytes, input %d (%v)", len(got), len(in), rerr)
		}
		if err := st.Verify(res.Image); err != nil {
			t.Fatal(err)
		}
	})
}

var _ io.Reader = (*pieces)(nil)
