package flash

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Store layout under ROOT:
//
//	lock                       flock(2) held by every writer
//	tmp/                       work in progress; swept by the next writer
//	images/<sha256hex>/        one committed image, named by its digest
//	    manifest.cose          signed manifest (COSE_Sign1) as received, or
//	    manifest.cbor          the unsigned manifest (--insecure-skip-verify)
//	    manifest-<id>.cose     further manifests sharing this content under
//	    manifest-<id>.cbor     another NAME:VERSION (<id>: see manifestSlot)
//	    info.cbor              import record: time, source, bytes written
//	    rootfs.squashfs        KindSquashfs (mode 0444)
//	    rootfs/                KindDir
//	counters.cbor              store-wide counters (imports, bytes written)
//
// Readers take no lock: an image appears and disappears by one rename.

const (
	dirImages    = "images"
	dirTmp       = "tmp"
	fileLock     = "lock"
	fileSigned   = "manifest.cose"
	fileUnsigned = "manifest.cbor"
	fileInfo     = "info.cbor"
	fileSquashfs = "rootfs.squashfs"
	dirRootfs    = "rootfs"
	fileCounters = "counters.cbor"
	copyBufSize  = 128 << 10
	// The import pipeline's buffers: pipeBufs × pipeBufSize bytes in
	// flight between the reader, the hasher and the writer.
	pipeBufs    = 4
	pipeBufSize = 512 << 10
)

// DefaultRoot is the store root when none is configured: /overlay/otok on
// OpenWrt (the writable flash overlay), /var/lib/otok elsewhere.
func DefaultRoot() string {
	if _, err := os.Stat("/etc/openwrt_release"); err == nil {
		return "/overlay/otok"
	}
	return "/var/lib/otok"
}

// Options configure a Store.
type Options struct {
	Keys    *Keyring // trusted keys; nil trusts nothing
	Arch    string   // device architecture; "" = HostArch()
	Comps   CompSet  // squashfs compressors the kernel mounts; nil = KernelComps()
	Reserve Reserve
}

// Store is an image store rooted at a directory.
type Store struct {
	root string
	opt  Options
}

// Open opens (creating if needed) the store at root, and sweeps temp files
// left by a crashed writer when no writer is running.
func Open(root string, opt Options) (*Store, error) {
	if root == "" {
		root = DefaultRoot()
	}
	if opt.Arch == "" {
		opt.Arch = HostArch()
	}
	s := &Store{root: root, opt: opt}
	for _, d := range []string{root, s.path(dirImages), s.path(dirTmp)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("store %s: %w", root, err)
		}
	}
	if unlock, err := s.tryLock(); err == nil && unlock != nil {
		s.sweep()
		unlock()
	}
	return s, nil
}

// comps is the set of squashfs compressors images may use: Options.Comps,
// else the kernel's, learnt on first use (only imports need it; reading
// the kernel config, often gzip'd, costs a router's CPU).
func (s *Store) comps() CompSet {
	if s.opt.Comps != nil {
		return s.opt.Comps
	}
	c, _ := KernelComps()
	return c
}

// Root is the store's root directory.
func (s *Store) Root() string { return s.root }

// Keys is the trusted keyring.
func (s *Store) Keys() *Keyring { return s.opt.Keys }

// Arch is the device architecture images must match.
func (s *Store) Arch() string { return s.opt.Arch }

func (s *Store) path(p ...string) string { return filepath.Join(append([]string{s.root}, p...)...) }

func (s *Store) lockFile() (*os.File, error) {
	return os.OpenFile(s.path(fileLock), os.O_RDWR|os.O_CREATE, 0o644)
}

func (s *Store) tryLock() (func(), error) {
	f, err := s.lockFile()
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, nil
	}
	return func() { f.Close() }, nil
}

