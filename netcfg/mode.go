package netcfg

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Mode is how a container is attached.
type Mode string

const (
	ModeNone    Mode = "none"    // own namespace, loopback only
	ModeHost    Mode = "host"    // the host's namespace
	ModeBridge  Mode = "bridge"  // veth into a bridge
	ModeMacvlan Mode = "macvlan" // own MAC on a device port
	ModeIPvlan  Mode = "ipvlan"  // the port's MAC, own addresses
)

// OtokBridge is the bridge otok owns and NATs for `--net bridge`.
const OtokBridge = "otok0"

// Spec is a container's network as the user asked for it: --net, --ip,
// --mac, --dns, -p.
type Spec struct {
	Mode Mode `json:"mode"`
	// Bridge is the bridge (or port resolving to one, such as "lan") for
	// ModeBridge; "" or OtokBridge is the otok-owned NAT bridge.
	Bridge string `json:"bridge,omitempty"`
	// Port is the port name for macvlan/ipvlan as written ("lan3", "wan",
	// "eth0.1"); VLAN is the VLAN id after a dot, 0 for none. A port whose
	// full name is a link (eth0.1 on swconfig boards) is used as is.
	Port string `json:"port,omitempty"`
	VLAN int    `json:"vlan,omitempty"`
	// Sub is the macvlan mode (bridge, private, vepa, passthru) or the
	// ipvlan mode (l2, l3); "" is bridge / l2.
	Sub string `json:"sub,omitempty"`

	Addrs []Addr `json:"addrs,omitempty"`
	// MAC overrides the stable MAC (ParseMAC form, "02:…"); "" derives it.
	MAC     string    `json:"mac,omitempty"`
	DNS     []net.IP  `json:"dns,omitempty"`
	Publish []Publish `json:"publish,omitempty"`
}

// String is the --net form of the mode part.
func (s Spec) String() string {
	switch s.Mode {
	case ModeBridge:
		if s.Bridge == "" {
			return "bridge"
		}
		return "bridge:" + s.Bridge
	case ModeMacvlan, ModeIPvlan:
		p := string(s.Mode) + ":" + s.Port
		if s.VLAN != 0 && !strings.HasSuffix(s.Port, "."+strconv.Itoa(s.VLAN)) {
			p += "." + strconv.Itoa(s.VLAN)
		}
		if s.Sub != "" {
			p += ",mode=" + s.Sub
		}
		return p
	}
	return string(s.Mode)
}

// ParseNet parses a --net value: none, host, bridge[:BR],
// macvlan:PORT[.VID][,mode=bridge|private|vepa|passthru],
// ipvlan:PORT[.VID][,l2|l3]. Only syntax is checked here; whether the port
// exists is decided when attaching.
func ParseNet(s string) (Spec, error) {
	bad := func(format string, a ...any) (Spec, error) {
		return Spec{}, fmt.Errorf("network %s: %s", s, fmt.Sprintf(format, a...))
	}
	kind, rest, hasArg := strings.Cut(s, ":")
	switch Mode(kind) {
	case "", ModeNone:
		if hasArg {
			return bad("none takes no argument")
		}
		return Spec{Mode: ModeNone}, nil
	case ModeHost:
		if hasArg {
			return bad("host takes no argument")
		}
		return Spec{Mode: ModeHost}, nil
	case ModeBridge:
		if hasArg && !validLinkName(rest) {
			return bad("bad bridge name %q", rest)
		}
		return Spec{Mode: ModeBridge, Bridge: rest}, nil
	case ModeMacvlan, ModeIPvlan:
		if !hasArg || rest == "" {
			return bad("%s needs a port, e.g. %s:lan3", kind, kind)
		}
		sp := Spec{Mode: Mode(kind)}
		port, opts, _ := strings.Cut(rest, ",")
		if !validLinkName(port) {
			return bad("bad port name %q", port)
		}
		sp.Port = port
		if i := strings.LastIndexByte(port, '.'); i > 0 && i < len(port)-1 && allDigits(port[i+1:]) {
			vid, err := strconv.Atoi(port[i+1:])
			if err != nil || vid < 1 || vid > 4094 {
				return bad("VLAN id %s out of range 1-4094", port[i+1:])
			}
			if port[i+1] == '0' { // lan2.0010 would not print back the same
				return bad("VLAN id %s has a leading zero", port[i+1:])
			}
			sp.VLAN = vid
		}
		if opts != "" {
			for _, o := range strings.Split(opts, ",") {
				v := strings.TrimPrefix(o, "mode=")
				if !validSub(sp.Mode, v) {
					if sp.Mode == ModeMacvlan {
						return bad("unknown macvlan mode %q (bridge, private, vepa, passthru)", v)
					}
					return bad("unknown ipvlan mode %q (l2, l3)", v)
				}
				if sp.Sub != "" {
					return bad("more than one mode")
				}
				sp.Sub = v
			}
		}
		return sp, nil
	}
	return bad("unknown mode %q (none, host, bridge[:BR], macvlan:PORT[.VID], ipvlan:PORT)", kind)
}

func validSub(m Mode, v string) bool {
	switch m {
	case ModeMacvlan:
		return v == "bridge" || v == "private" || v == "vepa" || v == "passthru"
	case ModeIPvlan:
		return v == "l2" || v == "l3"
	}
	return false
}

// validLinkName: what the kernel accepts as an interface name (1-15 bytes,
// no '/', ':', whitespace) — also keeps alias tags and file names sane.
func validLinkName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c == '/' || c == ':' || c == ',' || c >= 0x7f {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// ValidContainerName reports whether name can be used in tags and state
// file names: 1-64 of [A-Za-z0-9_.-], not starting with '.' or '-'.
func ValidContainerName(name string) bool {
	if name == "" || len(name) > 64 || name[0] == '.' || name[0] == '-' {
		return false
	}
	for _, c := range []byte(name) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}
