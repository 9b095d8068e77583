package netcfg

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// Tags: the alias of every link otok makes in the host namespace (and of
// the container-side link, for `otok net ls`).
const (
	tagPrefix = "otok:"
	tagVLAN   = "otok:+vlan"   // shared VLAN sub-interface
	tagBridge = "otok:+bridge" // the otok0 NAT bridge
)

// tagFor is the tag of links belonging to one container.
func tagFor(container string) string { return tagPrefix + container }

// Sweep removes what crashed attaches and vanished containers left in the
// host namespace hostNS ("" = the caller's): records of containers for
// which alive returns false (detached as Detach would, without DHCP
// release when their namespace is gone), links tagged otok:<container> of
// such containers, otok VLAN sub-interfaces and the otok0 bridge nobody
// uses, and their nftables rules — the table too when it is left empty.
// The agent calls it at start, `otok net prune` on demand.
func Sweep(ctx context.Context, stateDir, hostNS string, alive func(container string) bool) error {
	lk, err := lockState(stateDir)
	if err != nil {
		return err
	}
	defer lk.unlock()
	var errs []error
	recs, err := Records(stateDir)
	if err != nil {
		errs = append(errs, err)
	}
	var live []*Record
	for _, r := range recs {
		if r.HostNS == hostNS && !alive(r.Container) {
			if err := detachLocked(ctx, stateDir, r, recs, true); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		live = append(live, r)
	}
	// Pinned namespaces without a record (a crash between pin and save).
	if files, err := filepath.Glob(filepath.Join(stateDir, "*.netns")); err == nil {
		for _, f := range files {
			name := strings.TrimSuffix(filepath.Base(f), ".netns")
			if _, err := os.Stat(recordPath(stateDir, name)); errors.Is(err, os.ErrNotExist) {
				unbindNetNS(f)
			}
		}
	}
	host, err := openNS(hostNS)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	defer host.Close()
	links, err := host.h.LinkList()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, l := range links {
		a := l.Attrs().Alias
		switch {
		case a == tagVLAN:
			if err := removeVLANIfUnused(host, l.Attrs().Name, live, ""); err != nil {
				errs = append(errs, err)
			}
		case a == tagBridge:
			if err := removeOtokBridgeIfUnused(host, live, ""); err != nil {
				errs = append(errs, err)
			}
		case strings.HasPrefix(a, tagPrefix):
			if name := strings.TrimPrefix(a, tagPrefix); !alive(name) {
				if err := host.h.LinkDel(l); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if err := natSweep(host, live, alive); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
