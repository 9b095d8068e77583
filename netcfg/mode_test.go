package netcfg

import (
	"fmt"
	"strings"
	"testing"
)

func TestParseNet(t *testing.T) {
	good := map[string]Spec{
		"":                               {Mode: ModeNone},
		"none":                           {Mode: ModeNone},
		"host":                           {Mode: ModeHost},
		"bridge":                         {Mode: ModeBridge},
		"bridge:br-lan":                  {Mode: ModeBridge, Bridge: "br-lan"},
		"bridge:lan":                     {Mode: ModeBridge, Bridge: "lan"},
		"macvlan:lan3":                   {Mode: ModeMacvlan, Port: "lan3"},
		"macvlan:lan2.10":                {Mode: ModeMacvlan, Port: "lan2.10", VLAN: 10},
		"macvlan:wan,mode=private":       {Mode: ModeMacvlan, Port: "wan", Sub: "private"},
		"macvlan:wan,passthru":           {Mode: ModeMacvlan, Port: "wan", Sub: "passthru"},
		"macvlan:eth0.4094,mode=vepa":    {Mode: ModeMacvlan, Port: "eth0.4094", VLAN: 4094, Sub: "vepa"},
		"ipvlan:phy1-sta0":               {Mode: ModeIPvlan, Port: "phy1-sta0"},
		"ipvlan:phy1-sta0,l3":            {Mode: ModeIPvlan, Port: "phy1-sta0", Sub: "l3"},
		"ipvlan:wan.7,mode=l2":           {Mode: ModeIPvlan, Port: "wan.7", VLAN: 7, Sub: "l2"},
		"macvlan:br-lan":                 {Mode: ModeMacvlan, Port: "br-lan"},
		"macvlan:a.b":                    {Mode: ModeMacvlan, Port: "a.b"},
		"macvlan:wan.":                   {Mode: ModeMacvlan, Port: "wan."},
		"macvlan:lan1,mode=bridge":       {Mode: ModeMacvlan, Port: "lan1", Sub: "bridge"},
		"bridge:otok0":                   {Mode: ModeBridge, Bridge: "otok0"},
		"macvlan:lan1.1,mode=passthru":   {Mode: ModeMacvlan, Port: "lan1.1", VLAN: 1, Sub: "passthru"},
		"macvlan:fifteen-chars-x":        {Mode: ModeMacvlan, Port: "fifteen-chars-x"},
		"ipvlan:wlan0":                   {Mode: ModeIPvlan, Port: "wlan0"},
		"macvlan:lan4,mode=private,":     {},
		"macvlan:lan4,mode=private,vepa": {},
	}
	for in, want := range good {
		if want.Mode == "" {
			continue // listed below as bad
		}
		got, err := ParseNet(in)
		if err != nil {
			t.Errorf("ParseNet(%q): %v", in, err)
			continue
		}
		if got.String() != want.String() || got.VLAN != want.VLAN || got.Port != want.Port || got.Bridge != want.Bridge {
			t.Errorf("ParseNet(%q) = %+v, want %+v", in, got, want)
		}
	}
	bad := map[string]string{
		"macvlan":                        "needs a port",
		"macvlan:":                       "needs a port",
		"macvlan:lan2.0":                 "VLAN id 0 out of range 1-4094",
		"macvlan:lan2.0010":              "VLAN id 0010 has a leading zero",
		"macvlan:lan2.4095":              "VLAN id 4095 out of range 1-4094",
		"macvlan:lan2.99999999999999999": "bad port name",
		"macvlan:lan1,mode=fast":         `unknown macvlan mode "fast"`,
		"ipvlan:wan,mode=bridge":         `unknown ipvlan mode "bridge"`,
		"macvlan:this-name-is-too-long":  "bad port name",
		"macvlan:a/b":                    "bad port name",
		"bridge:a b":                     "bad bridge name",
		"host:x":                         "host takes no argument",
		"none:x":                         "none takes no argument",
		"vxlan:1":                        `unknown mode "vxlan"`,
		"macvlan:lan4,mode=private,":     "unknown macvlan mode",
		"macvlan:lan4,mode=private,vepa": "more than one mode",
	}
	for in, want := range bad {
		_, err := ParseNet(in)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "network "+in+": ") {
			t.Errorf("ParseNet(%q) error = %v, want %q", in, err, want)
		}
	}
}

