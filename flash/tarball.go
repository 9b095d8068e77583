package flash

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"
)

// Strict tarball unpacking. Rootfs tarballs arrive from anywhere, so every
// entry is checked before it touches the disk:
//
//   - names are relative: no absolute paths, no ".." element;
//   - nothing is written through a symlink: every parent of an entry must be
//     a real directory inside the tree (checked with lstat, never followed),
//     and files are created with O_NOFOLLOW|O_EXCL after removing whatever
//     was there;
//   - symlinks may point anywhere inside the tree (absolute targets are
//     re-rooted, as they are inside the container), but a relative target
//     that climbs above the root is refused;
//   - hardlinks must name an existing regular file inside the tree;
//   - device nodes and setuid/setgid files only with AllowSpecial;
//   - the decompressed stream is capped (MaxBytes), so a decompression bomb
//     stops after MaxBytes, not after filling the flash.
//
// Layers of OCI images additionally honour whiteouts (.wh.NAME deletes NAME
// from lower layers, .wh..wh..opq empties a directory of lower content).

// UnpackOptions control Unpack.
type UnpackOptions struct {
	Subject      string // for errors: "rootfs alpine"
	AllowSpecial bool   // device nodes, setuid/setgid files
	MaxBytes     int64  // cap on the decompressed tar stream; 0 = no cap
	MaxEntries   int    // 0 = 1,000,000
	Whiteouts    bool   // apply OCI/AUFS whiteouts (image layers)
	// LXD: a top-level metadata.yaml and rootfs/ prefix (LXD unified
	// tarball) are recognised; metadata.yaml is returned, templates/ skipped.
	LXD bool
}

// UnpackStats summarises an unpack.
type UnpackStats struct {
	Entries  int
	Bytes    int64  // file data written
	Metadata []byte // LXD metadata.yaml, if any
}

// ErrTooBig is wrapped by errors about the size cap.
var ErrTooBig = errors.New("size limit exceeded")

// Decompress sniffs gzip, xz or plain tar and returns the tar stream
// (bzip2 and zstd are refused by name: their decoders would cost flash for
// formats rootfs tarballs rarely use).
func Decompress(r io.Reader) (io.Reader, string, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(262)
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		return zr, "gzip", err
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		// The decoder allocates the whole dictionary up front: refuse
		// what would not fit a small router (xz -9 wants 64 MiB).
		if d, ok := xzDictSize(head); ok && d > xzDictLimit() {
			return nil, "xz", fmt.Errorf("xz dictionary of %s needs more memory than this device allows (%s); recompress with xz -6 or less", HumanBytes(d), HumanBytes(xzDictLimit()))
		}
		zr, err := xz.NewReader(br)
		return zr, "xz", err
	case bytes.HasPrefix(head, []byte("BZh")):
		return nil, "bzip2", errors.New("bzip2-compressed tarballs are not supported (use .tar.xz or .tar.gz)")
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return nil, "zstd", errors.New("zstd-compressed tarballs are not supported (use .tar.xz or .tar.gz)")
	}
	return br, "tar", nil
}

// xzDictSize reads the LZMA2 dictionary size from the first block header
// of an xz stream (xz file format 1.0.4 §3.1).
func xzDictSize(b []byte) (int64, bool) {
	if len(b) < 13 {
		return 0, false
	}
	blk := b[12:]
	hsize := (int(blk[0]) + 1) * 4
	if blk[0] == 0 || len(blk) < hsize {
		return 0, false
	}
	flags := blk[1]
	p := 2
	varint := func() (uint64, bool) {
		var v uint64
		for i := 0; i < 9 && p < hsize; i++ {
			c := blk[p]
			p++
			v |= uint64(c&0x7f) << (7 * i)
			if c&0x80 == 0 {
				return v, true
			}
		}
		return 0, false
	}
	if flags&0x40 != 0 {
		if _, ok := varint(); !ok {
			return 0, false
		}
	}
	if flags&0x80 != 0 {
		if _, ok := varint(); !ok {
			return 0, false
		}
	}
	for i := 0; i <= int(flags&3); i++ {
		id, ok1 := varint()
		n, ok2 := varint()
		if !ok1 || !ok2 || p+int(n) > hsize {
			return 0, false
		}
		if id == 0x21 && n == 1 { // LZMA2
			d := blk[p]
			if d > 40 {
				return 0, false
			}
			if d == 40 {
				return 1<<32 - 1, true
			}
			return int64(2|d&1) << (d/2 + 11), true
		}
		p += int(n)
	}
	return 0, false
}

