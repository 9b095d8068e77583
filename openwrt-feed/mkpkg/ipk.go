package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ipk builds OpenWrt's ipk layout (scripts/ipkg-build): a gzip'd tar of
// ./debian-binary ("2.0"), ./data.tar.gz and ./control.tar.gz, in that order,
// GNU tar format, numeric owners 0:0, sorted entries, mtimes = epoch.
func ipk(t tree, tg target, version string, epoch time.Time) ([]byte, error) {
	dataTar, err := tarTree(t, epoch)
	if err != nil {
		return nil, err
	}
	data, err := gz(dataTar)
	if err != nil {
		return nil, err
	}
	ctl := withDirs([]entry{
		{path: "/control", mode: 0o644, data: []byte(control(tg, version, len(dataTar), epoch))},
		{path: "/conffiles", mode: 0o644, data: []byte(lines(t.resolvedConffiles()))},
		{path: "/postinst", mode: 0o755, data: []byte(ipkPostinst)},
		{path: "/prerm", mode: 0o755, data: []byte(ipkPrerm)},
	})
	ctlTar, err := tarTree(ctl, epoch)
	if err != nil {
		return nil, err
	}
	ctlGz, err := gz(ctlTar)
	if err != nil {
		return nil, err
	}
	var outer bytes.Buffer
	tw := tar.NewWriter(&outer)
	for _, f := range []struct {
		name string
		data []byte
	}{{"./debian-binary", []byte("2.0\n")}, {"./data.tar.gz", data}, {"./control.tar.gz", ctlGz}} {
		if err := tw.WriteHeader(fileHeader(f.name, 0o644, int64(len(f.data)), epoch)); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return gz(gnuTar(outer.Bytes()))
}

// control is the control file as package-pack.mk writes it, fields in its
// order. Installed-Size is the size of the uncompressed data tarball, as
// ipkg-build computes it.
func control(tg target, version string, installedSize int, epoch time.Time) string {
	var b strings.Builder
	field := func(k, v string) { fmt.Fprintf(&b, "%s: %s\n", k, v) }
	field("Package", pkgName)
	field("Version", version)
	field("Depends", strings.Join(pkgDepends, ", "))
	field("Source", pkgSource)
	field("SourceName", pkgName)
	field("License", pkgLicense)
	field("Section", pkgSection)
	field("SourceDateEpoch", fmt.Sprint(epoch.Unix()))
	field("URL", pkgURL)
	field("Maintainer", pkgMaintainer)
	field("Architecture", tg.arch)
	field("Installed-Size", fmt.Sprint(installedSize))
	// package-pack.mk: printf "Description: "; echo "$DESCRIPTION" |
	// sed 's,^[[:space:]]*, ,' — every line, the first too, gets one space.
	b.WriteString("Description: ")
	for _, l := range strings.Split(pkgDescription, "\n") {
		b.WriteString(" " + l + "\n")
	}
	return b.String()
}

func lines(ss []string) string {
	if len(ss) == 0 {
		return ""
	}
	return strings.Join(ss, "\n") + "\n"
}

func fileHeader(name string, mode int64, size int64, epoch time.Time) *tar.Header {
	return &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     mode,
		Size:     size,
		ModTime:  epoch,
		Format:   tar.FormatGNU,
	}
}

// tarTree writes t as GNU tar tar members named "./path" ("./" for the root,
// "./dir/" for directories), as `tar -C dir -c .` names them.
func tarTree(t tree, epoch time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range t {
		name := "." + e.path
		if e.dir {
			if e.path == "/" {
				name = "./"
			} else {
				name += "/"
			}
			h := &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: int64(e.mode), ModTime: epoch, Format: tar.FormatGNU}
			if err := tw.WriteHeader(h); err != nil {
				return nil, err
			}
			continue
		}
		if err := tw.WriteHeader(fileHeader(name, int64(e.mode), int64(len(e.data)), epoch)); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return gnuTar(buf.Bytes()), nil
}

// gnuTar makes archive/tar's GNU-format output what GNU tar 1.34 writes
// for the same entries (`tar --format=gnu --numeric-owner --sort=name
// --mtime=@EPOCH`, as ipkg-build runs it): device number fields empty
// (NUL) rather than "0000000" for entries that are not devices, checksums
// recomputed, and the archive padded to GNU tar's 10240-byte records. The
// uncompressed tarballs are then byte for byte those of ipkg-build, and so
// is Installed-Size.
func gnuTar(b []byte) []byte {
	for off := 0; off+512 <= len(b); {
		h := b[off : off+512]
		if bytes.Equal(h, make([]byte, 512)) {
			break
		}
		if typ := h[156]; typ != tar.TypeChar && typ != tar.TypeBlock {
			clear(h[329:345]) // devmajor, devminor
			copy(h[148:156], "        ")
			sum := 0
			for _, c := range h {
				sum += int(c)
			}
			copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
		}
		size, _ := strconv.ParseInt(strings.TrimRight(string(h[124:135]), "\x00 "), 8, 64)
		off += 512 + int(size+511)/512*512
	}
	const record = 10240
	if n := len(b) % record; n != 0 {
		b = append(b, make([]byte, record-n)...)
	}
	return b
}

// gz compresses like `gzip -n -9`: no file name, no timestamp.
func gz(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
