package netcfg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// attachPlan is a validated request: every name resolved, every conflict
// checked, nothing created yet.
type attachPlan struct {
	cfg    Config
	lower  netlink.Link // port or bridge (nil for otok0 before creation)
	vid    int
	mac    net.HardwareAddr
	static []Addr
}

// plan resolves ports and checks the request against the host and the
// other containers' records. It fills rec with what will be made.
func plan(host *nsHandle, cfg Config, rec *Record, recs []*Record) (*attachPlan, error) {
	sp := cfg.Spec
	p := &attachPlan{cfg: cfg, static: nil}
	for _, a := range sp.Addrs {
		if !a.DHCP {
			p.static = append(p.static, a)
		}
	}
	resolve := cfg.Resolve
	if resolve == nil { // link names only
		resolve = func(s string) (string, error) {
			if _, err := host.h.LinkByName(s); err != nil {
				return "", fmt.Errorf("no link %s", s)
			}
			return s, nil
		}
	}
	wireless := cfg.IsWireless
	if wireless == nil {
		wireless = isWireless
		if cfg.HostNS != "" {
			wireless = func(string) bool { return false }
		}
	}
	switch sp.Mode {
	case ModeBridge:
		if isOtokBridge(sp.Bridge) {
			rec.Lower = OtokBridge
			if len(p.static) == 0 && !sp.wantsDHCP() {
				a, err := allocOtokAddr(recs, cfg.Container)
				if err != nil {
					return nil, err
				}
				p.static = []Addr{{Prefix: a, Gateway: otokGateway().Addr()}}
			}
			break
		}
		dev, err := resolve(sp.Bridge)
		if err != nil {
			return nil, fmt.Errorf("network %s: %w", sp, err)
		}
		br, err := lookupBridge(host, dev)
		if err != nil {
			return nil, fmt.Errorf("network %s: %w", sp, err)
		}
		p.lower, rec.Lower = br, dev
	case ModeMacvlan, ModeIPvlan:
		port, vid, err := resolvePortVLAN(resolve, sp)
		if err != nil {
			return nil, fmt.Errorf("network %s: %w", sp, err)
		}
		if vid != 0 {
			// A link with the VLAN device's name that is not that VLAN
			// (a port really called "wan.2") is used as a plain port.
			if l, err := host.h.LinkByName(vlanName(port, vid)); err == nil {
				if v, ok := l.(*netlink.Vlan); !ok || v.VlanId != vid {
					port, vid = l.Attrs().Name, 0
				}
			}
		}
		l, err := host.h.LinkByName(port)
		if err != nil {
			return nil, fmt.Errorf("network %s: port %s: %w", sp, port, err)
		}
		if m := l.Attrs().MasterIndex; m != 0 && vid == 0 {
			master := strconv.Itoa(m)
			if ml, err := host.h.LinkByIndex(m); err == nil {
				master = ml.Attrs().Name
			}
			return nil, fmt.Errorf("network %s: port %s is a member of %s, and a %s cannot share a bridge port; attach to %s instead (%s:%s or bridge:%s), or take %s out of %s in /etc/config/network", sp, port, master, sp.Mode, master, sp.Mode, master, master, port, master)
		}
		if sp.Mode == ModeMacvlan && wireless(port) {
			return nil, fmt.Errorf("network %s: port %s is a Wi-Fi interface; an access point accepts one MAC per station, so macvlan cannot work there; use ipvlan:%s", sp, port, strings.TrimPrefix(sp.Port, ""))
		}
		p.lower, p.vid, rec.Lower = l, vid, port
		rec.Parent = port
		if vid != 0 {
			rec.VLANLink = vlanName(port, vid)
			rec.Parent = rec.VLANLink
		}
		for _, r := range recs {
			if r.Parent != rec.Parent || r.HostNS != cfg.HostNS || (r.Spec.Mode != ModeMacvlan && r.Spec.Mode != ModeIPvlan) {
				continue
			}
			if r.Spec.Sub == "passthru" {
				return nil, fmt.Errorf("network %s: port %s is taken by container %s (macvlan passthru)", sp, rec.Parent, r.Container)
			}
			if sp.Sub == "passthru" {
				return nil, fmt.Errorf("network %s: passthru needs port %s to itself, but container %s uses it", sp, rec.Parent, r.Container)
			}
			if r.Spec.Mode != sp.Mode {
				return nil, fmt.Errorf("network %s: port %s already carries %s (container %s); macvlan and ipvlan cannot share a port", sp, rec.Parent, r.Spec.Mode, r.Container)
			}
		}
	}
	// MAC: --mac, else stable (ipvlan and passthru take the port's).
	if sp.Mode == ModeBridge || (sp.Mode == ModeMacvlan && sp.Sub != "passthru") {
		if sp.MAC != "" {
			mac, err := net.ParseMAC(sp.MAC)
			if err != nil {
				return nil, fmt.Errorf("mac %s: %w", sp.MAC, err)
			}
			p.mac = mac
		} else {
			id := cfg.DeviceID
			if id == "" {
				id = DeviceID()
			}
			p.mac = StableMAC(id, cfg.Container)
		}
		for _, r := range recs {
			if r.MAC == p.mac.String() {
				return nil, fmt.Errorf("mac %s: already used by container %s", p.mac, r.Container)
			}
		}
		rec.MAC = p.mac.String()
	}
	// Addresses: none may be another container's.
	for _, a := range p.static {
		for _, r := range recs {
			for _, ra := range r.Addrs {
				if ra.Addr() == a.Prefix.Addr() {
					return nil, fmt.Errorf("address %s: already used by container %s", a.Prefix.Addr(), r.Container)
				}
			}
		}
		rec.Addrs = append(rec.Addrs, a.Prefix)
		if a.Gateway.IsValid() {
			rec.Gateway = append(rec.Gateway, a.Gateway)
		}
	}
	for _, pub := range sp.Publish {
		for _, r := range recs {
			for _, rp := range r.Spec.Publish {
				if rp.HostPort == pub.HostPort && rp.Proto == pub.Proto && r.HostNS == cfg.HostNS {
					return nil, fmt.Errorf("publish %d/%s: already published by container %s", pub.HostPort, pub.Proto, r.Container)
				}
			}
		}
	}
	for _, d := range sp.DNS {
		rec.DNS = append(rec.DNS, d.String())
	}
	if len(rec.DNS) == 0 && sp.Mode != ModeNone && !sp.wantsDHCP() {
		if cfg.HostNS == "" {
			rec.DNS = hostNameservers()
		}
		if len(rec.DNS) == 0 {
			for _, g := range rec.Gateway {
				rec.DNS = append(rec.DNS, g.String())
			}
		}
	}
	if sp.Mode != ModeNone {
		rec.IfName = ifName
	}
	if sp.Mode == ModeBridge {
		rec.HostLink = hostVethName(cfg.Container)
	}
	return p, nil
}

