package pkg

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// An independent reader of apk-tools v3 packages (doc/apk-v3.5.scd,
// src/apk_adb.h): it knows the wire format and the package schema's field
// numbers, nothing of how openwrt-feed/mkpkg writes them.

type adbPkg struct {
	adb  []byte // ADB block payload
	data []adbData
	sigs int
}

type adbData struct {
	path, file uint32
	content    []byte
}

func parseAPK(t *testing.T, b []byte) adbPkg {
	t.Helper()
	if len(b) < 4 || string(b[:4]) != "ADBd" {
		t.Fatalf("apk: no ADBd (deflate) header: % x", b[:min(len(b), 8)])
	}
	inner, err := io.ReadAll(flate.NewReader(bytes.NewReader(b[4:])))
	if err != nil {
		t.Fatalf("apk: inflate: %v", err)
	}
	if len(inner) < 8 || string(inner[:4]) != "ADB." {
		t.Fatalf("apk: no ADB. magic")
	}
	if schema := binary.LittleEndian.Uint32(inner[4:]); schema != 0x676b6370 {
		t.Fatalf("apk: schema %#x, want pckg", schema)
	}
	var p adbPkg
	for off, n := 8, 0; off < len(inner); n++ {
		if off+4 > len(inner) {
			t.Fatalf("apk: truncated block header at %d", off)
		}
		tag := binary.LittleEndian.Uint32(inner[off:])
		typ, size := tag>>30, int(tag&0x3fffffff)
		if size < 4 || off+size > len(inner) {
			t.Fatalf("apk: block %d size %d at %d overruns %d", n, size, off, len(inner))
		}
		payload := inner[off+4 : off+size]
		switch {
		case n == 0 && typ == 0:
			p.adb = payload
		case n == 0:
			t.Fatalf("apk: first block has type %d, want ADB", typ)
		case typ == 1 && len(p.data) == 0:
			p.sigs++
		case typ == 2:
			if len(payload) < 8 {
				t.Fatalf("apk: DATA block too short")
			}
			p.data = append(p.data, adbData{binary.LittleEndian.Uint32(payload), binary.LittleEndian.Uint32(payload[4:]), payload[8:]})
		default:
			t.Fatalf("apk: block %d: type %d out of order", n, typ)
		}
		padded := (size + 7) &^ 7
		for _, z := range inner[off+size : min(off+padded, len(inner))] {
			if z != 0 {
				t.Fatalf("apk: non-zero block padding")
			}
		}
		off += padded
	}
	if p.adb == nil || len(p.adb) < 8 || p.adb[0] != 0 {
		t.Fatalf("apk: ADB header missing or compat version not 0")
	}
	return p
}

func (p adbPkg) deref(t *testing.T, v uint32, n int) []byte {
	t.Helper()
	off := int(v & 0x0fffffff)
	if off+n > len(p.adb) {
		t.Fatalf("adb: value %#x (+%d) beyond the ADB block (%d)", v, n, len(p.adb))
	}
	return p.adb[off : off+n]
}

