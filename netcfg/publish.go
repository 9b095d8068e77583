package netcfg

import (
	"fmt"
	"strconv"
	"strings"
)

// Publish is one -p value: traffic to the host's HostPort is forwarded to
// the container's CtrPort.
type Publish struct {
	HostPort uint16 `json:"host_port"`
	CtrPort  uint16 `json:"ctr_port"`
	Proto    string `json:"proto"` // "tcp" or "udp"
}

func (p Publish) String() string {
	return fmt.Sprintf("%d:%d/%s", p.HostPort, p.CtrPort, p.Proto)
}

// ParsePublish parses HOSTPORT:CTRPORT[/tcp|udp] (tcp by default).
func ParsePublish(s string) (Publish, error) {
	ports, proto, hasProto := strings.Cut(s, "/")
	if !hasProto {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" {
		return Publish{}, fmt.Errorf("publish %s: protocol %q is not tcp or udp", s, proto)
	}
	h, c, ok := strings.Cut(ports, ":")
	if !ok {
		return Publish{}, fmt.Errorf("publish %s: want HOSTPORT:CTRPORT[/tcp|udp]", s)
	}
	hp, err1 := parsePort(h)
	cp, err2 := parsePort(c)
	if err1 != nil || err2 != nil {
		return Publish{}, fmt.Errorf("publish %s: ports are numbers 1-65535", s)
	}
	return Publish{HostPort: hp, CtrPort: cp, Proto: proto}, nil
}

func parsePort(s string) (uint16, error) {
	if !allDigits(s) {
		return 0, fmt.Errorf("bad port %q", s)
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint16(n), nil
}
