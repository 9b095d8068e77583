package qemu

import (
	"debug/elf"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// guestTools are the Debian binaries (from fetch.sh's TOOLS sysroot) the
// system test packages call in the guest; the libraries they need are found
// through their ELF DT_NEEDED entries, so only those are copied (the whole
// sysroot is ~56 MB, the closure a fraction of it).
var guestTools = []string{
	"bin/ip", "bin/ss", "sbin/bridge", "sbin/tc",
	"usr/bin/mksquashfs", "usr/bin/unsquashfs",
	"usr/sbin/dnsmasq", "usr/sbin/nft", "bin/bash",
}

// dlopenLibs are loaded at run time, not through DT_NEEDED (glibc's
// pthread_exit needs libgcc_s: mksquashfs aborts without it).
var dlopenLibs = []string{"libgcc_s.so.1"}

// addTools copies guestTools with their interpreter and shared libraries
// from the sysroot into the archive (same paths). It returns how many files
// it added.
func addTools(ar *Archive, sysroot string) (int, error) {
	libDirs := []string{}
	for _, pat := range []string{"lib/*-linux-gnu*", "usr/lib/*-linux-gnu*", "lib", "usr/lib"} {
		m, _ := filepath.Glob(filepath.Join(sysroot, pat))
		for _, d := range m {
			if st, err := os.Stat(d); err == nil && st.IsDir() {
				rel, _ := filepath.Rel(sysroot, d)
				libDirs = append(libDirs, rel)
			}
		}
	}
	added := map[string]bool{}
	var add func(rel string) error
	add = func(rel string) error {
		if added[rel] {
			return nil
		}
		added[rel] = true
		real, err := resolveIn(sysroot, rel)
		if err != nil {
			return err
		}
		if err := ar.Copy("/"+rel, real, 0o755); err != nil {
			return err
		}
		f, err := elf.Open(real)
		if err != nil {
			return nil // not ELF (script): nothing more
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				b := make([]byte, p.Filesz)
				if _, err := p.ReadAt(b, 0); err == nil {
					if err := add(strings.TrimPrefix(strings.TrimRight(string(b), "\x00"), "/")); err != nil {
						return err
					}
				}
			}
		}
		libs, _ := f.ImportedLibraries()
		for _, l := range libs {
			found := false
			for _, d := range libDirs {
				if _, err := os.Lstat(filepath.Join(sysroot, d, l)); err == nil {
					if err := add(path.Join(d, l)); err != nil {
						return err
					}
					found = true
					break
				}
			}
			if !found {
				return fmt.Errorf("%s needs %s: not in the tools sysroot", rel, l)
			}
		}
		return nil
	}
	for _, l := range dlopenLibs {
		for _, d := range libDirs {
			if _, err := os.Lstat(filepath.Join(sysroot, d, l)); err == nil {
				if err := add(path.Join(d, l)); err != nil {
					return len(added), err
				}
				break
			}
		}
	}
	for _, t := range guestTools {
		if _, err := os.Lstat(filepath.Join(sysroot, t)); err != nil {
			continue
		}
		if err := add(t); err != nil {
			return len(added), err
		}
	}
	return len(added), nil
}

// resolveIn follows symlinks of rel inside sysroot (absolute targets are
// taken relative to sysroot) and returns the host path of the file.
func resolveIn(sysroot, rel string) (string, error) {
	p := rel
	for i := 0; i < 16; i++ {
		full := filepath.Join(sysroot, p)
		fi, err := os.Lstat(full)
		if err != nil {
			return "", err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			return full, nil
		}
		t, err := os.Readlink(full)
		if err != nil {
			return "", err
		}
		if path.IsAbs(t) {
			p = strings.TrimPrefix(t, "/")
		} else {
			p = path.Join(path.Dir(p), t)
		}
	}
	return "", fmt.Errorf("%s: too many symlinks", rel)
}