// fields returns an object's or array's slots; [0] is unused, so fields
// are indexed from 1 as in apk_adb.h. A null value reads as no fields.
func (p adbPkg) fields(t *testing.T, v uint32) []uint32 {
	t.Helper()
	if v == 0 {
		return []uint32{0}
	}
	if typ := v >> 28; typ != 0xd && typ != 0xe {
		t.Fatalf("adb: value %#x is not an object or array", v)
	}
	n := int(binary.LittleEndian.Uint32(p.deref(t, v, 4)))
	b := p.deref(t, v, 4*n)
	out := make([]uint32, n)
	for i := 1; i < n; i++ {
		out[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return out
}

func field(f []uint32, i int) uint32 {
	if i < len(f) {
		return f[i]
	}
	return 0
}

func (p adbPkg) blob(t *testing.T, v uint32) []byte {
	t.Helper()
	switch v >> 28 {
	case 0:
		if v != 0 {
			t.Fatalf("adb: special %#x where a blob belongs", v)
		}
		return nil
	case 0x8:
		n := int(p.deref(t, v, 1)[0])
		return p.deref(t, v, 1+n)[1:]
	case 0x9:
		n := int(binary.LittleEndian.Uint16(p.deref(t, v, 2)))
		return p.deref(t, v, 2+n)[2:]
	case 0xa:
		n := int(binary.LittleEndian.Uint32(p.deref(t, v, 4)))
		return p.deref(t, v, 4+n)[4:]
	}
	t.Fatalf("adb: value %#x is not a blob", v)
	return nil
}

func (p adbPkg) str(t *testing.T, v uint32) string { return string(p.blob(t, v)) }

func (p adbPkg) int(t *testing.T, v uint32) uint64 {
	t.Helper()
	switch v >> 28 {
	case 0:
		return 0
	case 0x1:
		return uint64(v & 0x0fffffff)
	case 0x2:
		return uint64(binary.LittleEndian.Uint32(p.deref(t, v, 4)))
	case 0x3:
		return binary.LittleEndian.Uint64(p.deref(t, v, 8))
	}
	t.Fatalf("adb: value %#x is not an int", v)
	return 0
}

// Field numbers from apk-tools src/apk_adb.h.
const (
	pkgInfo, pkgPaths, pkgScripts, pkgTriggers = 1, 2, 3, 4
	piName, piVersion, piHashes, piDescription = 1, 2, 3, 4
	piArch, piLicense, piOrigin, piMaintainer  = 5, 6, 7, 8
	piURL, piRepoCommit, piBuildTime           = 9, 10, 11
	piInstalledSize, piDepends, piProvides     = 12, 15, 16
	depName, depVersion                        = 1, 2
	diName, diACL, diFiles                     = 1, 2, 3
	fiName, fiACL, fiSize, fiMtime, fiHash     = 1, 2, 3, 4, 5
	fiTarget                                   = 6
	aclMode, aclUser, aclGroup                 = 1, 2, 3
)

var scriptNames = []string{"", "trigger", "pre-install", "post-install", "pre-deinstall", "post-deinstall", "pre-upgrade", "post-upgrade"}

// apkLayout: directory → files with modes, as OpenWrt 25.12 installs it.
var apkLayout = map[string]map[string]uint64{
	"":                   {},
	"etc":                {},
	"etc/config":         {"otok": 0o600},
	"etc/init.d":         {"otok": 0o755},
	"etc/otok":           {},
	"etc/otok/keys":      {},
	"etc/uci-defaults":   {"90-otok": 0o755},
	"lib":                {},
	"lib/apk":            {},
	"lib/apk/packages":   {"otok.conffiles": 0o644, "otok.conffiles_static": 0o644, "otok.list": 0o644},
	"lib/upgrade":        {},
	"lib/upgrade/keep.d": {"otok": 0o644},
	"usr":                {},
	"usr/bin":            {"otok": 0o755},
}

func TestAPK(t *testing.T) {
	setup(t)
	const commit = "0123456789abcdef0123456789abcdef01234567"
	for _, a := range arches {
		t.Run(a.arch, func(t *testing.T) {
			path := buildPkg(t, "apk", a.arch, a.cross, version)
			if want := "otok-" + version + "_" + a.arch + ".apk"; filepath.Base(path) != want {
				t.Fatalf("package file %s, want %s", filepath.Base(path), want)
			}
			p := parseAPK(t, mustRead(t, path))
			if p.sigs != 0 {
				t.Errorf("%d SIG blocks; mkpkg does not sign", p.sigs)
			}
			root := p.fields(t, binary.LittleEndian.Uint32(p.adb[4:]))
			info := p.fields(t, field(root, pkgInfo))

			// info
			for i, want := range map[int]string{
				piName: "otok", piVersion: version, piArch: a.arch,
				piLicense: "LicenseRef-otok", piOrigin: "openwrt-feed/otok",
				piMaintainer: "otok developers <otok@users.noreply.github.com>",
				piURL:        "https://github.com/otok/otok",
			} {
				if got := p.str(t, field(info, i)); got != want {
					t.Errorf("info field %d: %q, want %q", i, got, want)
				}
			}
			if d := p.str(t, field(info, piDescription)); !strings.HasPrefix(d, "Containers on OpenWrt routers.") || strings.Contains(d, "\n") {
				t.Errorf("description %q: want one line", d)
			}
			if got := hex.EncodeToString(p.blob(t, field(info, piRepoCommit))); got != commit {
				t.Errorf("repo-commit %s, want %s", got, commit)
			}
			if got := p.int(t, field(info, piBuildTime)); fmt.Sprint(got) != epoch {
				t.Errorf("build-time %d, want %s", got, epoch)
			}
			var deps []string
			for _, d := range p.fields(t, field(info, piDepends))[1:] {
				df := p.fields(t, d)
				deps = append(deps, p.str(t, field(df, depName)))
				if field(df, depVersion) != 0 {
					t.Errorf("dependency %s has a version constraint", p.str(t, field(df, depName)))
				}
			}
			if got := strings.Join(deps, " "); got != "kmod-ipvlan kmod-loop kmod-macvlan kmod-veth libc" {
				t.Errorf("depends %q", got)
			}
			if field(info, piProvides) != 0 {
				t.Errorf("provides set")
			}

			// The unique id: sha256 of the ADB block with the id zeroed, 20 bytes.
			id := p.blob(t, field(info, piHashes))
			if len(id) != 20 {
				t.Fatalf("info.hashes: %d bytes, want 20", len(id))
			}
			zeroed := append([]byte(nil), p.adb...)
			off := int(field(info, piHashes)&0x0fffffff) + 1
			copy(zeroed[off:off+20], make([]byte, 20))
			if sum := sha256.Sum256(zeroed); !bytes.Equal(sum[:20], id) {
				t.Errorf("info.hashes %x, want %x", id, sum[:20])
			}

			// paths, with file content from the DATA blocks in order.
			contents := map[string][]byte{}
			var installed uint64
			paths := p.fields(t, field(root, pkgPaths))[1:]
			var dirNames []string
			next := 0
			for i, d := range paths {
				df := p.fields(t, d)
				dir := p.str(t, field(df, diName))
				dirNames = append(dirNames, dir)
				checkACL(t, p, dir+"/", field(df, diACL), 0o755)
				wantFiles, ok := apkLayout[dir]
				if !ok {
					t.Errorf("unexpected directory %q", dir)
				}
				var names []string
				for j, f := range p.fields(t, field(df, diFiles))[1:] {
					ff := p.fields(t, f)
					name := p.str(t, field(ff, fiName))
					full := strings.TrimPrefix(dir+"/"+name, "/")
					names = append(names, name)
					checkACL(t, p, full, field(ff, fiACL), wantFiles[name])
					if field(ff, fiTarget) != 0 {
						t.Errorf("%s: has a target (link/device)", full)
					}
					size := p.int(t, field(ff, fiSize))
					installed += size
					if m := p.int(t, field(ff, fiMtime)); fmt.Sprint(m) != epoch {
						t.Errorf("%s: mtime %d", full, m)
					}
					var content []byte
					if size > 0 {
						if next >= len(p.data) {
							t.Fatalf("%s: no DATA block", full)
						}
						db := p.data[next]
						next++
						if db.path != uint32(i+1) || db.file != uint32(j+1) || uint64(len(db.content)) != size {
							t.Fatalf("%s: DATA block for path %d file %d (%d bytes), want %d %d (%d)", full, db.path, db.file, len(db.content), i+1, j+1, size)
						}
						content = db.content
					}
					sum := sha256.Sum256(content)
					if h := p.blob(t, field(ff, fiHash)); !bytes.Equal(h, sum[:]) {
						t.Errorf("%s: hash %x, content's sha256 %x", full, h, sum)
					}
					contents["/"+full] = content
				}
				var wantNames []string
				for n := range wantFiles {
					wantNames = append(wantNames, n)
				}
				sort.Strings(wantNames)
				if strings.Join(names, " ") != strings.Join(wantNames, " ") {
					t.Errorf("directory %q: files %v, want %v", dir, names, wantNames)
				}
			}
			if next != len(p.data) {
				t.Errorf("%d DATA blocks, %d used", len(p.data), next)
			}
			if !sort.StringsAreSorted(dirNames) || len(dirNames) != len(apkLayout) {
				t.Errorf("directories %q: want all %d, sorted", dirNames, len(apkLayout))
			}
			if got := p.int(t, field(info, piInstalledSize)); got != installed {
				t.Errorf("installed-size %d, files add up to %d", got, installed)
			}
			for name, src := range map[string]string{
				"/usr/bin/otok":             filepath.Join(distDir, "otok-"+a.cross),
				"/etc/init.d/otok":          filepath.Join(filesDir, "otok.init"),
				"/etc/config/otok":          filepath.Join(filesDir, "otok.config"),
				"/etc/uci-defaults/90-otok": filepath.Join(filesDir, "otok.uci-defaults"),
			} {
				if !bytes.Equal(contents[name], mustRead(t, src)) {
					t.Errorf("%s is not %s", name, src)
				}
			}
			if got := string(contents["/lib/apk/packages/otok.list"]); got != "/etc/config/otok\n/etc/init.d/otok\n/etc/uci-defaults/90-otok\n/lib/upgrade/keep.d/otok\n/usr/bin/otok\n" {
				t.Errorf("otok.list:\n%s", got)
			}
			if got := string(contents["/lib/apk/packages/otok.conffiles"]); got != "/etc/config/otok\n/etc/otok/keys/\n" {
				t.Errorf("otok.conffiles %q", got)
			}
			confSum := sha256.Sum256(contents["/etc/config/otok"])
			if got := string(contents["/lib/apk/packages/otok.conffiles_static"]); got != "/etc/config/otok "+hex.EncodeToString(confSum[:])+"\n" {
				t.Errorf("otok.conffiles_static %q", got)
			}
			tmp := filepath.Join(t.TempDir(), "otok")
			writeFile(t, tmp, contents["/usr/bin/otok"])
			checkELF(t, tmp, a.arch)

			// scripts: OpenWrt 25.12's names and contents.
			scripts := p.fields(t, field(root, pkgScripts))
			got := map[string]string{}
			for i := 1; i < len(scripts); i++ {
				if s := p.str(t, scripts[i]); s != "" {
					got[scriptNames[i]] = s
				}
			}
			if len(got) != 3 || got["post-install"] == "" || got["post-upgrade"] == "" || got["pre-deinstall"] == "" {
				t.Fatalf("scripts %v: want post-install, post-upgrade, pre-deinstall", keys(got))
			}
			for name, want := range map[string][]string{
				"post-install":  {"#!/bin/sh\n", `export pkgname="otok"`, "default_postinst\n"},
				"post-upgrade":  {"#!/bin/sh\nexport PKG_UPGRADE=1\n", "default_postinst\n", "/etc/init.d/otok restart"},
				"pre-deinstall": {"#!/bin/sh\n", `export pkgname="otok"`, "default_prerm\n"},
			} {
				for _, w := range want {
					if !strings.Contains(got[name], w) {
						t.Errorf("%s lacks %q:\n%s", name, w, got[name])
					}
				}
			}
			// Written like apk mkpkg: identical values stored once.
			if n := bytes.Count(p.adb, []byte("\x04root")); n != 1 {
				t.Errorf("the owner name is stored %d times, want once (de-duplicated)", n)
			}
			if field(root, pkgTriggers) != 0 {
				t.Errorf("triggers set")
			}
		})
	}
}

func checkACL(t *testing.T, p adbPkg, name string, v uint32, mode uint64) {
	t.Helper()
	acl := p.fields(t, v)
	if m := p.int(t, field(acl, aclMode)); m != mode {
		t.Errorf("%s: mode %o, want %o", name, m, mode)
	}
	if u, g := p.str(t, field(acl, aclUser)), p.str(t, field(acl, aclGroup)); u != "root" || g != "root" {
		t.Errorf("%s: owner %s:%s, want root:root", name, u, g)
	}
}

func keys(m map[string]string) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}
