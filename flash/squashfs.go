package flash

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
)

// Squashfs 4.0 superblock (little endian on disk, every arch):
//
//	0 magic u32 "hsqs"   4 inodes u32        8 mkfs_time u32
//	12 block_size u32    16 fragments u32    20 compression u16
//	22 block_log u16     24 flags u16        26 no_ids u16
//	28 major u16         30 minor u16        32 root_inode u64
//	40 bytes_used u64    48 id_table u64     56 xattr_id_table u64
//	64 inode_table u64   72 directory_table u64
//	80 fragment_table u64 88 lookup_table u64   (96 bytes)

// SuperblockSize is the size of a squashfs 4.0 superblock.
const SuperblockSize = 96

const squashfsMagic = 0x73717368

// Squashfs compression ids.
const (
	CompGzip = 1
	CompLzma = 2
	CompLzo  = 3
	CompXz   = 4
	CompLz4  = 5
	CompZstd = 6
)

var compNames = map[uint16]string{CompGzip: "gzip", CompLzma: "lzma", CompLzo: "lzo", CompXz: "xz", CompLz4: "lz4", CompZstd: "zstd"}

// CompName names a squashfs compression id.
func CompName(id uint16) string {
	if n, ok := compNames[id]; ok {
		return n
	}
	return fmt.Sprintf("unknown(%d)", id)
}

// Superblock is the part of a squashfs superblock otok checks.
type Superblock struct {
	Inodes      uint32
	MkfsTime    uint32
	BlockSize   uint32
	Compression uint16
	BlockLog    uint16
	Major       uint16
	Minor       uint16
	BytesUsed   uint64
	Tables      [6]uint64 // id, xattr id, inode, directory, fragment, lookup
}

// ParseSuperblock decodes and checks a superblock on its own: magic,
// version 4.0, block size a power of two in 4 KiB…1 MiB matching
// block_log, table offsets within bytes_used.
func ParseSuperblock(b []byte) (*Superblock, error) {
	if len(b) < SuperblockSize {
		return nil, fmt.Errorf("squashfs: superblock truncated (%d of %d bytes)", len(b), SuperblockSize)
	}
	le := binary.LittleEndian
	if m := le.Uint32(b[0:]); m != squashfsMagic {
		return nil, fmt.Errorf("squashfs: bad magic %#08x", m)
	}
	sb := &Superblock{
		Inodes: le.Uint32(b[4:]), MkfsTime: le.Uint32(b[8:]), BlockSize: le.Uint32(b[12:]),
		Compression: le.Uint16(b[20:]), BlockLog: le.Uint16(b[22:]),
		Major: le.Uint16(b[28:]), Minor: le.Uint16(b[30:]), BytesUsed: le.Uint64(b[40:]),
	}
	for i := range sb.Tables {
		sb.Tables[i] = le.Uint64(b[48+8*i:])
	}
	if sb.Major != 4 || sb.Minor != 0 {
		return nil, fmt.Errorf("squashfs: version %d.%d, want 4.0", sb.Major, sb.Minor)
	}
	if sb.BlockLog < 12 || sb.BlockLog > 20 || sb.BlockSize != 1<<sb.BlockLog {
		return nil, fmt.Errorf("squashfs: insane block size %d (log %d)", sb.BlockSize, sb.BlockLog)
	}
	if _, ok := compNames[sb.Compression]; !ok {
		return nil, fmt.Errorf("squashfs: unknown compression id %d", sb.Compression)
	}
	if sb.BytesUsed < SuperblockSize {
		return nil, fmt.Errorf("squashfs: bytes_used %d smaller than the superblock", sb.BytesUsed)
	}
	if sb.Inodes == 0 {
		return nil, errors.New("squashfs: no inodes")
	}
	for i, t := range sb.Tables {
		// xattr, fragment and lookup tables may be absent (all ones).
		if t == ^uint64(0) && (i == 1 || i == 4 || i == 5) {
			continue
		}
		if t >= sb.BytesUsed {
			return nil, fmt.Errorf("squashfs: table %d at %d beyond bytes_used %d", i, t, sb.BytesUsed)
		}
	}
	return sb, nil
}

// Check checks the superblock against the file's size and the compressors
// the kernel has.
func (sb *Superblock) Check(size int64, comps CompSet) error {
	if sb.BytesUsed > uint64(size) {
		return fmt.Errorf("squashfs: bytes_used %d exceeds the image size %d", sb.BytesUsed, size)
	}
	if !comps.Has(sb.Compression) {
		return fmt.Errorf("squashfs: compression %s not supported by this kernel (has %s)", CompName(sb.Compression), comps)
	}
	return nil
}

// CompSet is a set of squashfs compression ids.
type CompSet map[uint16]bool

// Has reports whether id is in the set.
func (c CompSet) Has(id uint16) bool { return c[id] }

func (c CompSet) String() string {
	var n []string
	for id := range c {
		n = append(n, CompName(id))
	}
	sort.Strings(n)
	if len(n) == 0 {
		return "none"
	}
	return strings.Join(n, ",")
}

// AllComps is every compression a Linux kernel can mount (lzma never was).
func AllComps() CompSet {
	return CompSet{CompGzip: true, CompLzo: true, CompXz: true, CompLz4: true, CompZstd: true}
}

var kernelComps struct {
	once sync.Once
	set  CompSet
	src  string
}

// KernelComps returns the squashfs compressors this kernel supports and
// where that was learnt: CONFIG_SQUASHFS_* from /proc/config.gz or
// /boot/config-RELEASE; without either, OpenWrt (its kernels enable only
// xz) or every compressor.
func KernelComps() (CompSet, string) {
	kernelComps.once.Do(func() {
		kernelComps.set, kernelComps.src = detectKernelComps()
	})
	return kernelComps.set, kernelComps.src
}

func detectKernelComps() (CompSet, string) {
	if f, err := os.Open("/proc/config.gz"); err == nil {
		defer f.Close()
		if zr, err := gzip.NewReader(f); err == nil {
			if s, ok := compsFromConfig(bufio.NewScanner(zr)); ok {
				return s, "/proc/config.gz"
			}
		}
	}
	var u unameBuf
	if rel := u.release(); rel != "" {
		p := "/boot/config-" + rel
		if f, err := os.Open(p); err == nil {
			defer f.Close()
			if s, ok := compsFromConfig(bufio.NewScanner(f)); ok {
				return s, p
			}
		}
	}
	if _, err := os.Stat("/etc/openwrt_release"); err == nil {
		return CompSet{CompXz: true}, "OpenWrt default (xz only)"
	}
	return AllComps(), "assumed (no kernel config found)"
}

func compsFromConfig(sc *bufio.Scanner) (CompSet, bool) {
	s := CompSet{}
	seen := false
	m := map[string]uint16{"ZLIB": CompGzip, "LZO": CompLzo, "XZ": CompXz, "LZ4": CompLz4, "ZSTD": CompZstd}
	for sc.Scan() {
		// Only the few CONFIG_SQUASHFS lines matter: skip the other
		// thousands without allocating (a router's CPU pays for each).
		l := sc.Bytes()
		rest, ok := bytes.CutPrefix(l, []byte("CONFIG_SQUASHFS"))
		if !ok {
			continue
		}
		if string(rest) == "=y" || string(rest) == "=m" {
			seen = true
			continue
		}
		if k, ok := bytes.CutSuffix(rest, []byte("=y")); ok && len(k) > 1 && k[0] == '_' {
			if id, ok := m[string(k[1:])]; ok {
				s[id] = true
			}
		}
	}
	return s, seen
}
