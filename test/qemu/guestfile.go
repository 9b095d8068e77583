package qemu

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
)

// Save records the prepared guest in dir/<arch>/guest.json so other
// processes (the go test -exec wrapper) can reuse it.
func (g *Guest) Save(dir string) error {
	b, err := json.MarshalIndent(struct {
		Arch, Kernel, KVer, Base, Busybox, Toybox string
	}{g.Arch.Name, g.Kernel, g.KVer, g.Base, g.Busybox, g.Toybox}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, g.Arch.Name, "guest.json"), b, 0o644)
}

// Load reads a guest saved by Save; ok is false if there is none.
func Load(dir string, a *Arch) (*Guest, bool) {
	b, err := os.ReadFile(filepath.Join(dir, a.Name, "guest.json"))
	if err != nil {
		return nil, false
	}
	var s struct{ Arch, Kernel, KVer, Base, Busybox, Toybox string }
	if json.Unmarshal(b, &s) != nil {
		return nil, false
	}
	for _, p := range []string{s.Kernel, s.Base} {
		if _, err := os.Stat(p); err != nil {
			return nil, false
		}
	}
	return &Guest{Arch: a, Kernel: s.Kernel, KVer: s.KVer, Base: s.Base, Busybox: s.Busybox, Toybox: s.Toybox}, true
}

// PrepareOrLoad reuses a saved guest in o.Work or prepares and saves one.
func PrepareOrLoad(ctx context.Context, o PrepareOptions) (*Guest, error) {
	if g, ok := Load(o.Work, o.Arch); ok {
		return g, nil
	}
	g, err := Prepare(ctx, o)
	if err != nil {
		return nil, err
	}
	return g, g.Save(o.Work)
}
