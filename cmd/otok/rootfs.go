package main

import (
	"fmt"
	"os"
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
// A path that exists is used as a file or directory; anything else is an
// image reference looked up in the store.
func resolveImage(e *env, ref string) (*rootfsSource, error) {
	if ref == "" {
		return nil, fmt.Errorf("image: empty reference")
	}
	if st, err := os.Stat(ref); err == nil {
		if st.IsDir() {
			return &rootfsSource{Ref: ref, Dir: ref}, nil
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("image %s: not a regular file or directory", ref)
		}
		return &rootfsSource{Ref: ref, Squashfs: ref}, nil
	}
	return nil, fmt.Errorf("image %s: no such file, directory or image in the store", ref)
}