// lock takes the writer lock, waiting for another writer at most until ctx
// is done, and sweeps tmp/ (whatever is there belongs to a dead writer).
func (s *Store) lock(ctx context.Context) (func(), error) {
	f, err := s.lockFile()
	if err != nil {
		return nil, fmt.Errorf("store %s: lock: %w", s.root, err)
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("store %s: lock: %w", s.root, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("store %s: waiting for another writer: %w", s.root, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.sweep()
	return func() { f.Close() }, nil
}

// sweep removes everything under tmp/. Call only with the lock held.
func (s *Store) sweep() {
	ents, _ := os.ReadDir(s.path(dirTmp))
	for _, e := range ents {
		os.RemoveAll(s.path(dirTmp, e.Name()))
	}
	// Before the counters' temp moved into tmp/, a kill -9 could leave it
	// in the root, where it blocked every later counters update.
	os.Remove(s.path(fileCounters + ".tmp"))
}

// TempEntries lists what is in tmp/ (for tests and `otok df`).
func (s *Store) TempEntries() []string {
	ents, _ := os.ReadDir(s.path(dirTmp))
	var n []string
	for _, e := range ents {
		n = append(n, e.Name())
	}
	return n
}

func (s *Store) newTemp(prefix string) (string, error) {
	var b [6]byte
	rand.Read(b[:])
	p := s.path(dirTmp, fmt.Sprintf("%s-%d-%x", prefix, os.Getpid(), b))
	return p, os.Mkdir(p, 0o755)
}

// Info is the import record kept beside each image.
type Info struct {
	Imported     int64  `cbor:"imported"` // Unix seconds
	Source       string `cbor:"source,omitempty"`
	BytesWritten int64  `cbor:"written"` // bytes this import wrote to flash
	DiskBytes    int64  `cbor:"disk"`    // bytes of file data the image holds
}

// Counters are store-wide totals since the store was created.
type Counters struct {
	Imports      int64 `cbor:"imports"`
	BytesWritten int64 `cbor:"written"`
}

// Image is a committed image.
type Image struct {
	Manifest *Manifest
	Digest   string // sha256 hex; also the directory name
	Dir      string
	Signed   bool
	KeyID    string // hex, when signed
	Info     Info
	slot     string // manifest file name without extension ("manifest", "manifest-<id>")
}

// SquashfsPath is the squashfs file of a KindSquashfs image.
func (i *Image) SquashfsPath() string { return filepath.Join(i.Dir, fileSquashfs) }

// RootfsDir is the tree of a KindDir image.
func (i *Image) RootfsDir() string { return filepath.Join(i.Dir, dirRootfs) }

// Ref is NAME:VERSION.
func (i *Image) Ref() string { return i.Manifest.Ref() }

func isDigestHex(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

// manifestSlot is the file name (without extension) that holds the
// manifest of name:version in an image directory whose primary manifest
// has another NAME:VERSION. One squashfs may be stored under several names;
// each keeps its own manifest beside the shared content.
func manifestSlot(name, version string) string {
	d := sha256.Sum256([]byte(name + ":" + version))
	return fmt.Sprintf("manifest-%x", d[:8])
}

// slots lists the manifest slots of an image directory: "manifest" first,
// then the others sorted. A slot is present when its .cose or .cbor is.
func slots(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, e := range ents {
		n := e.Name()
		base, ok := strings.CutSuffix(n, ".cose")
		if !ok {
			base, ok = strings.CutSuffix(n, ".cbor")
		}
		if !ok || e.IsDir() || seen[base] {
			continue
		}
		if base != "manifest" {
			id, isExtra := strings.CutPrefix(base, "manifest-")
			if !isExtra || len(id) != 16 || !isHex(id) {
				continue
			}
		}
		seen[base] = true
		out = append(out, base)
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i] == "manifest") != (out[j] == "manifest") {
			return out[i] == "manifest"
		}
		return out[i] < out[j]
	})
	return out, nil
}

// load reads one image directory: one Image per manifest it holds (all
// sharing the directory and its content).
func (s *Store) load(digest string) ([]*Image, error) {
	dir := s.path(dirImages, digest)
	sl, err := slots(dir)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", digest[:12], err)
	}
	if len(sl) == 0 {
		return nil, fmt.Errorf("image %s: no manifest", digest[:12])
	}
	var info Info
	if b, err := os.ReadFile(filepath.Join(dir, fileInfo)); err == nil {
		decMode.Unmarshal(b, &info)
	}
	var imgs []*Image
	var kind string
	for _, slot := range sl {
		img, err := s.loadSlot(dir, digest, slot)
		if err != nil {
			return nil, err
		}
		if kind != "" && img.Manifest.Kind != kind {
			return nil, fmt.Errorf("image %s: manifests disagree on the kind (%s, %s)", digest[:12], kind, img.Manifest.Kind)
		}
		kind = img.Manifest.Kind
		img.Info = info
		imgs = append(imgs, img)
	}
	return imgs, nil
}