// xzDictLimit is the largest xz dictionary a tarball may use: a quarter of
// RAM, at least 8 MiB (what xz -6, the default, uses).
func xzDictLimit() int64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		if l := int64(si.Totalram) * int64(si.Unit) / 4; l > 8<<20 {
			return l
		}
	}
	return 8 << 20
}

// capReader fails once more than max bytes were read.
type capReader struct {
	r   io.Reader
	n   int64
	max int64
	sub string
}

func (c *capReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.max > 0 && c.n > c.max {
		return n, fmt.Errorf("%s: expanded size exceeds %s (decompression bomb, or raise the limit): %w", c.sub, HumanBytes(c.max), ErrTooBig)
	}
	return n, err
}

// Unpack extracts the tar stream r (already decompressed) into dest, which
// must exist.
func Unpack(ctx context.Context, r io.Reader, dest string, opt UnpackOptions) (UnpackStats, error) {
	u := &unpacker{dest: dest, opt: opt, layer: map[string]bool{}}
	if u.opt.MaxEntries == 0 {
		u.opt.MaxEntries = 1_000_000
	}
	if u.opt.Subject == "" {
		u.opt.Subject = "tarball"
	}
	cr := &capReader{r: r, max: opt.MaxBytes, sub: u.opt.Subject}
	tr := tar.NewReader(cr)
	for {
		if err := ctx.Err(); err != nil {
			return u.st, fmt.Errorf("%s: %w", u.opt.Subject, err)
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, ErrTooBig) {
				return u.st, err
			}
			return u.st, fmt.Errorf("%s: read tar: %w", u.opt.Subject, err)
		}
		u.st.Entries++
		if u.st.Entries > u.opt.MaxEntries {
			return u.st, fmt.Errorf("%s: more than %d entries: %w", u.opt.Subject, u.opt.MaxEntries, ErrTooBig)
		}
		if err := u.entry(h, tr); err != nil {
			return u.st, err
		}
	}
	// Directory modes last, deepest first, so read-only directories do not
	// block their own children.
	sort.Slice(u.dirs, func(i, j int) bool { return len(u.dirs[i].path) > len(u.dirs[j].path) })
	for _, d := range u.dirs {
		if err := os.Chmod(d.path, d.mode); err != nil {
			return u.st, fmt.Errorf("%s: chmod %s: %w", u.opt.Subject, d.rel, err)
		}
	}
	return u.st, nil
}

type unpacker struct {
	dest  string
	opt   UnpackOptions
	st    UnpackStats
	dirs  []dirMode
	layer map[string]bool // paths created by this layer (for opaque whiteouts)
	lxd   bool
}

type dirMode struct {
	path, rel string
	mode      os.FileMode
}

// cleanName validates an archive path and returns it relative, slash
// separated, without "." elements ("" is the root).
func cleanName(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", errors.New("absolute path")
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", errors.New("NUL in path")
	}
	var parts []string
	for _, p := range strings.Split(name, "/") {
		switch p {
		case "", ".":
		case "..":
			return "", errors.New("path contains ..")
		default:
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "/"), nil
}

// symlinkEscapes reports whether a symlink at rel with target escapes the
// root when resolved lexically (absolute targets are rooted at the tree).
func symlinkEscapes(rel, target string) bool {
	if strings.HasPrefix(target, "/") {
		return false
	}
	stack := strings.Split(rel, "/")
	stack = stack[:len(stack)-1] // the link's directory
	for _, p := range strings.Split(target, "/") {
		switch p {
		case "", ".":
		case "..":
			if len(stack) == 0 {
				return true
			}
			stack = stack[:len(stack)-1]
		default:
			stack = append(stack, p)
		}
	}
	return false
}

