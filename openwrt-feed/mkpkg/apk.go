package main

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"sort"
	"strings"
	"time"
)

// apk v3 package (ADB) writer, after alpinelinux/apk-tools doc/apk-v3.5.scd,
// src/adb.h, src/apk_adb.h and src/app_mkpkg.c.
//
// File: "ADBd" + raw deflate of { "ADB." schema("pckg") ADB-block DATA-blocks }.
// Block: u32 LE (type<<30 | 4+len), payload, zero padding to 8 bytes.
// ADB block payload: header {u8 compat 0, u8 ver 0, u16 0, u32 root} then
// the values the root refers to. A value is a u32 LE: 4 bits type, 28 bits
// immediate or offset into the ADB payload.

const (
	adbTypeInt    = 0x10000000
	adbTypeInt32  = 0x20000000
	adbTypeInt64  = 0x30000000
	adbTypeBlob8  = 0x80000000
	adbTypeBlob16 = 0x90000000
	adbTypeBlob32 = 0xa0000000
	adbTypeArray  = 0xd0000000
	adbTypeObject = 0xe0000000
	adbValueMask  = 0x0fffffff

	adbBlockADB  = 0
	adbBlockData = 2

	adbSchemaPackage = 0x676b6370 // "pckg"
)

// Field indices (src/apk_adb.h).
const (
	piName, piVersion, piHashes, piDescription, piArch, piLicense, piOrigin,
	piMaintainer, piURL, piRepoCommit, piBuildTime, piInstalledSize = 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12
	piDepends = 0x0f
	piMax     = 0x16

	depName = 1

	aclMode, aclUser, aclGroup               = 1, 2, 3
	fiName, fiACL, fiSize, fiMtime, fiHashes = 1, 2, 3, 4, 5
	diName, diACL, diFiles                   = 1, 2, 3

	scrPostInstall, scrPreDeinstall, scrPostUpgrade = 3, 4, 7
	scrMax                                          = 8

	pkgInfo, pkgPaths, pkgScripts = 1, 2, 3
	pkgMax                        = 6
)

// adb accumulates the ADB block payload. Like apk-tools' writer
// (adb_w_data) it stores identical data once: a value whose bytes were
// written before, at an offset aligned as needed, refers to that copy.
// Written in the same order as apk mkpkg writes, the block comes out byte
// for byte the same, and so does the package id derived from it.
type adb struct {
	buf  []byte
	seen map[string]uint32
}

func newADB() *adb { return &adb{buf: make([]byte, 8), seen: map[string]uint32{}} } // header; root set last

func (a *adb) raw(b []byte, align int) uint32 {
	if off, ok := a.seen[string(b)]; ok && int(off)%align == 0 {
		return off
	}
	off := a.rawNoDedup(b, align)
	a.seen[string(b)] = off
	return off
}

// rawNoDedup writes b without sharing it (apk's adb_w_blob_raw).
func (a *adb) rawNoDedup(b []byte, align int) uint32 {
	for len(a.buf)%align != 0 {
		a.buf = append(a.buf, 0)
	}
	off := len(a.buf)
	a.buf = append(a.buf, b...)
	return uint32(off)
}

func (a *adb) val(typ uint32, off uint32) uint32 {
	if off > adbValueMask {
		panic("adb: offset beyond 28 bits")
	}
	return typ | off
}

// blob writes b with its length prefix; the empty blob is the null value.
func (a *adb) blob(b []byte) uint32 {
	switch n := len(b); {
	case n == 0:
		return 0
	case n <= 0xff:
		return a.val(adbTypeBlob8, a.raw(append([]byte{byte(n)}, b...), 1))
	case n <= 0xffff:
		return a.val(adbTypeBlob16, a.raw(append(binary.LittleEndian.AppendUint16(nil, uint16(n)), b...), 2))
	default:
		return a.val(adbTypeBlob32, a.raw(append(binary.LittleEndian.AppendUint32(nil, uint32(n)), b...), 4))
	}
}

func (a *adb) str(s string) uint32 { return a.blob([]byte(s)) }

func (a *adb) int(v uint64) uint32 {
	switch {
	case v < 0x10000000:
		return adbTypeInt | uint32(v)
	case v < 1<<32:
		return a.val(adbTypeInt32, a.raw(binary.LittleEndian.AppendUint32(nil, uint32(v)), 4))
	default:
		return a.val(adbTypeInt64, a.raw(binary.LittleEndian.AppendUint64(nil, v), 4))
	}
}

// obj writes an object (fields indexed from 1; slot 0 holds the count)
// with trailing null fields trimmed; all-null is the null value.
func (a *adb) obj(typ uint32, fields []uint32) uint32 {
	n := len(fields)
	for n > 1 && fields[n-1] == 0 {
		n--
	}
	if n <= 1 {
		return 0
	}
	b := binary.LittleEndian.AppendUint32(nil, uint32(n))
	for _, f := range fields[1:n] {
		b = binary.LittleEndian.AppendUint32(b, f)
	}
	return a.val(typ, a.raw(b, 4))
}

func (a *adb) object(fields []uint32) uint32 { return a.obj(adbTypeObject, fields) }

// array writes items as apk mkpkg writes the package's arrays (depends,
// paths, files): with adb_w_obj, so tagged as objects. Readers take either.
func (a *adb) array(items []uint32) uint32 {
	return a.obj(adbTypeObject, append([]uint32{0}, items...))
}

// acl writes mode, user and group (root:root), in that order.
func (a *adb) acl(mode uint32) uint32 {
	acl := make([]uint32, aclGroup+1)
	acl[aclMode] = a.int(uint64(mode))
	acl[aclUser] = a.str("root")
	acl[aclGroup] = a.str("root")
	return a.object(acl)
}

