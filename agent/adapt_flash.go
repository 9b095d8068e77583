package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/otok/otok/flash"
)

// FlashStore is the Store and ImageStore over flash.Store. The store is
// opened on first use (a device without a store yet still runs an agent).
// An image reference that is an absolute path names a squashfs file or a
// directory directly, as `otok run` accepts.
type FlashStore struct {
	Root   string // store root ("" = flash.DefaultRoot())
	Keys   string // trusted keys dir
	RunDir string // state dir (tmpfs) for loop mounts
	// Reserve is the flash kept free (imports, persistent layers); zero:
	// flash's default, max(2 MiB, 10%).
	Reserve flash.Reserve

	mu sync.Mutex
	st *flash.Store
}

func (f *FlashStore) store() (*flash.Store, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st != nil {
		return f.st, nil
	}
	root := f.Root
	if root == "" {
		root = flash.DefaultRoot()
	}
	kr, err := flash.LoadKeyring(f.Keys)
	if err != nil {
		return nil, Errorf(CodeUnavailable, "image store: keys %s: %v", f.Keys, err)
	}
	st, err := flash.Open(root, flash.Options{Keys: kr, Reserve: f.Reserve})
	if err != nil {
		return nil, storeErr(err)
	}
	f.st = st
	return st, nil
}

func storeErr(err error) error {
	var nf *flash.NotFoundError
	var ns *flash.NoSpaceError
	var ve *flash.VerifyError
	switch {
	case errors.As(err, &nf):
		return &Error{Code: CodeNotFound, Msg: err.Error()}
	case errors.As(err, &ns):
		return &Error{Code: CodeNoSpace, Msg: err.Error()}
	case errors.As(err, &ve), errors.Is(err, flash.ErrNotOtok):
		return &Error{Code: CodeInvalid, Msg: err.Error()}
	case errors.Is(err, os.ErrPermission):
		return &Error{Code: CodePermission, Msg: err.Error()}
	}
	return err
}

func (f *FlashStore) Resolve(ctx context.Context, ref string) (*Image, error) {
	if strings.HasPrefix(ref, "/") {
		fi, err := os.Stat(ref)
		if err != nil {
			return nil, Errorf(CodeNotFound, "no such file or directory")
		}
		img := &Image{Name: ref, File: ref}
		if fi.IsDir() {
			img.Digest = "dir:" + ref
		}
		return img, nil
	}
	st, err := f.store()
	if err != nil {
		return nil, err
	}
	img, err := st.Resolve(ref)
	if err != nil {
		var nf *flash.NotFoundError
		if errors.As(err, &nf) {
			return nil, Errorf(CodeNotFound, "not in the store %s", st.Root())
		}
		return nil, storeErr(err)
	}
	m := img.Manifest
	out := &Image{Name: m.Name, Version: m.Version, Digest: img.Digest, Args: m.Process.Args, Env: m.Process.Env, Cwd: m.Process.Cwd,
		User: m.Process.User}
	if m.Kind == flash.KindDir {
		out.File = img.RootfsDir()
	} else {
		out.File = img.SquashfsPath()
	}
	return out, nil
}

func (f *FlashStore) Mount(ctx context.Context, img *Image, user string) (string, error) {
	if fi, err := os.Stat(img.File); err == nil && fi.IsDir() {
		return img.File, nil
	}
	digest := img.Digest
	dir, err := flash.AcquireSquashfs(ctx, f.RunDir, img.File, digest, user)
	if err != nil {
		return "", err
	}
	if img.Digest == "" {
		img.Digest = filepath.Base(dir)
	}
	return dir, nil
}

func (f *FlashStore) Release(ctx context.Context, img *Image, user string) error {
	if img.Digest == "" || strings.HasPrefix(img.Digest, "dir:") {
		return nil
	}
	if fi, err := os.Stat(img.File); err == nil && fi.IsDir() {
		return nil
	}
	return flash.ReleaseSquashfs(f.RunDir, img.Digest, user)
}

func imageInfo(img *flash.Image) ImageInfo {
	i := ImageInfo{Digest: img.Digest, Size: img.Info.DiskBytes}
	if img.Manifest != nil {
		i.Name, i.Version = img.Manifest.Name, img.Manifest.Version
	}
	return i
}