// parentDir makes sure every parent of rel is a real directory in the tree
// (creating missing ones) and returns the host path of rel.
func (u *unpacker) parentDir(rel string) (string, error) {
	parts := strings.Split(rel, "/")
	cur := u.dest
	for i, p := range parts[:len(parts)-1] {
		cur = filepath.Join(cur, p)
		fi, err := os.Lstat(cur)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return "", err
			}
			u.layer[strings.Join(parts[:i+1], "/")] = true
		case err != nil:
			return "", err
		case fi.Mode()&os.ModeSymlink != 0:
			return "", fmt.Errorf("parent %s is a symlink (writing through symlinks is refused)", strings.Join(parts[:i+1], "/"))
		case !fi.IsDir():
			return "", fmt.Errorf("parent %s is not a directory", strings.Join(parts[:i+1], "/"))
		}
	}
	return filepath.Join(u.dest, filepath.FromSlash(rel)), nil
}

// clear removes whatever is at p (never following a symlink), except a
// directory when keepDir is set.
func clearPath(p string, keepDir bool) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		if keepDir {
			return nil
		}
		return removeAllWritable(p)
	}
	return os.Remove(p)
}

func (u *unpacker) entry(h *tar.Header, r io.Reader) error {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%s: entry %q: %s", u.opt.Subject, h.Name, fmt.Sprintf(format, a...))
	}
	rel, err := cleanName(h.Name)
	if err != nil {
		return fail("%v", err)
	}
	if u.opt.LXD {
		if rel == "metadata.yaml" && h.Typeflag == tar.TypeReg {
			if h.Size > 64<<10 {
				return fail("metadata.yaml larger than 64 KiB")
			}
			u.st.Metadata, err = io.ReadAll(r)
			u.lxd = true
			return err
		}
		if u.lxd || strings.HasPrefix(rel, "rootfs/") || rel == "rootfs" {
			if rel == "templates" || strings.HasPrefix(rel, "templates/") {
				return nil
			}
			if rel == "rootfs" {
				rel = ""
			} else if r2, ok := strings.CutPrefix(rel, "rootfs/"); ok {
				rel = r2
				u.lxd = true
			} else if u.lxd {
				return fail("outside rootfs/ in an LXD tarball")
			}
		}
	}
	switch h.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	}
	if rel == "" {
		if h.Typeflag == tar.TypeDir {
			u.dirs = append(u.dirs, dirMode{u.dest, ".", os.FileMode(h.Mode) & os.ModePerm})
			return nil
		}
		return fail("the root must be a directory")
	}
	mode := os.FileMode(h.Mode) & os.ModePerm
	if h.Mode&0o4000 != 0 {
		mode |= os.ModeSetuid
	}
	if h.Mode&0o2000 != 0 {
		mode |= os.ModeSetgid
	}
	if h.Mode&0o1000 != 0 {
		mode |= os.ModeSticky
	}
	base := rel[strings.LastIndexByte(rel, '/')+1:]
	if u.opt.Whiteouts && strings.HasPrefix(base, ".wh.") {
		return u.whiteout(rel, base, fail)
	}
	p, err := u.parentDir(rel)
	if err != nil {
		return fail("%v", err)
	}
	u.layer[rel] = true
	switch h.Typeflag {
	case tar.TypeDir:
		if err := clearPath(p, true); err != nil {
			return fail("%v", err)
		}
		if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fail("%v", err)
		}
		u.dirs = append(u.dirs, dirMode{p, rel, mode &^ (os.ModeSetuid)})
	case tar.TypeReg, tar.TypeRegA:
		if mode&(os.ModeSetuid|os.ModeSetgid) != 0 && !u.opt.AllowSpecial {
			return fail("setuid/setgid file refused (use --allow-special)")
		}
		if err := clearPath(p, false); err != nil {
			return fail("%v", err)
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return fail("%v", err)
		}
		n, err := io.Copy(f, r)
		u.st.Bytes += n
		if err == nil {
			err = f.Chmod(mode)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			if errors.Is(err, ErrTooBig) {
				return err
			}
			return fail("%v", err)
		}
		os.Chtimes(p, h.ModTime, h.ModTime)
	case tar.TypeSymlink:
		if h.Linkname == "" || strings.IndexByte(h.Linkname, 0) >= 0 {
			return fail("empty or invalid symlink target")
		}
		if symlinkEscapes(rel, h.Linkname) {
			return fail("symlink to %q escapes the root", h.Linkname)
		}
		if err := clearPath(p, false); err != nil {
			return fail("%v", err)
		}
		if err := os.Symlink(h.Linkname, p); err != nil {
			return fail("%v", err)
		}
	case tar.TypeLink:
		target, err := cleanName(h.Linkname)
		if err != nil || target == "" {
			return fail("hardlink to %q outside the tree", h.Linkname)
		}
		if u.lxd {
			target = strings.TrimPrefix(target, "rootfs/")
		}
		tp, err := u.existingFile(target)
		if err != nil {
			return fail("hardlink to %q: %v", h.Linkname, err)
		}
		if err := clearPath(p, false); err != nil {
			return fail("%v", err)
		}
		if err := os.Link(tp, p); err != nil {
			return fail("%v", err)
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if h.Typeflag != tar.TypeFifo && !u.opt.AllowSpecial {
			return fail("device node refused (use --allow-special)")
		}
		if err := clearPath(p, false); err != nil {
			return fail("%v", err)
		}
		m := uint32(mode.Perm())
		switch h.Typeflag {
		case tar.TypeChar:
			m |= unix.S_IFCHR
		case tar.TypeBlock:
			m |= unix.S_IFBLK
		default:
			m |= unix.S_IFIFO
		}
		if err := unix.Mknod(p, m, int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor)))); err != nil {
			return fail("mknod: %v", err)
		}
	default:
		return fail("unsupported entry type %q", string(h.Typeflag))
	}
	if os.Getuid() == 0 {
		if err := os.Lchown(p, h.Uid, h.Gid); err != nil {
			return fail("chown: %v", err)
		}
		if h.Typeflag == tar.TypeReg && mode&(os.ModeSetuid|os.ModeSetgid) != 0 {
			os.Chmod(p, mode) // chown cleared the bits
		}
	}
	return nil
}

