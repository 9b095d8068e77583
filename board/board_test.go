package board

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadBoardJSON(t *testing.T) {
	tests := []struct {
		file      string
		modelID   string
		modelName string
		network   map[string]NetworkRole
		switches  int
	}{
		{
			file: "board-rax3000m.json", modelID: "cmcc,rax3000m", modelName: "CMCC RAX3000M",
			network: map[string]NetworkRole{
				"lan": {Ports: []string{"lan1", "lan2", "lan3"}, Protocol: "static"},
				"wan": {Device: "eth1", Protocol: "dhcp"},
			},
		},
		{
			file: "board-x86.json", modelID: "microsoft-corporation-virtual-machine",
			modelName: "Microsoft Corporation Virtual Machine",
			network: map[string]NetworkRole{
				"lan": {Device: "eth0", Protocol: "static"},
				"wan": {Device: "eth1", Protocol: "dhcp"},
			},
		},
		{
			file: "board-swconfig.json", modelID: "tplink,tl-wr841-v9", modelName: "TP-Link TL-WR841N/ND v9",
			network: map[string]NetworkRole{
				"lan": {Device: "eth0.1", Protocol: "static"},
				"wan": {Device: "eth0.2", Protocol: "dhcp"},
			},
			switches: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := ReadBoardJSON(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if b.Model.ID != tt.modelID || b.Model.Name != tt.modelName {
				t.Errorf("model = %+v, want %q %q", b.Model, tt.modelID, tt.modelName)
			}
			if !reflect.DeepEqual(b.Network, tt.network) {
				t.Errorf("network = %+v, want %+v", b.Network, tt.network)
			}
			if len(b.Switch) != tt.switches {
				t.Errorf("%d switches, want %d", len(b.Switch), tt.switches)
			}
			if got := b.Roles(); len(got) < 2 || got[0] != "lan" || got[1] != "wan" {
				t.Errorf("Roles() = %v, want lan, wan first", got)
			}
		})
	}
}

func TestSwconfigRoles(t *testing.T) {
	b, err := ReadBoardJSON("testdata/board-swconfig.json")
	if err != nil {
		t.Fatal(err)
	}
	sw := b.Switch["switch0"]
	if len(sw.Ports) != 6 || sw.Ports[0].Device != "eth0" || sw.Ports[1].Role != "wan" {
		t.Errorf("ports = %+v", sw.Ports)
	}
	want := []SwitchRole{{"wan", "1 0t", "eth0.2"}, {"lan", "2 3 4 5 0t", "eth0.1"}}
	if !reflect.DeepEqual(sw.Roles, want) {
		t.Errorf("roles = %+v, want %+v", sw.Roles, want)
	}
}

func TestReadBoardJSONErrors(t *testing.T) {
	dir := t.TempDir()
	wrongType := filepath.Join(dir, "wrongtype.json")
	os.WriteFile(wrongType, []byte("{\n \"model\": {\"id\": 42}\n}"), 0o644)
	huge := filepath.Join(dir, "huge.json")
	os.WriteFile(huge, []byte(`{"x":"`+strings.Repeat("a", maxBoardJSON)+`"}`), 0o644)

	tests := []struct {
		path    string
		want    []string // substrings of the error
		notExis bool
	}{
		{path: filepath.Join(dir, "missing.json"), notExis: true},
		{path: "testdata/board-malformed.json", want: []string{"board-malformed.json", "line 7", "offset"}},
		{path: wrongType, want: []string{"wrongtype.json", "model.id", "line 2", "number where string expected"}},
		{path: huge, want: []string{"huge.json", "larger than"}},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			_, err := ReadBoardJSON(tt.path)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.notExis && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("err = %v, want ErrNotExist", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, missing %q", err, w)
				}
			}
		})
	}
}

func TestParseBoardJSONRefusesBadNames(t *testing.T) {
	net := func(role string) string { return `{"network":{"lan":` + role + `}}` }
	tests := []struct {
		name, text, want string
	}{
		{"traversal device", net(`{"device":"../../etc"}`), `network "lan": device "../../etc": '/' not allowed`},
		{"slash port", net(`{"ports":["lan1","eth0/x"]}`), `network "lan": port "eth0/x"`},
		{"too long", net(`{"device":"eeeeeeeeeeeeeeee"}`), "longer than 15 bytes"},
		{"dotdot", net(`{"ifname":".."}`), `"..": not an interface name`},
		{"space", net(`{"device":"eth0 x"}`), `' ' not allowed`},
		{"colon alias", net(`{"device":"eth0:1"}`), `':' not allowed`},
		{"empty port", net(`{"ports":[""]}`), "name is empty"},
		{"switch port device", `{"switch":{"switch0":{"ports":[{"num":0,"device":"eth0;reboot x"}]}}}`, `switch "switch0": port 0: device`},
		{"switch role device", `{"switch":{"switch0":{"roles":[{"role":"lan","ports":"1 0t","device":"a/b"}]}}}`, `switch "switch0": role "lan": device "a/b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseBoardJSON([]byte(tt.text))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to contain %q", err, tt.want)
			}
		})
	}
	// Names every real board uses stay valid: 15 bytes, VLAN devices.
	if _, err := ParseBoardJSON([]byte(net(`{"device":"eth0.2"}`))); err != nil {
		t.Errorf("eth0.2: %v", err)
	}
	if _, err := ParseBoardJSON([]byte(net(`{"ports":["eeeeeeeeeeeeeee","wan"]}`))); err != nil {
		t.Errorf("15-byte name: %v", err)
	}
}

func TestReadRelease(t *testing.T) {
	tests := []struct {
		file string
		want Release
	}{
		{"openwrt_release-25.12", Release{"OpenWrt", "25.12.0-rc1", "r32353-9e9b05130c", "mediatek/filogic", "aarch64_cortex-a53", "OpenWrt 25.12.0-rc1 r32353-9e9b05130c"}},
		{"openwrt_release-24.10", Release{"OpenWrt", "24.10.5", "r29087-d9c5716d1d", "x86/64", "x86_64", "OpenWrt 24.10.5 r29087-d9c5716d1d"}},
	}
	for _, tt := range tests {
		got, err := ReadRelease(filepath.Join("testdata", tt.file))
		if err != nil {
			t.Fatal(err)
		}
		if *got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.file, *got, tt.want)
		}
	}
	if _, err := ReadRelease("testdata/nonexistent"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
}

func TestParseReleaseErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"DISTRIB_ID='OpenWrt\n", "line 1: DISTRIB_ID: unterminated ' quote"},
		{"DISTRIB_ID='OpenWrt'\ngarbage\n", "line 2: not a KEY=value"},
		{"# nothing\n", "no DISTRIB_ID"},
	}
	for _, tt := range tests {
		_, err := ParseRelease(strings.NewReader(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseRelease(%q) err = %v, want %q", tt.in, err, tt.want)
		}
	}
}

func FuzzParseBoardJSON(f *testing.F) {
	for _, n := range []string{"board-rax3000m.json", "board-x86.json", "board-swconfig.json", "board-malformed.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBoardJSON(data)
		if err == nil {
			_ = b.Roles()
		}
	})
}

func FuzzParseRelease(f *testing.F) {
	for _, n := range []string{"openwrt_release-25.12", "openwrt_release-24.10"} {
		data, _ := os.ReadFile(filepath.Join("testdata", n))
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParseRelease(strings.NewReader(string(data)))
	})
}
