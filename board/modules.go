package board

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// moduleIndex answers whether a kernel module is loaded, built in, or
// loadable from /lib/modules/<release>. OpenWrt keeps modules flat in
// /lib/modules/<release>/*.ko without modules.dep; Debian nests them and
// compresses them, so both layouts are indexed by base name.
type moduleIndex struct {
	loaded   map[string]bool
	builtin  map[string]bool
	loadable map[string]bool
}

func normModule(name string) string { return strings.ReplaceAll(name, "-", "_") }

func newModuleIndex(release, procRoot string) *moduleIndex {
	m := &moduleIndex{loaded: map[string]bool{}, builtin: map[string]bool{}, loadable: map[string]bool{}}
	if f, err := os.Open(filepath.Join(procRoot, "modules")); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if name, _, ok := strings.Cut(sc.Text(), " "); ok {
				m.loaded[normModule(name)] = true
			}
		}
		f.Close()
	}
	if release == "" {
		return m
	}
	dir := filepath.Join("/lib/modules", release)
	if f, err := os.Open(filepath.Join(dir, "modules.builtin")); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if name := koName(filepath.Base(sc.Text())); name != "" {
				m.builtin[name] = true
			}
		}
		f.Close()
	}
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if name := koName(d.Name()); name != "" && !d.IsDir() {
			m.loadable[name] = true
		}
		return nil
	})
	return m
}

// koName returns the module name of a file "x.ko", "x.ko.xz", … or "".
func koName(file string) string {
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if strings.HasSuffix(file, ext) {
			return normModule(strings.TrimSuffix(file, ext))
		}
	}
	return ""
}

// state says how a module is available: "loaded", "built in", "loadable"
// or "" when the kernel has no such module.
func (m *moduleIndex) state(name string) string {
	n := normModule(name)
	switch {
	case m.loaded[n]:
		return "loaded"
	case m.builtin[n]:
		return "built in"
	case m.loadable[n]:
		return "loadable"
	}
	return ""
}