// existingFile resolves rel inside the tree without following symlinks and
// requires a regular file there.
func (u *unpacker) existingFile(rel string) (string, error) {
	parts := strings.Split(rel, "/")
	cur := u.dest
	for i, p := range parts {
		cur = filepath.Join(cur, p)
		fi, err := os.Lstat(cur)
		if err != nil {
			return "", errors.New("no such file in the tree")
		}
		last := i == len(parts)-1
		if fi.Mode()&os.ModeSymlink != 0 {
			return "", errors.New("path goes through a symlink")
		}
		if !last && !fi.IsDir() {
			return "", errors.New("not a directory")
		}
		if last && !fi.Mode().IsRegular() {
			return "", errors.New("not a regular file")
		}
	}
	return cur, nil
}

func (u *unpacker) whiteout(rel, base string, fail func(string, ...any) error) error {
	dirRel := ""
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		dirRel = rel[:i]
	}
	dir := u.dest
	if dirRel != "" {
		p, err := u.parentDir(dirRel + "/x")
		if err != nil {
			return fail("%v", err)
		}
		dir = filepath.Dir(p)
	}
	if base == ".wh..wh..opq" {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return fail("%v", err)
		}
		for _, e := range ents {
			child := e.Name()
			if dirRel != "" {
				child = dirRel + "/" + e.Name()
			}
			if u.layer[child] {
				continue
			}
			if err := clearPath(filepath.Join(dir, e.Name()), false); err != nil {
				return fail("%v", err)
			}
		}
		return nil
	}
	victim := strings.TrimPrefix(base, ".wh.")
	if victim == "" || victim == "." || victim == ".." {
		return fail("bad whiteout")
	}
	if err := clearPath(filepath.Join(dir, victim), false); err != nil {
		return fail("%v", err)
	}
	return nil
}