func (s *Store) loadSlot(dir, digest, slot string) (*Image, error) {
	img := &Image{Digest: digest, Dir: dir, slot: slot}
	if b, err := os.ReadFile(filepath.Join(dir, slot+".cose")); err == nil {
		m, kid, err := UnsignedManifest(b)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", digest[:12], err)
		}
		img.Manifest, img.Signed, img.KeyID = m, true, kid
	} else if b, err := os.ReadFile(filepath.Join(dir, slot+".cbor")); err == nil {
		m, err := DecodeManifest(b)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", digest[:12], err)
		}
		img.Manifest = m
	} else {
		return nil, fmt.Errorf("image %s: no manifest", digest[:12])
	}
	if img.Manifest.DigestHex() != digest {
		return nil, fmt.Errorf("image %s: manifest digest %s does not match its directory", digest[:12], img.Manifest.DigestHex()[:12])
	}
	return img, nil
}

// loadRef returns the image of digest stored under name:version, if any.
func (s *Store) loadRef(digest, name, version string) (*Image, error) {
	imgs, err := s.load(digest)
	if err != nil {
		return nil, err
	}
	for _, i := range imgs {
		if i.Manifest.Name == name && i.Manifest.Version == version {
			return i, nil
		}
	}
	return nil, &NotFoundError{name + ":" + version}
}

// List returns every committed image, sorted by name, then newest version
// first. Unreadable entries are reported in errs but do not hide the rest.
func (s *Store) List() (imgs []*Image, errs []error) {
	ents, err := os.ReadDir(s.path(dirImages))
	if err != nil {
		return nil, []error{fmt.Errorf("store %s: %w", s.root, err)}
	}
	for _, e := range ents {
		if !e.IsDir() || !isDigestHex(e.Name()) {
			continue
		}
		is, err := s.load(e.Name())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		imgs = append(imgs, is...)
	}
	sort.Slice(imgs, func(i, j int) bool {
		a, b := imgs[i], imgs[j]
		if a.Manifest.Name != b.Manifest.Name {
			return a.Manifest.Name < b.Manifest.Name
		}
		return newer(a, b)
	})
	return imgs, errs
}

// newer orders two images of one name: higher version, then later
// creation, then later import.
func newer(a, b *Image) bool {
	if c := CompareVersions(a.Manifest.Version, b.Manifest.Version); c != 0 {
		return c > 0
	}
	if a.Manifest.Created != b.Manifest.Created {
		return a.Manifest.Created > b.Manifest.Created
	}
	if a.Info.Imported != b.Info.Imported {
		return a.Info.Imported > b.Info.Imported
	}
	return a.Digest > b.Digest
}

// NotFoundError is a reference that matches no image.
type NotFoundError struct{ Ref string }

func (e *NotFoundError) Error() string { return "image " + e.Ref + ": not in the store" }

// Resolve finds an image by NAME (newest version), NAME:VERSION,
// sha256:HEX or a unique digest prefix of at least 4 hex digits.
func (s *Store) Resolve(ref string) (*Image, error) {
	imgs, _ := s.List()
	return resolveIn(imgs, ref)
}

func resolveIn(imgs []*Image, ref string) (*Image, error) {
	if ref == "" {
		return nil, errors.New("image: empty reference")
	}
	byDigest := func(prefix string) (*Image, error) {
		var hits []*Image
		for _, i := range imgs {
			if strings.HasPrefix(i.Digest, prefix) {
				hits = append(hits, i)
			}
		}
		switch {
		case len(hits) == 0:
			return nil, &NotFoundError{ref}
		case sameDigest(hits):
			// One content, possibly under several names: any of them
			// (the first in name order) stands for it.
			return hits[0], nil
		}
		var ds []string
		for _, h := range hits {
			ds = append(ds, h.Digest[:12]+" ("+h.Ref()+")")
		}
		return nil, fmt.Errorf("image %s: ambiguous digest prefix, matches %s", ref, strings.Join(ds, ", "))
	}
	if h, ok := strings.CutPrefix(ref, "sha256:"); ok {
		if len(h) < 4 || !isHex(h) {
			return nil, fmt.Errorf("image %s: malformed digest", ref)
		}
		return byDigest(strings.ToLower(h))
	}
	name, version, hasVersion := strings.Cut(ref, ":")
	var best *Image
	for _, i := range imgs { // imgs are sorted newest first per name
		if i.Manifest.Name != name || (hasVersion && i.Manifest.Version != version) {
			continue
		}
		if best == nil || newer(i, best) {
			best = i
		}
	}
	if best != nil {
		return best, nil
	}
	if !hasVersion && len(ref) >= 4 && isHex(ref) {
		return byDigest(strings.ToLower(ref))
	}
	return nil, &NotFoundError{ref}
}

