package board

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

// PortKind says what a port name stands for.
type PortKind string

const (
	// PortRole is a logical network of the board ("lan", "wan"); its
	// device is the bridge OpenWrt builds for it (br-lan) or its single
	// device (eth1, eth0.2 on swconfig boards).
	PortRole PortKind = "role"
	// PortSwitch is a DSA user port ("lan3"): a kernel link of its own.
	PortSwitch PortKind = "port"
	// PortDevice is a kernel link named directly ("br-lan", "eth1",
	// "phy1-sta0"), known from board.json or present on the host.
	PortDevice PortKind = "device"
)

// Port is something a container can be attached to, as the user names it.
type Port struct {
	Name   string   `json:"name"`           // as written: "lan", "lan3", "br-lan"
	Device string   `json:"device"`         // kernel link: "br-lan", "lan3", "eth0.1"
	Role   string   `json:"role,omitempty"` // role the port belongs to, if any
	Kind   PortKind `json:"kind"`
}

// roleDevice is the kernel device OpenWrt's config_generate makes for a
// role: a role with a port list, and always "lan" (forced into a bridge so
// Wi-Fi can join it), becomes the bridge "br-<role>"; any other role uses
// its device string as is. links, when known, lets a board whose
// configuration departs from the default fall back to the plain device.
func roleDevice(role string, r NetworkRole, links map[string]bool) string {
	if len(r.Ports) > 0 || role == "lan" {
		br := "br-" + role
		if links == nil || links[br] || r.Device == "" || !links[r.Device] {
			return br
		}
	}
	return r.Device
}

// Ports lists the names a user can give on this board: roles first (lan,
// wan, …) then the DSA ports of each role in order. links is the set of
// kernel link names present (nil: unknown, trust board.json). A nil Board
// (not OpenWrt) has no named ports.
func (b *Board) Ports(links []string) []Port {
	if b == nil {
		return nil
	}
	have := linkSet(links)
	var out []Port
	for _, role := range b.Roles() {
		r := b.Network[role]
		if dev := roleDevice(role, r, have); dev != "" {
			out = append(out, Port{Name: role, Device: dev, Role: role, Kind: PortRole})
		}
	}
	for _, role := range b.Roles() {
		for _, p := range b.Network[role].Ports {
			out = append(out, Port{Name: p, Device: p, Role: role, Kind: PortSwitch})
		}
	}
	return out
}

// ResolvePort maps a port name to the kernel device to attach to. It
// accepts, in order: a role ("lan" → br-lan, "wan" → eth1), a DSA port
// ("lan3"), a device board.json mentions ("br-lan", "eth0.2"), or any link
// in links — the only source on hosts that are not OpenWrt (b == nil).
// Ports of a swconfig switch have no device of their own; naming one is an
// error that says which role device to use instead.
func ResolvePort(b *Board, name string, links []string) (Port, error) {
	if name == "" {
		return Port{}, fmt.Errorf("empty port name")
	}
	have := linkSet(links)
	for _, p := range b.Ports(links) {
		if p.Name == name {
			return p, nil
		}
	}
	if b != nil {
		for _, role := range b.Roles() {
			r := b.Network[role]
			if r.Device == name || roleDevice(role, r, have) == name {
				return Port{Name: name, Device: name, Role: role, Kind: PortDevice}, nil
			}
		}
		for _, sw := range b.Switch {
			for _, sp := range sw.Ports {
				if sp.Device == name {
					return Port{Name: name, Device: name, Kind: PortDevice}, nil
				}
			}
		}
	}
	if have[name] {
		return Port{Name: name, Device: name, Kind: PortDevice}, nil
	}
	if b != nil {
		if err := swconfigPortError(b, name, have); err != nil {
			return Port{}, err
		}
		var names []string
		for _, p := range b.Ports(links) {
			names = append(names, p.Name)
		}
		sort.Strings(names)
		return Port{}, fmt.Errorf("no port %s on this board (ports: %s)", name, strings.Join(names, " "))
	}
	var names []string
	for _, l := range links {
		if l != "lo" {
			names = append(names, l)
		}
	}
	sort.Strings(names)
	return Port{}, fmt.Errorf("no port %s on this host (links: %s)", name, strings.Join(names, " "))
}

// swconfigPortError explains that "lan2" on a swconfig board is a switch
// port, not a device, when the name matches a role and a port label.
func swconfigPortError(b *Board, name string, have map[string]bool) error {
	for swName, sw := range b.Switch {
		for _, sp := range sw.Ports {
			if sp.Role == "" || sp.Index == 0 || name != fmt.Sprintf("%s%d", sp.Role, sp.Index) {
				continue
			}
			dev := roleDevice(sp.Role, b.Network[sp.Role], have)
			return fmt.Errorf("%s is port %d of swconfig switch %s and has no device of its own; use %s (%s)", name, sp.Num, swName, sp.Role, dev)
		}
	}
	return nil
}

// LinkNames returns the network links of the current network namespace as
// sysfs lists them (/sys/class/net), sorted.
func LinkNames() ([]string, error) {
	ents, err := os.ReadDir("/sys/class/net")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

func linkSet(links []string) map[string]bool {
	if links == nil {
		return nil
	}
	m := make(map[string]bool, len(links))
	for _, l := range links {
		m[l] = true
	}
	return m
}