func TestParseAddr(t *testing.T) {
	good := map[string]string{
		"dhcp":                           "dhcp",
		"192.168.1.50/24":                "192.168.1.50/24",
		"192.168.1.50/24,gw=192.168.1.1": "192.168.1.50/24,gw=192.168.1.1",
		"10.0.0.1/31":                    "10.0.0.1/31",
		"fd00::5/64,gw=fd00::1":          "fd00::5/64,gw=fd00::1",
		"fd00::5/64,gw=fe80::1":          "fd00::5/64,gw=fe80::1",
	}
	for in, want := range good {
		a, err := ParseAddr(in)
		if err != nil || a.String() != want {
			t.Errorf("ParseAddr(%q) = %v, %v; want %s", in, a, err, want)
		}
	}
	bad := map[string]string{
		"192.168.1.50":                    "no prefix length",
		"192.168.1.300/24":                "not CIDR",
		"192.168.1.50/33":                 "not CIDR",
		"dhcp6":                           "not CIDR",
		"192.168.1.0/24":                  "network or broadcast",
		"192.168.1.255/24":                "network or broadcast",
		"0.0.0.0/0":                       "not a unicast",
		"224.0.0.1/24":                    "not a unicast",
		"127.0.0.2/8":                     "not a unicast",
		"192.168.1.50/24,gw=10.0.0.1":     "not in 192.168.1.0/24",
		"192.168.1.50/24,gw=fd00::1":      "not in the same family",
		"192.168.1.50/24,gw=192.168.1.50": "address itself",
		"192.168.1.50/24,gw=x":            "bad gateway",
		"192.168.1.50/24,via=192.168.1.1": "unknown option",
		"::ffff:1.2.3.4/120":              "IPv4-mapped",
	}
	for in, want := range bad {
		if _, err := ParseAddr(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseAddr(%q) error = %v, want %q", in, err, want)
		}
	}
}

func TestCheckAddrs(t *testing.T) {
	parse := func(ss ...string) []Addr {
		var out []Addr
		for _, s := range ss {
			a, err := ParseAddr(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, a)
		}
		return out
	}
	if err := checkAddrs(parse("10.0.0.2/24,gw=10.0.0.1", "fd00::2/64,gw=fd00::1")); err != nil {
		t.Error(err)
	}
	if err := checkAddrs(parse("dhcp", "fd00::2/64")); err != nil {
		t.Error(err)
	}
	for _, c := range [][]string{
		{"10.0.0.2/24", "10.0.0.2/16"},
		{"dhcp", "dhcp"},
		{"dhcp", "10.0.0.2/24,gw=10.0.0.1"},
		{"10.0.0.2/24,gw=10.0.0.1", "10.0.1.2/24,gw=10.0.1.1"},
	} {
		if err := checkAddrs(parse(c...)); err == nil {
			t.Errorf("checkAddrs(%v) accepted", c)
		}
	}
}

func TestParsePublish(t *testing.T) {
	good := map[string]string{"8080:80": "8080:80/tcp", "53:53/udp": "53:53/udp", "65535:1/tcp": "65535:1/tcp"}
	for in, want := range good {
		p, err := ParsePublish(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePublish(%q) = %v, %v", in, p, err)
		}
	}
	for _, in := range []string{"80", "0:80", "80:0", "65536:80", "80:80/sctp", "a:b", "-1:80", "80:+80", ":80"} {
		if _, err := ParsePublish(in); err == nil {
			t.Errorf("ParsePublish(%q) accepted", in)
		}
	}
}

