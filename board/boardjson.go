package board

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// BoardJSONPath is where OpenWrt's board.d scripts describe the hardware.
const BoardJSONPath = "/etc/board.json"

// maxBoardJSON bounds what we read: real files are a few kB.
const maxBoardJSON = 1 << 20

// Board is the part of /etc/board.json otok uses.
type Board struct {
	Model   Model                   `json:"model"`
	Network map[string]NetworkRole  `json:"network"` // "lan", "wan", …
	Switch  map[string]SwitchConfig `json:"switch,omitempty"`
}

// Model names the device.
type Model struct {
	ID   string `json:"id"`   // "cmcc,rax3000m"
	Name string `json:"name"` // "CMCC RAX3000M"
}

// NetworkRole is one logical network of the board. DSA boards list member
// ports (lan → lan1 lan2 lan3, bridged as br-lan); others name one device
// (wan → eth1, or eth0.2 on swconfig boards). Older files say "ifname".
type NetworkRole struct {
	Ports    []string `json:"ports,omitempty"`
	Device   string   `json:"device,omitempty"`
	IfName   string   `json:"ifname,omitempty"`
	Protocol string   `json:"protocol,omitempty"`
	MACAddr  string   `json:"macaddr,omitempty"`
}

// SwitchConfig is a swconfig switch: physical port numbers with roles, and
// per-role VLAN devices on the CPU port ("2 3 4 5 0t" → eth0.1).
type SwitchConfig struct {
	Enable bool         `json:"enable"`
	Reset  bool         `json:"reset"`
	Ports  []SwitchPort `json:"ports"`
	Roles  []SwitchRole `json:"roles"`
}

// SwitchPort is one port of a swconfig switch; the CPU port has a device.
type SwitchPort struct {
	Num       int    `json:"num"`
	Device    string `json:"device,omitempty"`
	Role      string `json:"role,omitempty"`
	Index     int    `json:"index,omitempty"`
	NeedTag   bool   `json:"need_tag,omitempty"`
	WantUntag bool   `json:"want_untag,omitempty"`
}

// SwitchRole maps a role to its port list and the VLAN device carrying it.
type SwitchRole struct {
	Role   string `json:"role"`
	Ports  string `json:"ports"`
	Device string `json:"device"`
}

// ReadBoardJSON reads and parses a board.json file. A missing file returns
// an error wrapping os.ErrNotExist. Malformed JSON is reported with the file
// name, line, column and byte offset.
func ReadBoardJSON(path string) (*Board, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBoardJSON+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxBoardJSON {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxBoardJSON)
	}
	b, err := ParseBoardJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// ParseBoardJSON parses the contents of a board.json file.
func ParseBoardJSON(data []byte) (*Board, error) {
	var b Board
	if err := json.Unmarshal(data, &b); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			line, col := position(data, se.Offset)
			return nil, fmt.Errorf("malformed JSON at line %d, column %d (offset %d): %v", line, col, se.Offset, se)
		case errors.As(err, &te):
			line, col := position(data, te.Offset)
			return nil, fmt.Errorf("field %q at line %d, column %d (offset %d): %s where %s expected", te.Field, line, col, te.Offset, te.Value, te.Type)
		}
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	for name, r := range b.Network {
		if r.Device == "" && r.IfName != "" {
			r.Device = r.IfName
			b.Network[name] = r
		}
	}
	if err := b.checkNames(); err != nil {
		return nil, err
	}
	return &b, nil
}

// checkNames refuses device and port names no kernel accepts as an
// interface name: they would only fail later, at a netlink lookup far from
// the file that said them (and "../../etc" must never reach a path).
func (b *Board) checkNames() error {
	// Map order, no sort (a hostile file may have 100000 roles); of
	// several bad roles the first by name is reported.
	var badRole string
	var bad error
	for role, r := range b.Network {
		if bad != nil && role > badRole {
			continue
		}
		for _, p := range r.Ports {
			if err := checkIfName(p); err != nil {
				badRole, bad = role, fmt.Errorf("network %q: port %w", role, err)
				break
			}
		}
		if r.Device != "" && (badRole != role || bad == nil) {
			if err := checkIfName(r.Device); err != nil {
				badRole, bad = role, fmt.Errorf("network %q: device %w", role, err)
			}
		}
	}
	if bad != nil {
		return bad
	}
	for name, sw := range b.Switch {
		for _, p := range sw.Ports {
			if p.Device != "" {
				if err := checkIfName(p.Device); err != nil {
					return fmt.Errorf("switch %q: port %d: device %w", name, p.Num, err)
				}
			}
		}
		for _, r := range sw.Roles {
			if r.Device != "" {
				if err := checkIfName(r.Device); err != nil {
					return fmt.Errorf("switch %q: role %q: device %w", name, r.Role, err)
				}
			}
		}
	}
	return nil
}

// checkIfName applies the kernel's rule (dev_valid_name): 1 to 15 bytes,
// not "." or "..", no '/', ':' or white space.
func checkIfName(name string) error {
	const ifNameMax = 15 // IFNAMSIZ less the NUL
	switch {
	case name == "":
		return fmt.Errorf("name is empty")
	case len(name) > ifNameMax:
		return fmt.Errorf("%.40q: longer than %d bytes, not an interface name", name, ifNameMax)
	case name == "." || name == "..":
		return fmt.Errorf("%q: not an interface name", name)
	}
	for _, c := range []byte(name) {
		if c == '/' || c == ':' || c == ' ' || (c >= '\t' && c <= '\r') || c == 0 {
			return fmt.Errorf("%q: %q not allowed in an interface name", name, c)
		}
	}
	return nil
}

// Roles returns the network role names in a stable order (lan, wan first).
func (b *Board) Roles() []string {
	var names []string
	for n := range b.Network {
		names = append(names, n)
	}
	rank := func(s string) int {
		switch s {
		case "lan":
			return 0
		case "wan":
			return 1
		}
		return 2
	}
	sort.Slice(names, func(i, j int) bool {
		ri, rj := rank(names[i]), rank(names[j])
		if ri != rj {
			return ri < rj
		}
		return names[i] < names[j]
	})
	return names
}

// Describe is a one-line summary of a role: "lan: ports lan1 lan2 lan3" or
// "wan: device eth1".
func (r NetworkRole) Describe() string {
	switch {
	case len(r.Ports) > 0:
		return "ports " + strings.Join(r.Ports, " ")
	case r.Device != "":
		return "device " + r.Device
	}
	return "no device"
}

// position converts a byte offset to a 1-based line and column.
func position(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line = 1 + bytes.Count(data[:off], []byte{'\n'})
	col = int(off) - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}