// resolvePortVLAN splits PORT[.VID]: the part before the last dot is the
// port and the rest the VLAN id when that port resolves; otherwise the
// whole name is the port (eth0.1, a swconfig board's VLAN device, or a
// link otok made earlier resolves both ways and ensureVLAN then simply
// finds it).
func resolvePortVLAN(resolve func(string) (string, error), sp Spec) (string, int, error) {
	if sp.VLAN == 0 {
		dev, err := resolve(sp.Port)
		return dev, 0, err
	}
	base := sp.Port[:strings.LastIndexByte(sp.Port, '.')]
	dev, errBase := resolve(base)
	if errBase == nil {
		return dev, sp.VLAN, nil
	}
	if dev, err := resolve(sp.Port); err == nil {
		return dev, 0, nil
	}
	return "", 0, errBase
}

// build creates the links and configures the container side. On error
// the caller removes what the record says exists.
func (p *attachPlan) build(ctx context.Context, host, ctr *nsHandle, rec *Record) error {
	sp := p.cfg.Spec
	lo, err := ctr.h.LinkByName("lo")
	if err == nil {
		err = ctr.h.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("container %s: loopback: %w", rec.Container, err)
	}
	switch sp.Mode {
	case ModeNone:
		return nil
	case ModeBridge:
		br := p.lower
		if br == nil {
			if br, err = ensureOtokBridge(host); err != nil {
				return err
			}
		}
		if _, err := createVeth(host, ctr, rec.Container, ifName, br, p.mac); err != nil {
			return err
		}
	case ModeMacvlan, ModeIPvlan:
		parent := p.lower
		if p.vid != 0 {
			v, owned, err := ensureVLAN(host, p.lower, p.vid)
			if err != nil {
				return err
			}
			rec.VLANOwned = owned
			parent = v
		}
		if sp.Mode == ModeMacvlan {
			err = createMacvlan(host, ctr, parent, ifName, sp.Sub, p.mac)
		} else {
			err = createIPvlan(host, ctr, parent, ifName, sp.Sub)
		}
		if err != nil {
			return err
		}
	}
	l, err := ctr.h.LinkByName(ifName)
	if err != nil {
		return fmt.Errorf("container %s: %s: %w", rec.Container, ifName, err)
	}
	if err := ctr.h.LinkSetAlias(l, tagFor(rec.Container)); err != nil {
		return fmt.Errorf("container %s: %s: set alias: %w", rec.Container, ifName, err)
	}
	if rec.MAC == "" {
		rec.MAC = l.Attrs().HardwareAddr.String()
	}
	for _, a := range p.static {
		if err := addAddr(ctr.h, l, a.Prefix); err != nil {
			return fmt.Errorf("container %s: %w", rec.Container, err)
		}
	}
	if err := linkUp(ctx, ctr, l); err != nil {
		return fmt.Errorf("container %s: %s: set up: %w", rec.Container, ifName, err)
	}
	for _, a := range p.static {
		if a.Gateway.IsValid() {
			if err := addDefaultRoute(ctr.h, l, a.Gateway); err != nil {
				return fmt.Errorf("container %s: %w", rec.Container, err)
			}
		}
	}
	if len(sp.Publish) > 0 || (sp.Mode == ModeBridge && isOtokBridge(sp.Bridge)) {
		ctrAddr := netip.Addr{}
		for _, a := range rec.Addrs {
			if a.Addr().Is4() {
				ctrAddr = a.Addr()
				break
			}
		}
		if err := natAdd(host, rec, ctrAddr); err != nil {
			return err
		}
	}
	return nil
}

