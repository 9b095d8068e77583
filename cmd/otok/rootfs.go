package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/otok/otok/flash"
)

// rootfsSource is what an IMAGE argument of `otok run`/`otok create`
// resolves to: either a squashfs file to loop-mount or a directory.
type rootfsSource struct {
	Ref      string // the argument as given
	Squashfs string // path of a squashfs file, or ""
	Digest   string // sha256 hex of the squashfs when known ("" = compute)
	Dir      string // a directory rootfs, or ""
	// Image defaults from a manifest (nil for a bare file or directory).
	Process *imageProcess
}

// imageProcess is the default process an image's manifest declares.
type imageProcess struct {
	Args []string
	Env  []string
	Cwd  string
	User string
}

// resolveImage maps an IMAGE|SQUASHFS|DIR argument to a rootfs source.
// A path that exists is used as a file or directory (a path containing a
// slash, or starting with ".", is always taken as a path); anything else
// is an image reference in the store: NAME (newest version), NAME:VERSION,
// sha256:HEX or a unique digest prefix (at least 4 hex digits).
func resolveImage(e *env, ref string) (*rootfsSource, error) {
	if ref == "" {
		return nil, fmt.Errorf("image: empty reference")
	}
	st, statErr := os.Stat(ref)
	if statErr == nil {
		if st.IsDir() {
			return &rootfsSource{Ref: ref, Dir: ref}, nil
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("image %s: not a regular file or directory", ref)
		}
		return &rootfsSource{Ref: ref, Squashfs: ref}, nil
	}
	if isPathLike(ref) {
		return nil, fmt.Errorf("image %s: no such file or directory", ref)
	}
	s, err := openStore(e, "")
	if err != nil {
		return nil, err
	}
	img, err := s.Resolve(ref)
	if err != nil {
		var nf *flash.NotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("image %s: no such file, directory or image in the store %s", ref, s.Root())
		}
		return nil, err
	}
	m := img.Manifest
	src := &rootfsSource{Ref: ref, Digest: img.Digest, Process: &imageProcess{
		Args: m.Process.Args, Env: m.Process.Env, Cwd: m.Process.Cwd, User: m.Process.User,
	}}
	if m.Kind == flash.KindDir {
		src.Dir = img.RootfsDir()
	} else {
		src.Squashfs = img.SquashfsPath()
	}
	return src, nil
}

func isPathLike(ref string) bool {
	for _, c := range ref {
		if c == '/' {
			return true
		}
	}
	return ref[0] == '.'
}