func sameDigest(imgs []*Image) bool {
	for _, i := range imgs {
		if i.Digest != imgs[0].Digest {
			return false
		}
	}
	return true
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// ImportOptions control one import.
type ImportOptions struct {
	// InsecureSkipVerify accepts unsigned or untrusted manifests. The
	// digest, size, arch and superblock are still checked.
	InsecureSkipVerify bool
	// Source is recorded in the image's info (file name or URL).
	Source string
	// Progress, if set, is called as bytes of the payload are consumed.
	Progress func(done, total int64)
}

// ImportResult reports a finished import.
type ImportResult struct {
	Image        *Image
	Existed      bool  // the digest was already stored; nothing was written
	BytesWritten int64 // bytes written to flash by this import
	Signer       string
}

// ImportOtok imports a .otok stream: header and signed manifest first,
// verified before a byte of the squashfs is stored, then the squashfs,
// hashed while it is written.
func (s *Store) ImportOtok(ctx context.Context, r io.Reader, opt ImportOptions) (*ImportResult, error) {
	if s.opt.Comps == nil {
		go KernelComps() // learnt while the header is read and verified
	}
	signed, err := ReadOtokHeader(r)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", subjectOf(opt.Source), err)
	}
	var m *Manifest
	var signer string
	if opt.InsecureSkipVerify {
		if m, signer, err = UnsignedManifest(signed); err != nil {
			return nil, err
		}
	} else {
		mm, k, err := s.opt.Keys.VerifyManifest(signed)
		if err != nil {
			return nil, err
		}
		m, signer = mm, k.ID
	}
	if m.Kind != KindSquashfs {
		return nil, fmt.Errorf("image %s: .otok carries kind %q, want %q", m.Name, m.Kind, KindSquashfs)
	}
	res, err := s.importSquashfs(ctx, r, m, signed, opt)
	if res != nil {
		res.Signer = signer
	}
	return res, err
}

// ImportSquashfs imports a bare squashfs stream under name:version. A bare
// squashfs carries no signature, so it requires InsecureSkipVerify. size
// is the stream's length, or -1 when unknown.
func (s *Store) ImportSquashfs(ctx context.Context, r io.Reader, size int64, m Manifest, opt ImportOptions) (*ImportResult, error) {
	if !opt.InsecureSkipVerify {
		return nil, fmt.Errorf("image %s: a bare squashfs carries no signature; import it as a signed .otok or pass --insecure-skip-verify", m.Name)
	}
	m.Kind = KindSquashfs
	m.Size = size
	return s.importSquashfs(ctx, r, &m, nil, opt)
}

func subjectOf(src string) string {
	if src == "" || src == "-" {
		return "<stdin>"
	}
	return src
}

// lockFor refuses an image built for another architecture than the
// device's, then takes the store lock; the caller defers unlock.
func (s *Store) lockFor(ctx context.Context, subject, arch string) (unlock func(), err error) {
	if !ArchCompatible(arch, s.opt.Arch) {
		return nil, fmt.Errorf("%s: built for %s, this device is %s", subject, arch, s.opt.Arch)
	}
	return s.lock(ctx)
}

// metaReserve is what a commit writes besides an image's content: the
// manifest, the import record, directory blocks.
const metaReserve = 8192

// room returns how many bytes of content an import may write: the usable
// free space less metaReserve, and the Space it comes from (for a
// NoSpaceError).
func (s *Store) room() (int64, Space, error) {
	sp, err := s.Space()
	if err != nil {
		return 0, sp, err
	}
	return sp.Usable() - metaReserve, sp, nil
}

