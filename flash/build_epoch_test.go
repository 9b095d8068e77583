package flash

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildSourceDateEpoch: with SOURCE_DATE_EPOCH in the environment
// (newer mksquashfs refuses it together with -mkfs-time/-all-time) the
// build works, the manifest and the squashfs carry that time unless
// Created is given, two builds are identical, and a malformed value is a
// clear error that writes nothing.
func TestBuildSourceDateEpoch(t *testing.T) {
	needTools(t, "mksquashfs")
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "hello"), []byte("hi\n"), 0o644)
	build := func(created int64) (*BuildResult, []byte, []byte, error) {
		dir := t.TempDir()
		o := BuildOptions{From: src, Name: "epoch", Version: "1", Arch: "amd64", Key: testKey(), Created: created,
			Out: filepath.Join(dir, "e.otok"), SquashfsOut: filepath.Join(dir, "e.sqfs")}
		res, err := Build(bg, o)
		if err != nil {
			if _, serr := os.Stat(o.Out); serr == nil {
				t.Errorf("failed build left %s", o.Out)
			}
			return nil, nil, nil, err
		}
		otok, _ := os.ReadFile(o.Out)
		sq, _ := os.ReadFile(o.SquashfsOut)
		return res, otok, sq, nil
	}
	for _, tc := range []struct {
		name    string
		env     string
		created int64
		want    int64 // manifest created and squashfs mkfs_time
		err     string
	}{
		{"epoch from the environment", "1700000000", 0, 1700000000, ""},
		{"explicit time wins", "1700000000", 1234567, 1234567, ""},
		{"epoch zero", "0", 0, 0, ""},
		{"not a number", "yesterday", 0, 0, `SOURCE_DATE_EPOCH="yesterday" is not a Unix time`},
		{"negative", "-5", 0, 0, "is not a Unix time"},
		{"beyond squashfs 32-bit time", "4294967296", 0, 0, "is not a Unix time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SOURCE_DATE_EPOCH", tc.env)
			res, otok, sq, err := build(tc.created)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "image epoch") {
					t.Fatalf("err = %v, want %q naming the image", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Manifest.Created != tc.want {
				t.Fatalf("manifest created %d, want %d", res.Manifest.Created, tc.want)
			}
			if mt := binary.LittleEndian.Uint32(sq[8:]); int64(mt) != tc.want {
				t.Fatalf("squashfs mkfs_time %d, want %d", mt, tc.want)
			}
			_, otok2, _, err := build(tc.created)
			if err != nil || !bytes.Equal(otok, otok2) {
				t.Fatalf("second build differs (err %v)", err)
			}
		})
	}
}
