package netcfg

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// Detach removes what Attach made for a container: releases its DHCP
// lease (when its namespace is still there), deletes its host-side links,
// its published ports, VLAN sub-interfaces and the otok0 bridge when it
// was their last user, and its record. A container without a record is
// not an error.
func Detach(ctx context.Context, stateDir, container string) error {
	if _, err := os.Stat(recordPath(stateDir, container)); errors.Is(err, os.ErrNotExist) {
		return nil // never attached (most containers): no lock to take
	}
	lk, err := lockState(stateDir)
	if err != nil {
		return err
	}
	defer lk.unlock()
	rec, err := LoadRecord(stateDir, container)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		removeRecord(stateDir, container)
		return err
	}
	recs, _ := Records(stateDir)
	return detachLocked(ctx, stateDir, rec, recs, true)
}

// detachLocked undoes rec with the state lock held. release sends a DHCP
// release first if the container still holds a lease.
func detachLocked(ctx context.Context, stateDir string, rec *Record, recs []*Record, release bool) error {
	var errs []error
	if release && rec.Lease != nil {
		if err := releaseLease(ctx, rec); err != nil && !errors.Is(err, errGone) {
			errs = append(errs, err)
		}
	}
	// The container's own link, when its namespace still exists (a failed
	// attach, or a detach before stop). The tag check keeps a reused pid's
	// namespace safe.
	if ctr, err := openNS(rec.NetNS); err == nil {
		if l, err := linkTagged(ctr, tagFor(rec.Container)); err == nil {
			if err := ctr.h.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("remove %s in container: %w", l.Attrs().Name, err))
			}
		}
		ctr.Close()
	}
	host, err := openNS(rec.HostNS)
	if err != nil {
		// The host namespace itself is gone (a test's): nothing left there.
		if isNSFile(stateDir, rec.NetNS) {
			unbindNetNS(rec.NetNS)
		}
		return errors.Join(append(errs, removeRecord(stateDir, rec.Container))...)
	}
	defer host.Close()
	if rec.HostLink != "" {
		if l, err := host.h.LinkByName(rec.HostLink); err == nil && l.Attrs().Alias == tagFor(rec.Container) {
			if err := host.h.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", rec.HostLink, err))
			}
		}
	}
	if len(rec.Spec.Publish) > 0 {
		if err := natDel(host, rec.Container); err != nil {
			errs = append(errs, err)
		}
	}
	// Links of this container that are still in the host namespace (a
	// crash between create and move cannot leave any: links are created
	// in the container's namespace directly; this is belt and braces).
	if links, err := host.h.LinkList(); err == nil {
		for _, l := range links {
			if l.Attrs().Alias == tagFor(rec.Container) {
				host.h.LinkDel(l)
			}
		}
	}
	if rec.VLANLink != "" && rec.VLANOwned {
		if err := removeVLANIfUnused(host, rec.VLANLink, recs, rec.Container); err != nil {
			errs = append(errs, err)
		}
	}
	if rec.Spec.Mode == ModeBridge && isOtokBridge(rec.Spec.Bridge) {
		if err := removeOtokBridgeIfUnused(host, recs, rec.Container); err != nil {
			errs = append(errs, err)
		}
		if err := natCleanupIfUnused(host, recs, rec.Container); err != nil {
			errs = append(errs, err)
		}
	}
	if isNSFile(stateDir, rec.NetNS) {
		unbindNetNS(rec.NetNS)
	}
	if err := removeRecord(stateDir, rec.Container); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("container %s: detach network: %w", rec.Container, errors.Join(errs...))
	}
	return nil
}