// importSquashfs streams a squashfs into the store. m.Digest nil and
// m.Size < 0 mean "unknown" (bare squashfs): then they are computed.
func (s *Store) importSquashfs(ctx context.Context, r io.Reader, m *Manifest, signed []byte, opt ImportOptions) (*ImportResult, error) {
	subject := "image " + m.Name
	unlock, err := s.lockFor(ctx, subject, m.Arch)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if m.Digest != nil {
		if _, err := s.load(m.DigestHex()); err == nil {
			// Known content: the stream must still be exactly the content
			// the manifest names. It is read and hashed, not written.
			if err := s.verifyStream(ctx, r, m, opt.Progress); err != nil {
				return nil, err
			}
			return s.existing(m, signed)
		}
	}
	declared := m.Size
	limit, sp, err := s.room()
	if err != nil {
		return nil, err
	}
	if declared >= 0 && declared > limit {
		return nil, &NoSpaceError{Subject: subject, Need: declared, Space: sp, Path: s.root}
	}
	if declared < 0 {
		declared = limit
	}
	tmp, err := s.newTemp("import")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", subject, err)
	}
	// A .otok declares everything the commit writes besides the squashfs:
	// the manifest and the import record are written and fsynced while
	// the squashfs streams (their fsyncs are off the critical path), and
	// count only if the content then matches.
	type metaResult struct {
		n   int64
		err error
	}
	var meta chan metaResult
	waitMeta := func() (int64, error) {
		if meta == nil {
			return 0, nil
		}
		r := <-meta
		meta = nil
		return r.n, r.err
	}
	ok := false
	defer func() {
		if !ok {
			waitMeta()
			os.RemoveAll(tmp)
		}
	}()
	early := m.Digest != nil && m.Size >= 0
	if early {
		meta = make(chan metaResult, 1)
		go func() {
			n, err := s.writeMeta(tmp, m, signed, opt.Source, m.Size, m.Size, true)
			meta <- metaResult{n, err}
		}()
	}
	var written int64
	h := sha256.New()
	n, err := s.writeSquashfs(ctx, filepath.Join(tmp, fileSquashfs), r, m, declared, h, &written, opt.Progress)
	if err != nil {
		return nil, s.asNoSpace(subject, written, err)
	}
	sum := h.Sum(nil)
	if m.Digest == nil {
		m.Digest, m.Size = sum, n
		if err := m.Validate(); err != nil {
			return nil, err
		}
		if _, err := s.load(m.DigestHex()); err == nil {
			return s.existing(m, nil)
		}
	} else if !bytes.Equal(sum, m.Digest) {
		return nil, fmt.Errorf("%s: digest mismatch: manifest says sha256:%x, content is sha256:%x", subject, m.Digest, sum)
	}
	if early {
		mn, err := waitMeta()
		written += mn
		if err == nil {
			err = s.finishCommit(tmp, m, written, true)
		}
		if err != nil {
			return nil, s.asNoSpace(subject, written, fmt.Errorf("%s: %w", subject, err))
		}
	} else if err := s.commitImage(tmp, m, signed, opt.Source, n, &written, true); err != nil {
		return nil, s.asNoSpace(subject, written, err)
	}
	ok = true
	return s.imported(m, written)
}

// imported returns the result of an import that committed m, having
// written bytes to flash.
func (s *Store) imported(m *Manifest, written int64) (*ImportResult, error) {
	img, err := s.loadRef(m.DigestHex(), m.Name, m.Version)
	if err != nil {
		return nil, err
	}
	return &ImportResult{Image: img, BytesWritten: written}, nil
}

// verifyStream reads the squashfs stream of a manifest whose digest is
// already stored: exactly m.Size bytes with the manifest's digest and
// nothing after them. Nothing is written; a stream that is shorter,
// longer or different is refused like a new import would be.
func (s *Store) verifyStream(ctx context.Context, r io.Reader, m *Manifest, progress func(int64, int64)) error {
	subject := "image " + m.Name
	if m.Size < SuperblockSize {
		return fmt.Errorf("%s: declared size %d is smaller than a squashfs superblock", subject, m.Size)
	}
	h := sha256.New()
	buf := make([]byte, copyBufSize)
	var total int64
	for total < m.Size {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", subject, err)
		}
		want := int64(len(buf))
		if m.Size-total < want {
			want = m.Size - total
		}
		n, err := io.ReadAtLeast(r, buf[:want], 1)
		if n > 0 {
			h.Write(buf[:n])
			total += int64(n)
			if progress != nil {
				progress(total, m.Size)
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fmt.Errorf("%s: truncated: stream ended after %d of %d bytes", subject, total, m.Size)
		}
		if err != nil {
			return fmt.Errorf("%s: read: %w", subject, err)
		}
	}
	var one [1]byte
	if n, _ := io.ReadFull(r, one[:]); n > 0 {
		return fmt.Errorf("%s: stream is longer than the declared size %d", subject, m.Size)
	}
	if sum := h.Sum(nil); !bytes.Equal(sum, m.Digest) {
		return fmt.Errorf("%s: digest mismatch: manifest says sha256:%x, content is sha256:%x", subject, m.Digest, sum)
	}
	return nil
}