// Import imports r.Path as `otok image import` does: a .otok (by its
// magic, whatever the file is called) is verified against the trusted
// keys; a bare squashfs or a rootfs tarball carries no signature and needs
// Name and InsecureSkipVerify.
func (f *FlashStore) Import(ctx context.Context, r *ImageImportRequest) (*ImageInfo, error) {
	st, err := f.store()
	if err != nil {
		return nil, err
	}
	file, err := os.Open(r.Path)
	if err != nil {
		return nil, Errorf(CodeNotFound, "image %s: %v", r.Path, err)
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil, Errorf(CodeInvalid, "image %s: not a regular file", r.Path)
	}
	br := bufio.NewReaderSize(file, 64<<10)
	head, _ := br.Peek(8)
	iopt := flash.ImportOptions{InsecureSkipVerify: r.InsecureSkipVerify, Source: r.Path}
	var res *flash.ImportResult
	switch {
	case bytes.HasPrefix(head, flash.OtokMagic[:]):
		if r.Name != "" || r.Version != "" || r.Arch != "" {
			return nil, Errorf(CodeInvalid, "image %s: name, version and arch apply to a bare squashfs or tarball; a .otok names itself", r.Path)
		}
		res, err = st.ImportOtok(ctx, br, iopt)
	case bytes.HasPrefix(head, []byte("hsqs")):
		if r.Name == "" || !r.InsecureSkipVerify {
			return nil, Errorf(CodeInvalid, "image %s: a bare squashfs carries no signature: it needs a name and insecure (or import a signed .otok)", r.Path)
		}
		m := flash.Manifest{Name: r.Name, Version: r.Version, Arch: r.Arch, Created: time.Now().Unix(),
			Process: flash.Process{Args: []string{"/bin/sh"}}}
		if m.Version == "" {
			m.Version = time.Now().UTC().Format("20060102.150405")
		}
		if m.Arch == "" {
			m.Arch = st.Arch()
		}
		res, err = st.ImportSquashfs(ctx, br, fi.Size(), m, iopt)
	default:
		if r.Name == "" || !r.InsecureSkipVerify {
			return nil, Errorf(CodeInvalid, "image %s: not a .otok; a rootfs tarball carries no signature: it needs a name and insecure (or build a signed .otok with otok image build)", r.Path)
		}
		res, err = st.ImportRootfsTar(ctx, br, flash.RootfsOptions{Name: r.Name, Version: r.Version, Arch: r.Arch,
			AllowSpecial: r.AllowSpecial, MaxBytes: r.MaxSize, Source: r.Path})
	}
	if err != nil {
		return nil, storeErr(err)
	}
	i := imageInfo(res.Image)
	i.Existed, i.Written = res.Existed, res.BytesWritten
	if res.Image.Manifest != nil {
		i.Kind, i.Arch = string(res.Image.Manifest.Kind), res.Image.Manifest.Arch
	}
	if res.Image.Signed {
		i.KeyID = res.Image.KeyID
	}
	return &i, nil
}

func (f *FlashStore) List(ctx context.Context) ([]ImageInfo, error) {
	st, err := f.store()
	if err != nil {
		return nil, err
	}
	imgs, _ := st.List()
	out := []ImageInfo{}
	for _, img := range imgs {
		out = append(out, imageInfo(img))
	}
	return out, nil
}

func (f *FlashStore) Remove(ctx context.Context, ref string) error {
	st, err := f.store()
	if err != nil {
		return err
	}
	_, err = st.Remove(ctx, ref, nil)
	return storeErr(err)
}

func (f *FlashStore) GC(ctx context.Context, inUse func(string) bool) (*GCReply, error) {
	st, err := f.store()
	if err != nil {
		return nil, err
	}
	imgs, freed, err := st.GC(ctx, flash.GCOptions{InUse: inUse})
	if err != nil {
		return nil, storeErr(err)
	}
	r := &GCReply{Freed: freed}
	for _, i := range imgs {
		r.Removed = append(r.Removed, i.Ref())
	}
	return r, nil
}

func (f *FlashStore) DF(ctx context.Context) (*DFReply, error) {
	st, err := f.store()
	if err != nil {
		return nil, err
	}
	sp, err := st.Space()
	if err != nil {
		return nil, err
	}
	imgs, _ := st.List()
	r := &DFReply{Store: st.Root(), Total: sp.Total, Free: sp.Avail, Reserve: sp.Reserve, Images: len(imgs)}
	for _, i := range imgs {
		r.ImageUse += i.Info.DiskBytes
	}
	return r, nil
}
