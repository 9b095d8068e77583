package board

import (
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// captureLinks reads the link names of a `ubus call network.device status`
// capture: the devices that exist on that router.
func captureLinks(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func TestResolvePort(t *testing.T) {
	type want struct {
		dev, role string
		kind      PortKind
		err       string
	}
	tests := []struct {
		board, links string
		cases        map[string]want
	}{
		{"board-rax3000m.json", "device-status-rax3000m.json", map[string]want{
			"lan":       {dev: "br-lan", role: "lan", kind: PortRole},
			"wan":       {dev: "eth1", role: "wan", kind: PortRole},
			"lan1":      {dev: "lan1", role: "lan", kind: PortSwitch},
			"lan3":      {dev: "lan3", role: "lan", kind: PortSwitch},
			"br-lan":    {dev: "br-lan", role: "lan", kind: PortDevice},
			"eth1":      {dev: "eth1", role: "wan", kind: PortDevice},
			"phy1-sta0": {dev: "phy1-sta0", kind: PortDevice}, // Wi-Fi uplink: a link, not in board.json
			"eth0":      {dev: "eth0", kind: PortDevice},      // DSA conduit
			"lan9":      {err: "no port lan9 on this board (ports: lan lan1 lan2 lan3 wan)"},
			"":          {err: "empty port name"},
		}},
		{"board-x86.json", "device-status-x86.json", map[string]want{
			"lan":    {dev: "br-lan", role: "lan", kind: PortRole},
			"wan":    {dev: "eth1", role: "wan", kind: PortRole},
			"eth0":   {dev: "eth0", role: "lan", kind: PortDevice},
			"br-lan": {dev: "br-lan", role: "lan", kind: PortDevice},
			"lan1":   {err: "no port lan1 on this board (ports: lan wan)"},
		}},
		{"board-swconfig.json", "", map[string]want{
			"lan":    {dev: "br-lan", role: "lan", kind: PortRole},
			"wan":    {dev: "eth0.2", role: "wan", kind: PortRole},
			"eth0.1": {dev: "eth0.1", role: "lan", kind: PortDevice},
			"eth0":   {dev: "eth0", kind: PortDevice},
			"lan2":   {err: "lan2 is port 4 of swconfig switch switch0 and has no device of its own; use lan (br-lan)"},
			"wan5":   {err: "wan5 is port 1 of swconfig switch switch0 and has no device of its own; use wan (eth0.2)"},
		}},
	}
	for _, tt := range tests {
		b, err := ReadBoardJSON("testdata/" + tt.board)
		if err != nil {
			t.Fatal(err)
		}
		var links []string
		if tt.links != "" {
			links = captureLinks(t, tt.links)
		}
		for name, w := range tt.cases {
			p, err := ResolvePort(b, name, links)
			if w.err != "" {
				if err == nil || err.Error() != w.err {
					t.Errorf("%s: ResolvePort(%q) error = %v, want %q", tt.board, name, err, w.err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: ResolvePort(%q): %v", tt.board, name, err)
				continue
			}
			if p.Name != name || p.Device != w.dev || p.Role != w.role || p.Kind != w.kind {
				t.Errorf("%s: ResolvePort(%q) = %+v, want device %s role %q kind %s", tt.board, name, p, w.dev, w.role, w.kind)
			}
		}
	}
}

// A board whose lan bridge is not configured (no br-lan link) falls back to
// the role's plain device.
func TestResolvePortLanWithoutBridge(t *testing.T) {
	b, err := ReadBoardJSON("testdata/board-x86.json")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ResolvePort(b, "lan", []string{"lo", "eth0", "eth1"})
	if err != nil || p.Device != "eth0" {
		t.Fatalf("ResolvePort(lan) = %+v, %v; want eth0", p, err)
	}
}

func TestResolvePortNotOpenWrt(t *testing.T) {
	links := []string{"lo", "enp3s0", "docker0"}
	p, err := ResolvePort(nil, "enp3s0", links)
	if err != nil || p.Device != "enp3s0" || p.Kind != PortDevice {
		t.Fatalf("ResolvePort(enp3s0) = %+v, %v", p, err)
	}
	_, err = ResolvePort(nil, "lan3", links)
	if err == nil || err.Error() != "no port lan3 on this host (links: docker0 enp3s0)" {
		t.Fatalf("ResolvePort(lan3) error = %v", err)
	}
}

func TestPortsList(t *testing.T) {
	b, err := ReadBoardJSON("testdata/board-rax3000m.json")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range b.Ports(captureLinks(t, "device-status-rax3000m.json")) {
		got = append(got, p.Name+"="+p.Device)
	}
	want := []string{"lan=br-lan", "wan=eth1", "lan1=lan1", "lan2=lan2", "lan3=lan3"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Ports() = %v, want %v", got, want)
	}
	if (*Board)(nil).Ports(nil) != nil {
		t.Error("nil board has ports")
	}
}

func TestLinkNames(t *testing.T) {
	names, err := LinkNames()
	if err != nil {
		t.Skipf("no /sys/class/net here: %v", err)
	}
	if !strings.Contains(" "+strings.Join(names, " ")+" ", " lo ") {
		t.Errorf("LinkNames() = %v, want lo among them", names)
	}
}