// existing records m for content already stored under its digest (the
// caller has checked the content). The same NAME:VERSION re-released with
// a new signed manifest replaces its own manifest; another NAME:VERSION
// gets a manifest of its own beside the others, so the stored names stay
// as they were. Nothing else is written.
func (s *Store) existing(m *Manifest, signed []byte) (*ImportResult, error) {
	digest := m.DigestHex()
	imgs, err := s.load(digest)
	if err != nil {
		return nil, err
	}
	subject := "image " + m.Name
	if k := imgs[0].Manifest.Kind; k != m.Kind {
		return nil, fmt.Errorf("%s: content sha256:%s is stored as kind %s, not %s", subject, digest, k, m.Kind)
	}
	var img *Image
	for _, i := range imgs {
		if i.Manifest.Name == m.Name && i.Manifest.Version == m.Version {
			img = i
		}
	}
	res := &ImportResult{Image: img, Existed: true}
	var data []byte
	var slot, ext string
	switch {
	case img != nil && signed == nil:
		return res, nil // an unsigned manifest never replaces one
	case img != nil:
		old, _ := os.ReadFile(filepath.Join(img.Dir, img.slot+".cose"))
		if bytes.Equal(old, signed) {
			return res, nil
		}
		slot, ext, data = img.slot, ".cose", signed
	default:
		slot, ext, data = manifestSlot(m.Name, m.Version), ".cose", signed
		if signed == nil {
			if data, err = m.Marshal(); err != nil {
				return nil, err
			}
			ext = ".cbor"
		}
	}
	dir := s.path(dirImages, digest)
	n, err := atomicWriteFile(filepath.Join(dir, slot+ext), data, 0o444)
	res.BytesWritten += n
	if err != nil {
		return nil, s.asNoSpace(subject, n, fmt.Errorf("%s: %w", subject, err))
	}
	if ext == ".cose" {
		os.Remove(filepath.Join(dir, slot+".cbor"))
	}
	again, err := s.loadRef(digest, m.Name, m.Version)
	if err != nil {
		return nil, err
	}
	res.Image = again
	return res, nil
}

// writeSquashfs copies exactly m.Size bytes (or up to limit when the size is
// unknown) from r to path, checking the superblock before writing anything
// and refusing a stream that is shorter or longer than declared.
func (s *Store) writeSquashfs(ctx context.Context, path string, r io.Reader, m *Manifest, limit int64, h hash.Hash, written *int64, progress func(int64, int64)) (int64, error) {
	subject := "image " + m.Name
	known := m.Size >= 0
	if known && m.Size < SuperblockSize {
		return 0, fmt.Errorf("%s: declared size %d is smaller than a squashfs superblock", subject, m.Size)
	}
	var sbuf [SuperblockSize]byte
	if n, err := io.ReadFull(r, sbuf[:]); err != nil {
		return 0, fmt.Errorf("%s: truncated: stream ended after %d bytes of the squashfs", subject, n)
	}
	sb, err := ParseSuperblock(sbuf[:])
	if err != nil {
		return 0, fmt.Errorf("%s: %w", subject, err)
	}
	checkSize := int64(sb.BytesUsed)
	if known {
		checkSize = m.Size
	}
	if err := sb.Check(checkSize, s.comps()); err != nil {
		return 0, fmt.Errorf("%s: %w", subject, err)
	}
	if int64(sb.BytesUsed) > limit {
		sp, _ := s.Space()
		return 0, &NoSpaceError{Subject: subject, Need: int64(sb.BytesUsed), Space: sp, Path: s.root}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	dw := newDirectWriter(f)
	cw := countWriter{dw, written}
	// Without O_DIRECT, start writeback every few MiB so the final fsync
	// has little left to do and dirty pages do not pile up in a router's
	// small RAM.
	const flushEvery = 4 << 20
	fd := int(f.Fd())
	var flushed int64
	afterWrite := func(n int64) {
		if !dw.direct && n-flushed >= flushEvery {
			unix.SyncFileRange(fd, flushed, n-flushed, unix.SYNC_FILE_RANGE_WRITE)
			flushed = n
		}
	}
	// fsync this file only, right after its last write while the hasher
	// finishes (not syncfs: that would also wait for every other writer's
	// dirty data on a shared filesystem). O_DIRECT writes need it too:
	// the disk's cache and the file's size and extents.
	fsync := func() error {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("%s: fsync: %w", subject, err)
		}
		return nil
	}
	hw := newHashWriter(h, cw, pipeBufs, pipeBufSize, afterWrite, fsync)
	defer hw.close(false)
	// Buffers are filled completely (full, aligned blocks for O_DIRECT);
	// the superblock already read starts the first one.
	total := int64(SuperblockSize) // bytes of the stream read
	pre := SuperblockSize          // bytes already in the next buffer
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("%s: %w", subject, err)
		}
		if hw.writeFailed() {
			return total, hw.close(false)
		}
		buf := hw.buffer()
		copy(buf.b, sbuf[:pre])
		want := int64(len(buf.b) - pre)
		if known && m.Size-total < want {
			want = m.Size - total
		}
		if want == 0 { // declared size reached: the stream must end here
			if pre > 0 {
				hw.submit(buf, pre)
			} else {
				hw.put(buf)
			}
			var one [1]byte
			if n, _ := io.ReadFull(r, one[:]); n > 0 {
				return total, fmt.Errorf("%s: stream is longer than the declared size %d", subject, m.Size)
			}
			break
		}
		n, err := io.ReadFull(r, buf.b[pre:pre+int(want)])
		if n > 0 || pre > 0 {
			if !known && total+int64(n) > limit {
				hw.put(buf)
				sp, _ := s.Space()
				return total, &NoSpaceError{Subject: subject, Need: total + int64(n), Space: sp, Path: s.root}
			}
			hw.submit(buf, pre+n)
			pre = 0
			total += int64(n)
			if progress != nil {
				progress(total, m.Size)
			}
		} else {
			hw.put(buf)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			if known {
				return total, fmt.Errorf("%s: truncated: stream ended after %d of %d bytes", subject, total, m.Size)
			}
			break
		}
		if err != nil {
			return total, fmt.Errorf("%s: read: %w", subject, err)
		}
	}
	if int64(sb.BytesUsed) > total {
		return total, fmt.Errorf("%s: squashfs: bytes_used %d exceeds the image size %d", subject, sb.BytesUsed, total)
	}
	if err := hw.close(true); err != nil {
		return total, err
	}
	return total, f.Close()
}