// ResetLayer starts a new layer for whiteout bookkeeping (opaque
// directories hide only lower layers).
func (u *unpacker) resetLayer() { u.layer = map[string]bool{} }

// RootfsOptions control ImportRootfsTar.
type RootfsOptions struct {
	Name, Version string
	Arch          string // "" = the device's
	AllowSpecial  bool
	MaxBytes      int64 // cap on the expanded size; 0 = the usable free space
	Source        string
	Process       Process
}

// ImportRootfsTar unpacks a rootfs tarball (.tar, .tar.gz, .tar.xz; LXD
// unified tarballs too) into a directory image. The image's
// digest is the sha256 of the input as received. A tarball carries no
// signature: callers must make the user say --insecure-skip-verify.
func (s *Store) ImportRootfsTar(ctx context.Context, r io.Reader, opt RootfsOptions) (*ImportResult, error) {
	subject := "image " + opt.Name
	if !ValidName(opt.Name) {
		return nil, fmt.Errorf("image %q: invalid name", opt.Name)
	}
	if opt.Version == "" {
		opt.Version = time.Now().UTC().Format("20060102.150405")
	}
	if !ValidVersion(opt.Version) {
		return nil, fmt.Errorf("%s: invalid version %q", subject, opt.Version)
	}
	if opt.Arch == "" {
		opt.Arch = s.opt.Arch
	}
	unlock, err := s.lockFor(ctx, subject, opt.Arch)
	if err != nil {
		return nil, err
	}
	defer unlock()
	max, sp, err := s.room()
	if err != nil {
		return nil, err
	}
	if opt.MaxBytes > 0 && opt.MaxBytes < max {
		max = opt.MaxBytes
	}
	if max <= 0 {
		return nil, &NoSpaceError{Subject: subject, Need: 1, Space: sp, Path: s.root}
	}
	tmp, err := s.newTemp("rootfs")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			removeAllWritable(tmp)
		}
	}()
	h := newHashCounter(r)
	tr, _, err := Decompress(h)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", subject, err)
	}
	rootfs := filepath.Join(tmp, dirRootfs)
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return nil, err
	}
	st, err := Unpack(ctx, tr, rootfs, UnpackOptions{Subject: subject, AllowSpecial: opt.AllowSpecial, MaxBytes: max, LXD: true})
	if err != nil {
		return nil, s.asNoSpace(subject, st.Bytes, err)
	}
	// Hash the rest of the input (tar padding, compression trailer).
	if _, err := io.Copy(io.Discard, io.LimitReader(h, 1<<20)); err != nil {
		return nil, fmt.Errorf("%s: read: %w", subject, err)
	}
	m := &Manifest{Name: opt.Name, Version: opt.Version, Arch: opt.Arch, Kind: KindDir,
		Digest: h.Sum(), Size: h.n, Created: time.Now().Unix(), Process: opt.Process}
	if len(m.Process.Args) == 0 {
		m.Process.Args = []string{"/bin/sh"}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	if imgs, err := s.load(m.DigestHex()); err == nil {
		// The same tarball again: under a name it is already stored as,
		// nothing changes (its version is often just the import time);
		// under another name it gets a manifest beside the stored one.
		for _, i := range imgs {
			if i.Manifest.Name == m.Name {
				return &ImportResult{Image: i, Existed: true}, nil
			}
		}
		return s.existing(m, nil)
	}
	if st.Metadata != nil {
		if _, err := writeFileSync(filepath.Join(tmp, "metadata.yaml"), st.Metadata, 0o444); err != nil {
			return nil, err
		}
	}
	written := st.Bytes + int64(len(st.Metadata))
	if err := s.commitImage(tmp, m, nil, opt.Source, st.Bytes, &written, false); err != nil {
		return nil, s.asNoSpace(subject, written, err)
	}
	ok = true
	return s.imported(m, written)
}
