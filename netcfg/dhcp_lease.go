package netcfg

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// errGone: the container's namespace or link no longer exists.
var errGone = errors.New("container network is gone")

// newDHCPClient prepares a client for rec's interface in ctr. Its
// OnLease configures the address and default route.
func newDHCPClient(ctr *nsHandle, rec *Record) (*DHCPClient, error) {
	l, err := ctr.h.LinkByName(rec.IfName)
	if err != nil || l.Attrs().Alias != tagFor(rec.Container) {
		return nil, errGone
	}
	c := &DHCPClient{NS: ctr.ns, IfName: rec.IfName, IfIndex: l.Attrs().Index, MAC: l.Attrs().HardwareAddr, Hostname: rec.Container}
	if rec.Spec.Mode == ModeIPvlan {
		// ipvlan shares the port's MAC: tell containers apart by client id.
		c.ClientID = append([]byte{0}, "otok:"+rec.Container...)
	} else {
		c.ClientID = append([]byte{1}, c.MAC...)
	}
	c.OnLease = func(old, new *Lease) error { return applyLease(ctr.h, l, old, new) }
	return c, nil
}

// applyLease moves the interface from the old lease's address and route
// to the new one's; nothing happens when they are the same.
func applyLease(h *netlink.Handle, l netlink.Link, old, new *Lease) error {
	if old != nil && (new == nil || old.Addr != new.Addr) {
		h.AddrDel(l, &netlink.Addr{IPNet: toIPNet(old.Addr)})
	}
	if new == nil {
		return nil
	}
	if old == nil || old.Addr != new.Addr {
		if err := addAddr(h, l, new.Addr); err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
	}
	if new.Router.IsValid() && (old == nil || old.Router != new.Router || old.Addr != new.Addr) {
		if err := addDefaultRoute(h, l, new.Router); err != nil {
			return err
		}
	}
	return nil
}

func applyLeaseToRecord(r *Record, l *Lease) {
	r.Lease = l
	r.Addrs = slices.DeleteFunc(r.Addrs, func(p netip.Prefix) bool { return p.Addr().Is4() && p != l.Addr })
	if !slices.Contains(r.Addrs, l.Addr) {
		r.Addrs = append(r.Addrs, l.Addr)
	}
	if len(r.Spec.DNS) == 0 {
		r.DNS = nil
		for _, d := range l.DNS {
			r.DNS = append(r.DNS, d.String())
		}
	}
}

// acquireLease gets the first lease for a freshly attached container.
func acquireLease(ctx context.Context, ctr *nsHandle, rec *Record) (*Lease, error) {
	c, err := newDHCPClient(ctr, rec)
	if err != nil {
		return nil, err
	}
	return c.Acquire(ctx)
}

// releaseLease releases rec's lease from inside its namespace, if that
// still exists and still holds the container's tagged link (a reused pid
// must not make otok speak for another namespace).
func releaseLease(ctx context.Context, rec *Record) error {
	ctr, err := openNS(rec.NetNS)
	if err != nil {
		return errGone
	}
	defer ctr.Close()
	c, err := newDHCPClient(ctr, rec)
	if err != nil {
		return err
	}
	c.Lease = rec.Lease
	if err := c.Release(ctx); err != nil {
		return fmt.Errorf("container %s: %w", rec.Container, err)
	}
	return nil
}

// Maintain keeps a container's DHCP lease until ctx ends (renewing,
// rebinding, acquiring again after expiry) and records every change. The
// agent runs one per DHCP container; `otok run` in the foreground runs its
// own. It returns nil when the container has no DHCP lease, errGone-style
// errors when its network disappeared, ctx's error otherwise.
func Maintain(ctx context.Context, stateDir, container string) error {
	rec, err := LoadRecord(stateDir, container)
	if err != nil {
		return err
	}
	if rec.Lease == nil {
		return nil
	}
	ctr, err := openNS(rec.NetNS)
	if err != nil {
		return fmt.Errorf("container %s: %w", container, errGone)
	}
	defer ctr.Close()
	c, err := newDHCPClient(ctr, rec)
	if err != nil {
		return fmt.Errorf("container %s: %w", container, err)
	}
	c.Lease = rec.Lease
	apply := c.OnLease
	c.OnLease = func(old, new *Lease) error {
		if err := apply(old, new); err != nil {
			return err
		}
		return updateRecord(stateDir, rec, func(r *Record) {
			if new != nil {
				applyLeaseToRecord(r, new)
			} else {
				r.Lease = nil
			}
		})
	}
	return c.Run(ctx)
}