func block(typ uint32, payload []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, typ<<30|uint32(4+len(payload)))
	b = append(b, payload...)
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	return b
}

// apkDir is one element of the package's paths array.
type apkDir struct {
	name  string // relative, "" for the root
	mode  uint32
	files []entry
}

func apkDirs(t tree) []apkDir {
	var dirs []apkDir
	index := map[string]int{}
	for _, e := range t {
		if e.dir {
			name := strings.TrimPrefix(e.path, "/")
			index[e.path] = len(dirs)
			dirs = append(dirs, apkDir{name: name, mode: e.mode})
		}
	}
	for _, e := range t {
		if !e.dir {
			d := e.path[:strings.LastIndexByte(e.path, '/')]
			if d == "" {
				d = "/"
			}
			i := index[d]
			dirs[i].files = append(dirs[i].files, e)
		}
	}
	return dirs // t is sorted by path, so dirs and files are sorted by name
}

// apk renders the package. repoCommit is the 40-hex git commit or "".
// Values are written in apk mkpkg's order: info fields by index (depends
// entries in the given order, the array sorted by name), then per
// directory (root first, then sorted) its files (name, sha256, mtime,
// size, acl, file) followed by the directory (name, acl, files, dir), then
// installed-size, the id placeholder, info, paths, scripts and the root.
func apk(t tree, tg target, version string, epoch time.Time, repoCommit string) ([]byte, error) {
	t = apkTree(t)
	a := newADB()

	// info
	info := make([]uint32, piMax)
	info[piName] = a.str(pkgName)
	info[piVersion] = a.str(version)
	info[piDescription] = a.str(strings.ReplaceAll(pkgDescription, "\n", " "))
	info[piArch] = a.str(tg.arch)
	info[piLicense] = a.str(pkgLicense)
	info[piOrigin] = a.str(pkgSource)
	info[piMaintainer] = a.str(pkgMaintainer)
	info[piURL] = a.str(pkgURL)
	if repoCommit != "" {
		c, err := hexBytes(repoCommit)
		if err != nil || len(c) != 20 {
			return nil, errors.New("repo commit: want 40 hex digits")
		}
		info[piRepoCommit] = a.blob(c)
	}
	info[piBuildTime] = a.int(uint64(epoch.Unix()))
	type dep struct {
		name string
		val  uint32
	}
	var deps []dep
	for _, d := range pkgDepends {
		deps = append(deps, dep{d, a.object([]uint32{0, a.str(d)})})
	}
	sort.SliceStable(deps, func(i, j int) bool { return deps[i].name < deps[j].name })
	var depVals []uint32
	for i, d := range deps {
		if i == 0 || d.val != deps[i-1].val {
			depVals = append(depVals, d.val)
		}
	}
	info[piDepends] = a.array(depVals)

	// paths
	dirs := apkDirs(t)
	var paths []uint32
	var size uint64
	for _, d := range dirs {
		var files []uint32
		for _, f := range d.files {
			sum := sha256.Sum256(f.data)
			fi := make([]uint32, fiHashes+1)
			fi[fiName] = a.str(f.path[strings.LastIndexByte(f.path, '/')+1:])
			fi[fiHashes] = a.blob(sum[:])
			fi[fiMtime] = a.int(uint64(epoch.Unix()))
			fi[fiSize] = a.int(uint64(len(f.data)))
			fi[fiACL] = a.acl(f.mode)
			files = append(files, a.object(fi))
			size += uint64(len(f.data))
		}
		di := make([]uint32, diFiles+1)
		di[diName] = a.str(d.name)
		di[diACL] = a.acl(d.mode)
		di[diFiles] = a.array(files)
		paths = append(paths, a.object(di))
	}

	info[piInstalledSize] = a.int(size)
	hashesOff := len(a.buf) + 1 // blob8: length byte, then 20 bytes
	info[piHashes] = a.val(adbTypeBlob8, a.rawNoDedup(append([]byte{20}, make([]byte, 20)...), 1))

	pkg := make([]uint32, pkgMax)
	pkg[pkgInfo] = a.object(info)
	pkg[pkgPaths] = a.array(paths)
	scripts := make([]uint32, scrMax)
	scripts[scrPostInstall] = a.str(apkPostInstall())
	scripts[scrPreDeinstall] = a.str(apkPreDeinstall())
	scripts[scrPostUpgrade] = a.str(apkPostUpgrade())
	pkg[pkgScripts] = a.object(scripts)
	rootVal := a.object(pkg)
	binary.LittleEndian.PutUint32(a.buf[4:], rootVal)

	// The package's unique id (info.hashes): sha256 of the ADB payload with
	// the field zeroed, truncated to 20 bytes, as apk mkpkg computes it.
	uid := sha256.Sum256(a.buf)
	copy(a.buf[hashesOff:hashesOff+20], uid[:20])

	var inner bytes.Buffer
	inner.WriteString("ADB.")
	inner.Write(binary.LittleEndian.AppendUint32(nil, adbSchemaPackage))
	inner.Write(block(adbBlockADB, a.buf))
	for i, d := range dirs {
		for j, f := range d.files {
			if len(f.data) == 0 {
				continue
			}
			hdr := binary.LittleEndian.AppendUint32(nil, uint32(i+1))
			hdr = binary.LittleEndian.AppendUint32(hdr, uint32(j+1))
			inner.Write(block(adbBlockData, append(hdr, f.data...)))
		}
	}

	var out bytes.Buffer
	out.WriteString("ADBd")
	zw, err := flate.NewWriter(&out, flate.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(inner.Bytes()); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