// commitImage writes the manifest and info into the temp image directory,
// makes the directory durable and renames it into images/. perFile: the
// directory holds a few files (a squashfs image, whose content the caller
// has fsynced): fsync the new files and the directory. Otherwise (an
// unpacked tree of many files) one syncfs of the store's filesystem
// covers them all: one journal commit instead of one per file.
func (s *Store) commitImage(tmp string, m *Manifest, signed []byte, source string, disk int64, written *int64, perFile bool) error {
	n, err := s.writeMeta(tmp, m, signed, source, disk, *written, perFile)
	*written += n
	if err != nil {
		return err
	}
	return s.finishCommit(tmp, m, *written, perFile)
}

// writeMeta writes the manifest and the import record into the temp image
// directory (fsynced each when sync) and returns the bytes it wrote. base
// is what the import writes besides them, so that the record's count of
// bytes written is exact.
func (s *Store) writeMeta(tmp string, m *Manifest, signed []byte, source string, disk, base int64, sync bool) (int64, error) {
	write := writeFile
	if sync {
		write = writeFileSync
	}
	var err error
	var n, total int64
	if signed != nil {
		n, err = write(filepath.Join(tmp, fileSigned), signed, 0o444)
	} else {
		var b []byte
		if b, err = m.Marshal(); err == nil {
			n, err = write(filepath.Join(tmp, fileUnsigned), b, 0o444)
		}
	}
	total += n
	if err != nil {
		return total, err
	}
	info := Info{Imported: time.Now().Unix(), Source: source, DiskBytes: disk}
	// The info records its own size in the total; encode twice so the
	// number is exact.
	ib, _ := encMode.Marshal(info)
	info.BytesWritten = base + total + int64(len(ib))
	ib, _ = encMode.Marshal(info)
	info.BytesWritten = base + total + int64(len(ib))
	ib, _ = encMode.Marshal(info)
	n, err = write(filepath.Join(tmp, fileInfo), ib, 0o444)
	return total + n, err
}

// finishCommit makes the temp image directory durable (its files are: see
// commitImage) and renames it into images/: the commit.
func (s *Store) finishCommit(tmp string, m *Manifest, written int64, perFile bool) error {
	var err error
	if perFile {
		err = syncDir(tmp)
	} else {
		err = syncFS(tmp)
	}
	if err != nil {
		return err
	}
	final := s.path(dirImages, m.DigestHex())
	if err := commitRename(tmp, final); err != nil {
		return fmt.Errorf("image %s: commit: %w", m.Name, err)
	}
	s.addCounters(written)
	return nil
}

// Counters reads the store-wide counters.
func (s *Store) Counters() Counters {
	var c Counters
	if b, err := os.ReadFile(s.path(fileCounters)); err == nil {
		decMode.Unmarshal(b, &c)
	}
	return c
}