// linkUp sets a link up. A macvlan refuses while a sibling has the same
// MAC — the same container's previous incarnation, whose namespace the
// kernel tears down asynchronously after it exited — so EADDRINUSE is
// retried for a few seconds.
func linkUp(ctx context.Context, n *nsHandle, l netlink.Link) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := n.h.LinkSetUp(l)
		if !errors.Is(err, unix.EADDRINUSE) || time.Now().After(deadline) {
			return err
		}
		if !sleepCtx(ctx, 50*time.Millisecond) {
			return err
		}
	}
}

// usesLink reports whether any record (but except's) names link as its
// parent or VLAN.
func usesLink(recs []*Record, link, except string) bool {
	return slices.ContainsFunc(recs, func(r *Record) bool {
		return r.Container != except && (r.Parent == link || r.VLANLink == link)
	})
}

// ResolvePort resolves the spec's port (macvlan, ipvlan) or bridge name
// with resolve, so a CLI can reject an unknown port before it creates a
// container; Attach does the same again. It returns the device and VLAN
// id; ("", 0, nil) for modes without a port and for otok0.
func (s Spec) ResolvePort(resolve func(string) (string, error)) (string, int, error) {
	switch {
	case s.Mode == ModeMacvlan || s.Mode == ModeIPvlan:
		dev, vid, err := resolvePortVLAN(resolve, s)
		if err != nil {
			return "", 0, fmt.Errorf("network %s: %w", s, err)
		}
		return dev, vid, nil
	case s.Mode == ModeBridge && !isOtokBridge(s.Bridge):
		dev, err := resolve(s.Bridge)
		if err != nil {
			return "", 0, fmt.Errorf("network %s: %w", s, err)
		}
		return dev, 0, nil
	}
	return "", 0, nil
}
