package flash

import (
	"bytes"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// supportsDirect probes whether dir's filesystem takes O_DIRECT.
func supportsDirect(t *testing.T, dir string) bool {
	p := filepath.Join(dir, "probe")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|unix.O_DIRECT, 0o644)
	os.Remove(p)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// TestDirectWriter: whatever the filesystem and however the writes are
// cut (aligned blocks, an unaligned tail, an unaligned buffer, an empty
// write), the file holds exactly the bytes written; aligned blocks go
// through O_DIRECT where the filesystem has it, and after the first write
// O_DIRECT cannot take the rest is written buffered.
func TestDirectWriter(t *testing.T) {
	dir := t.TempDir()
	direct := supportsDirect(t, dir)
	data := make([]byte, 3<<20+777)
	rand.Read(data)
	misaligned := append(make([]byte, 1), data[:8192]...)[1:] // same bytes, buffer off the 4 KiB boundary
	for _, tc := range []struct {
		name       string
		chunks     func() [][]byte
		directLeft bool // O_DIRECT still on after the writes (where supported)
	}{
		{"aligned blocks only", func() [][]byte {
			b := alignedBuffer(2 << 20)
			copy(b, data)
			return [][]byte{b[:1<<20], b[1<<20:]}
		}, true},
		{"aligned blocks then unaligned tail", func() [][]byte {
			b := alignedBuffer(len(data))
			copy(b, data)
			return [][]byte{b[:1<<20], b[1<<20 : 3<<20], b[3<<20:]}
		}, false},
		{"unaligned buffer first", func() [][]byte {
			b := alignedBuffer(len(data))
			copy(b, data)
			return [][]byte{misaligned, b[8192:]}
		}, false},
		{"odd sizes throughout", func() [][]byte {
			return [][]byte{data[:96], data[96:5000], {}, data[5000:]}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "f")
			os.Remove(p)
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
			if err != nil {
				t.Fatal(err)
			}
			w := newDirectWriter(f)
			if w.direct != direct {
				t.Fatalf("O_DIRECT on = %v, filesystem supports it = %v", w.direct, direct)
			}
			var want []byte
			for _, c := range tc.chunks() {
				n, err := w.Write(c)
				if err != nil || n != len(c) {
					t.Fatalf("write %d bytes: %d %v", len(c), n, err)
				}
				want = append(want, c...)
			}
			if w.direct != (direct && tc.directLeft) {
				t.Fatalf("O_DIRECT on after the writes = %v, want %v", w.direct, direct && tc.directLeft)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			f.Close()
			got, _ := os.ReadFile(p)
			if !bytes.Equal(got, want) || w.off != int64(len(want)) {
				t.Fatalf("file holds %d bytes (offset %d), want %d, equal %v", len(got), w.off, len(want), bytes.Equal(got, want))
			}
		})
	}
}

// TestImportUnalignedSizes: squashfs streams whose size is not a multiple
// of the O_DIRECT block (and a stream that arrives in odd pieces) are
// stored byte for byte and verify.
func TestImportUnalignedSizes(t *testing.T) {
	sq := makeSquashfs(t, map[string]string{"f": "x"}, "-nopad")
	b, err := os.ReadFile(sq)
	if err != nil {
		t.Fatal(err)
	}
	if len(b)%directAlign == 0 {
		t.Fatalf("-nopad squashfs is %d bytes, want an unaligned size", len(b))
	}
	st := openTestStore(t, t.TempDir(), testKey())
	o := makeOtok(t, sq, imgManifest("odd", "1"), testKey())
	res, err := st.ImportOtok(bg, &pieces{b: o, n: 1000}, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(res.Image.SquashfsPath())
	if !bytes.Equal(got, b) || st.Verify(res.Image) != nil {
		t.Fatalf("stored %d bytes, want %d", len(got), len(b))
	}
}

// pieces reads b at most n bytes at a time.
type pieces struct {
	b []byte
	n int
}

func (p *pieces) Read(q []byte) (int, error) {
	if len(p.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(q), p.n, len(p.b))
	copy(q, p.b[:k])
	p.b = p.b[k:]
	return k, nil
}
