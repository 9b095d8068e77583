package flash

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

func TestCompsFromConfigLines(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config string
		want   string
		seen   bool
	}{
		{"openwrt", "CONFIG_SQUASHFS=y\nCONFIG_SQUASHFS_XZ=y\n# CONFIG_SQUASHFS_ZLIB is not set\nCONFIG_SQUASHFS_XATTR=y\n", "xz", true},
		{"debian", "CONFIG_SQUASHFS=m\nCONFIG_SQUASHFS_ZLIB=y\nCONFIG_SQUASHFS_LZ4=y\nCONFIG_SQUASHFS_LZO=y\nCONFIG_SQUASHFS_XZ=y\nCONFIG_SQUASHFS_ZSTD=y\n", "gzip,lz4,lzo,xz,zstd", true},
		{"no squashfs", "CONFIG_EXT4_FS=y\n# CONFIG_SQUASHFS is not set\nCONFIG_SQUASHFS_XZ=y\n", "xz", false},
		{"near misses", "CONFIG_SQUASHFS=y\nCONFIG_SQUASHFS_XZ=m\nCONFIG_SQUASHFS_XZX=y\nCONFIG_SQUASHFSXZ=y\nXCONFIG_SQUASHFS_ZSTD=y\nCONFIG_SQUASHFS_=y\nCONFIG_SQUASHFS_LZ4=y # trailing\n", "none", true},
		{"empty", "", "none", false},
	} {
		got, seen := compsFromConfig(bufio.NewScanner(strings.NewReader(tc.config)))
		if got.String() != tc.want || seen != tc.seen {
			t.Errorf("%s: %s seen=%v, want %s seen=%v", tc.name, got, seen, tc.want, tc.seen)
		}
	}
	// The running kernel's config, when there is one, parses.
	var u unameBuf
	if f, err := os.Open("/boot/config-" + u.release()); err == nil {
		defer f.Close()
		if s, seen := compsFromConfig(bufio.NewScanner(f)); seen && len(s) == 0 {
			t.Errorf("/boot/config-%s: squashfs without a compressor", u.release())
		}
	}
}