func (s *Store) addCounters(written int64) {
	c := s.Counters()
	c.Imports++
	c.BytesWritten += written
	b, _ := encMode.Marshal(c)
	// Statistics, not state: replaced by rename but not fsynced (a crash
	// may lose the last update; a torn file reads as zero counters). The
	// temp is unique and in tmp/, so one left by a kill -9 is swept at the
	// next open instead of blocking every later update.
	var r [6]byte
	rand.Read(r[:])
	tmp := s.path(dirTmp, fmt.Sprintf("counters-%d-%x", os.Getpid(), r))
	if _, err := writeFile(tmp, b, 0o644); err != nil {
		os.Remove(tmp)
		return
	}
	if err := os.Rename(tmp, s.path(fileCounters)); err != nil {
		os.Remove(tmp)
	}
}

// Removed is one image taken out by RemoveImage or GCImages. Freed is the
// size of the content that went with it: 0 when another NAME:VERSION
// still shares the content (only the manifest went).
type Removed struct {
	Image *Image
	Freed int64
}

// Remove deletes an image: it disappears from images/ in one rename, then
// its files are deleted. inUse, when set, vetoes images still referenced.
func (s *Store) Remove(ctx context.Context, ref string, inUse func(digest string) bool) (*Image, error) {
	r, err := s.RemoveImage(ctx, ref, inUse)
	return r.Image, err
}

// RemoveImage is Remove that also reports what was freed.
func (s *Store) RemoveImage(ctx context.Context, ref string, inUse func(digest string) bool) (Removed, error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return Removed{}, err
	}
	defer unlock()
	img, err := s.Resolve(ref)
	if err != nil {
		return Removed{}, err
	}
	if inUse != nil && inUse(img.Digest) {
		return Removed{}, fmt.Errorf("image %s (%s): in use", img.Ref(), img.Digest[:12])
	}
	freed, err := s.removeLocked(img)
	r := Removed{Image: img}
	if freed {
		r.Freed = img.Info.DiskBytes
	}
	return r, err
}

// ContentBytes is the disk size of the distinct contents among imgs: an
// image stored under several names counts once.
func ContentBytes(imgs []*Image) int64 {
	seen := map[string]bool{}
	var n int64
	for _, i := range imgs {
		if !seen[i.Digest] {
			seen[i.Digest] = true
			n += i.Info.DiskBytes
		}
	}
	return n
}

// removeLocked removes one image. When other names still share its
// content only its manifest goes (freed reports false); the last one takes
// the directory with it.
func (s *Store) removeLocked(img *Image) (freed bool, err error) {
	sl, _ := slots(img.Dir)
	if img.slot != "" && len(sl) > 1 {
		for _, ext := range []string{".cose", ".cbor"} {
			if err := os.Remove(filepath.Join(img.Dir, img.slot+ext)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return false, fmt.Errorf("image %s: remove: %w", img.Ref(), err)
			}
		}
		return false, syncDir(img.Dir)
	}
	tmp := s.path(dirTmp, "rm-"+img.Digest)
	os.RemoveAll(tmp)
	if err := os.Rename(img.Dir, tmp); err != nil {
		return false, fmt.Errorf("image %s: remove: %w", img.Ref(), err)
	}
	if err := syncDir(s.path(dirImages)); err != nil {
		return true, err
	}
	return true, removeAllWritable(tmp)
}

// removeAllWritable deletes a tree whose directories may be read-only
// (images unpacked from tarballs keep their modes).
func removeAllWritable(p string) error {
	if err := os.RemoveAll(p); err == nil {
		return nil
	}
	filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(path, 0o755)
		}
		return nil
	})
	return os.RemoveAll(p)
}

// Verify re-checks a stored image: its signature against the keyring (if
// signed) and the digest of its squashfs.
func (s *Store) Verify(img *Image) error {
	if img.Signed {
		slot := img.slot
		if slot == "" {
			slot = "manifest"
		}
		b, err := os.ReadFile(filepath.Join(img.Dir, slot+".cose"))
		if err != nil {
			return err
		}
		if _, _, err := s.opt.Keys.VerifyManifest(b); err != nil {
			return err
		}
	}
	if img.Manifest.Kind != KindSquashfs {
		return nil
	}
	f, err := os.Open(img.SquashfsPath())
	if err != nil {
		return fmt.Errorf("image %s: %w", img.Ref(), err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("image %s: %w", img.Ref(), err)
	}
	if n != img.Manifest.Size || !bytes.Equal(h.Sum(nil), img.Manifest.Digest) {
		return fmt.Errorf("image %s: stored squashfs does not match its manifest (size %d, sha256 %x)", img.Ref(), n, h.Sum(nil))
	}
	return nil
}
