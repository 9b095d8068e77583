package flash

import (
	"context"
	"errors"
)

// GCOptions control GC.
type GCOptions struct {
	// Keep is how many of the newest versions of each name survive even
	// when nothing uses them (0: only images in use survive).
	Keep int
	// InUse reports whether a container references the image; whoever
	// knows the containers (agent, CLI) supplies it. nil = nothing in use.
	InUse  func(digest string) bool
	DryRun bool
}

// GC removes images nothing references, beyond the newest opt.Keep
// versions of each name, and sweeps temp files. It returns what it removed
// (or would remove, with DryRun) and the bytes freed.
func (s *Store) GC(ctx context.Context, opt GCOptions) ([]*Image, int64, error) {
	rm, freed, err := s.GCImages(ctx, opt)
	var imgs []*Image
	for _, r := range rm {
		imgs = append(imgs, r.Image)
	}
	return imgs, freed, err
}

// GCImages is GC that reports per image what was freed (0 for a name whose
// content another name still holds).
func (s *Store) GCImages(ctx context.Context, opt GCOptions) ([]Removed, int64, error) {
	unlock, err := s.lock(ctx) // also sweeps tmp/
	if err != nil {
		return nil, 0, err
	}
	defer unlock()
	imgs, lerrs := s.List()
	var removed []Removed
	var freed int64
	var errs []error
	seen := map[string]int{}
	refs := map[string]int{} // names referencing each content
	for _, img := range imgs {
		refs[img.Digest]++
	}
	for _, img := range imgs { // newest first within a name
		n := seen[img.Manifest.Name]
		seen[img.Manifest.Name]++
		if n < opt.Keep || (opt.InUse != nil && opt.InUse(img.Digest)) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return removed, freed, err
		}
		// Several names may share one content: removing one drops its
		// manifest, the content goes (and is freed) with the last.
		last := refs[img.Digest] == 1
		if !opt.DryRun {
			var err error
			if last, err = s.removeLocked(img); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		refs[img.Digest]--
		r := Removed{Image: img}
		if last {
			r.Freed = img.Info.DiskBytes
			freed += r.Freed
		}
		removed = append(removed, r)
	}
	return removed, freed, errors.Join(append(lerrs, errs...)...)
}
