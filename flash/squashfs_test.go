package flash

import (
	"encoding/binary"
	"os"
	"strings"
	"testing"
)

func TestSuperblockReal(t *testing.T) {
	sq := makeSquashfs(t, map[string]string{"bin/hello": "hello", "etc/motd": "hi"})
	b, _ := os.ReadFile(sq)
	sb, err := ParseSuperblock(b)
	if err != nil {
		t.Fatal(err)
	}
	if sb.Compression != CompXz || sb.BlockSize != 128<<10 {
		t.Fatalf("got %+v", sb)
	}
	if err := sb.Check(int64(len(b)), AllComps()); err != nil {
		t.Fatal(err)
	}
	if err := sb.Check(int64(sb.BytesUsed)-1, AllComps()); err == nil || !strings.Contains(err.Error(), "bytes_used") {
		t.Fatalf("short: %v", err)
	}
	if err := sb.Check(int64(len(b)), CompSet{CompGzip: true}); err == nil || !strings.Contains(err.Error(), "compression xz not supported") {
		t.Fatalf("comp: %v", err)
	}
}

func TestSuperblockRejects(t *testing.T) {
	good := goodSuperblock()
	if _, err := ParseSuperblock(good); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		off  int
		val  uint64
		size int
		want string
	}{
		"magic":      {0, 0x12345678, 4, "bad magic"},
		"version":    {28, 3, 2, "version 3.0"},
		"block size": {12, 1000, 4, "block size"},
		"block log":  {22, 13, 2, "block size"},
		"comp":       {20, 9, 2, "unknown compression"},
		"bytes_used": {40, 10, 8, "bytes_used"},
		"table":      {64, 1 << 40, 8, "beyond bytes_used"},
	} {
		b := append([]byte{}, good...)
		switch c.size {
		case 2:
			binary.LittleEndian.PutUint16(b[c.off:], uint16(c.val))
		case 4:
			binary.LittleEndian.PutUint32(b[c.off:], uint32(c.val))
		case 8:
			binary.LittleEndian.PutUint64(b[c.off:], c.val)
		}
		if _, err := ParseSuperblock(b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", name, err, c.want)
		}
	}
	if _, err := ParseSuperblock(good[:50]); err == nil {
		t.Error("short accepted")
	}
}

func goodSuperblock() []byte {
	b := make([]byte, SuperblockSize)
	le := binary.LittleEndian
	le.PutUint32(b[0:], squashfsMagic)
	le.PutUint32(b[4:], 5)
	le.PutUint32(b[12:], 131072)
	le.PutUint16(b[20:], CompXz)
	le.PutUint16(b[22:], 17)
	le.PutUint16(b[28:], 4)
	le.PutUint64(b[40:], 4096)
	for i := 0; i < 6; i++ {
		le.PutUint64(b[48+8*i:], 1000)
	}
	return b
}

func TestCompsFromConfig(t *testing.T) {
	s, src := KernelComps()
	t.Logf("kernel squashfs compressors: %s (from %s)", s, src)
}

func FuzzParseSuperblock(f *testing.F) {
	f.Add(goodSuperblock())
	addSeeds(f, "squashfs")
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := ParseSuperblock(b)
		if err != nil {
			return
		}
		if sb.BlockSize != 1<<sb.BlockLog || sb.BytesUsed < SuperblockSize {
			t.Fatalf("insane superblock accepted: %+v", sb)
		}
		sb.Check(int64(len(b)), AllComps())
	})
}
