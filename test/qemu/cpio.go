package qemu

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// Entry is one file of an initramfs archive.
type Entry struct {
	Name    string // absolute path in the guest
	Mode    uint32 // permission bits (type comes from the fields below)
	Data    []byte // regular file contents (if Src is empty)
	Src     string // regular file copied from the host
	Link    string // symlink target
	Dir     bool
	CharDev bool // character device Major:Minor
	Major   uint32
	Minor   uint32
}

// Archive is a set of entries written as a newc cpio. Parent directories
// are added as needed.
type Archive struct {
	entries map[string]Entry
}

func (a *Archive) put(e Entry) {
	if a.entries == nil {
		a.entries = map[string]Entry{}
	}
	e.Name = path.Clean("/" + e.Name)
	for d := path.Dir(e.Name); d != "/"; d = path.Dir(d) {
		if _, ok := a.entries[d]; !ok {
			a.entries[d] = Entry{Name: d, Dir: true, Mode: 0o755}
		}
	}
	a.entries[e.Name] = e
}

// File adds a regular file with contents.
func (a *Archive) File(name string, mode uint32, data []byte) {
	a.put(Entry{Name: name, Mode: mode, Data: data})
}

// Copy adds a host file; mode 0 keeps the host's permission bits.
func (a *Archive) Copy(name, src string, mode uint32) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if mode == 0 {
		mode = uint32(st.Mode().Perm())
	}
	a.put(Entry{Name: name, Mode: mode, Src: src})
	return nil
}

// CopyTree adds a host directory recursively under name.
func (a *Archive) CopyTree(name, src string) error {
	return walk(src, func(rel string, fi os.FileInfo) error {
		dst := path.Join(name, rel)
		switch {
		case fi.IsDir():
			a.Dir(dst, uint32(fi.Mode().Perm()))
		case fi.Mode()&os.ModeSymlink != 0:
			t, err := os.Readlink(path.Join(src, rel))
			if err != nil {
				return err
			}
			a.Symlink(dst, t)
		case fi.Mode().IsRegular():
			a.put(Entry{Name: dst, Mode: uint32(fi.Mode().Perm()), Src: path.Join(src, rel)})
		}
		return nil
	})
}

// Dir adds a directory.
func (a *Archive) Dir(name string, mode uint32) { a.put(Entry{Name: name, Dir: true, Mode: mode}) }

// Symlink adds a symbolic link.
func (a *Archive) Symlink(name, target string) { a.put(Entry{Name: name, Link: target, Mode: 0o777}) }

// CharDev adds a character device node.
func (a *Archive) CharDev(name string, mode, major, minor uint32) {
	a.put(Entry{Name: name, CharDev: true, Mode: mode, Major: major, Minor: minor})
}

// Has reports whether name is in the archive.
func (a *Archive) Has(name string) bool { _, ok := a.entries[path.Clean("/"+name)]; return ok }

// WriteGzip writes the archive as a gzip'd newc cpio (what the kernel
// unpacks; several such members may be concatenated).
func (a *Archive) WriteGzip(w io.Writer) error {
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err := a.Write(zw); err != nil {
		return err
	}
	return zw.Close()
}

// Write writes the archive as a newc cpio, parents before children.
func (a *Archive) Write(w io.Writer) error {
	names := make([]string, 0, len(a.entries))
	for n := range a.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	cw := &cpioWriter{w: w, ino: 1000}
	for _, n := range names {
		e := a.entries[n]
		var mode uint32
		var data []byte
		switch {
		case e.Dir:
			mode = 0o040000 | e.Mode
		case e.Link != "":
			mode = 0o120000 | 0o777
			data = []byte(e.Link)
		case e.CharDev:
			mode = 0o020000 | e.Mode
		default:
			mode = 0o100000 | e.Mode
			data = e.Data
			if e.Src != "" {
				b, err := os.ReadFile(e.Src)
				if err != nil {
					return err
				}
				data = b
			}
		}
		if err := cw.entry(strings.TrimPrefix(n, "/"), mode, e.Major, e.Minor, data); err != nil {
			return err
		}
	}
	return cw.entry("TRAILER!!!", 0, 0, 0, nil)
}

type cpioWriter struct {
	w   io.Writer
	ino uint32
	n   int64
}

func (c *cpioWriter) write(b []byte) error {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return err
}

func (c *cpioWriter) pad() error {
	if r := c.n % 4; r != 0 {
		return c.write(make([]byte, 4-r))
	}
	return nil
}

func (c *cpioWriter) entry(name string, mode, major, minor uint32, data []byte) error {
	c.ino++
	nlink := uint32(1)
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, major, minor, len(name)+1, 0)
	if err := c.write([]byte(hdr)); err != nil {
		return err
	}
	if err := c.write(append([]byte(name), 0)); err != nil {
		return err
	}
	if err := c.pad(); err != nil {
		return err
	}
	if err := c.write(data); err != nil {
		return err
	}
	return c.pad()
}

// walk calls fn for every entry below root (not root itself) with its
// slash-separated relative path, lexically ordered, not following links.
func walk(root string, fn func(rel string, fi os.FileInfo) error) error {
	var rec func(rel string) error
	rec = func(rel string) error {
		ents, err := os.ReadDir(path.Join(root, rel))
		if err != nil {
			return err
		}
		for _, de := range ents {
			r := path.Join(rel, de.Name())
			fi, err := os.Lstat(path.Join(root, r))
			if err != nil {
				return err
			}
			if err := fn(r, fi); err != nil {
				return err
			}
			if fi.IsDir() {
				if err := rec(r); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return rec("")
}