func TestSpecCheck(t *testing.T) {
	spec := func(net string, mod func(*Spec)) Spec {
		s, err := ParseNet(net)
		if err != nil {
			t.Fatal(err)
		}
		if mod != nil {
			mod(&s)
		}
		return s
	}
	dhcp := func(s *Spec) { s.Addrs = []Addr{{DHCP: true}} }
	pub := func(s *Spec) { s.Publish = []Publish{{8080, 80, "tcp"}} }
	bad := map[string]Spec{
		"--ip needs a network":           spec("none", dhcp),
		"-p needs --net bridge":          spec("macvlan:lan1", pub),
		"--mac does not apply to ipvlan": spec("ipvlan:wan", func(s *Spec) { s.MAC = "02:00:00:00:00:01" }),
		"ipvlan l3 does not pass":        spec("ipvlan:wan,l3", dhcp),
		"needs a static IPv4":            spec("bridge:br-lan", pub),
		"(or none on otok0)":             spec("bridge", func(s *Spec) { dhcp(s); pub(s) }),
		"--dns does not apply":           spec("host", func(s *Spec) { s.DNS = append(s.DNS, []byte{1, 1, 1, 1}) }),
		"host port given twice":          spec("bridge", func(s *Spec) { pub(s); s.Publish = append(s.Publish, s.Publish[0]) }),
		"passthru":                       spec("macvlan:wan,passthru", func(s *Spec) { s.MAC = "02:00:00:00:00:01" }),
	}
	for want, s := range bad {
		if err := s.Check(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: Check() = %v, want %q", s, err, want)
		}
	}
	for _, s := range []Spec{spec("bridge", pub), spec("macvlan:lan1", dhcp), spec("ipvlan:wan", dhcp), spec("none", nil)} {
		if err := s.Check(); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
}

func TestValidContainerName(t *testing.T) {
	for _, n := range []string{"web", "dns-1", "a.b_c"} {
		if !ValidContainerName(n) {
			t.Errorf("%q rejected", n)
		}
	}
	for _, n := range []string{"", ".x", "-x", "a/b", "a:b", "+vlan", strings.Repeat("x", 65)} {
		if ValidContainerName(n) {
			t.Errorf("%q accepted", n)
		}
	}
}

func TestVLANName(t *testing.T) {
	if got := vlanName("lan2", 10); got != "lan2.10" {
		t.Errorf("vlanName = %q", got)
	}
	if got := vlanName("enp0s31f6abc", 4000); len(got) > 15 || !strings.HasPrefix(got, "otkv") {
		t.Errorf("long vlanName = %q", got)
	}
	if n := hostVethName("a-very-long-container-name-indeed"); len(n) > 15 {
		t.Errorf("hostVethName too long: %q", n)
	}
}

func TestResolvePortVLAN(t *testing.T) {
	links := map[string]bool{"lan2": true, "eth0.1": true, "lan2.10": true}
	resolve := func(s string) (string, error) {
		if links[s] {
			return s, nil
		}
		return "", fmt.Errorf("no port %s", s)
	}
	for in, want := range map[string]string{
		"macvlan:lan2":    "lan2/0",
		"macvlan:lan2.10": "lan2/10", // exists already (made by otok): still VLAN 10 of lan2
		"macvlan:lan2.20": "lan2/20",
		"macvlan:eth0.1":  "eth0.1/0", // no port eth0: the swconfig device itself
		"macvlan:lan9.5":  "error no port lan9",
	} {
		sp, err := ParseNet(in)
		if err != nil {
			t.Fatal(err)
		}
		dev, vid, err := resolvePortVLAN(resolve, sp)
		got := fmt.Sprintf("%s/%d", dev, vid)
		if err != nil {
			got = "error " + err.Error()
		}
		if got != want {
			t.Errorf("%s: %s, want %s", in, got, want)
		}
	}
}

// FuzzParseFlags: the --net/--ip/-p/--mac parsers never panic, and what
// --net accepts prints back to something that parses the same.
func FuzzParseFlags(f *testing.F) {
	for _, s := range []string{"macvlan:lan2.10,mode=private", "bridge:br-lan", "ipvlan:wan,l3", "192.168.1.5/24,gw=192.168.1.1", "8080:80/udp", "02:42:ac:11:00:02", "dhcp", "fd00::1/64"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ParseAddr(s)
		ParsePublish(s)
		ParseMAC(s)
		ParseDNS(s)
		sp, err := ParseNet(s)
		if err != nil {
			return
		}
		again, err := ParseNet(sp.String())
		if err != nil || again.String() != sp.String() || again.VLAN != sp.VLAN {
			t.Fatalf("%q → %q → %v %v", s, sp.String(), again, err)
		}
		sp.Check()
	})
}
