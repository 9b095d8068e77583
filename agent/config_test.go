package agent

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/otok/otok/flash"
)

func TestParseConfig(t *testing.T) {
	in := `
config agent
	option stop_timeout 7
	option log_size 128k
	option nonsense 1

config profile small
	option memory 32M
	option pids 64
	option restart always
	option wat 1

config container web
	option image busybox
	list command /bin/httpd
	list command -f
	list profile small
	option memory 16M
	option healthcheck 'exec wget -q -O- http://127.0.0.1/'
	option health_interval 5
	option health_retries 2
	option health_restart 1
	option frobnicate yes

config container
	option name 'dns-box'
	option image adguard
	option restart on-failure:3
	option autostart 0
	list depends web
`
	cfg, err := ParseConfig("/etc/config/otok", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Agent.StopTimeout != 7*time.Second || cfg.Agent.LogSize != 128<<10 {
		t.Errorf("agent = %+v", cfg.Agent)
	}
	web := cfg.Containers["web"]
	if web == nil {
		t.Fatalf("no web: %v", cfg.Errors)
	}
	if web.Memory != 16<<20 || web.Pids != 64 || web.Restart.Mode != RestartAlways {
		t.Errorf("profile merge: %+v", web)
	}
	if !reflect.DeepEqual(web.Command, []string{"/bin/httpd", "-f"}) {
		t.Errorf("command %q", web.Command)
	}
	if h := web.Health; h == nil || h.Interval != 5*time.Second || h.Retries != 2 || !h.Restart || h.Exec[0] != "wget" {
		t.Errorf("health %+v", web.Health)
	}
	dns := cfg.Containers["dns-box"]
	if dns == nil || dns.Autostart || dns.Restart.MaxRetries != 3 || dns.Depends[0] != "web" {
		t.Errorf("dns-box %+v", dns)
	}
	want := []string{`agent: unknown option "nonsense"`, `profile small: unknown option "wat"`, `container web: unknown option "frobnicate"`}
	all := strings.Join(cfg.Warnings, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("warnings lack %q:\n%s", w, all)
		}
	}
	if !reflect.DeepEqual(cfg.Order, []string{"web", "dns-box"}) {
		t.Errorf("order %v", cfg.Order)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct{ in, name, want string }{
		{"config container dns\n option image x\n option memory 3x\n", "dns",
			`container dns: option memory: "3x": want a size like 64M (a number with suffix k, M or G)`},
		{"config container dns\n option memory 16M\n", "dns", "container dns: image: missing"},
		{"config container dns\n option image x\n option restart sometimes\n", "dns",
			`container dns: option restart: "sometimes": want no, on-failure[:N], always or unless-stopped`},
		{"config container dns\n option image x\n option restart always:3\n", "dns",
			`container dns: option restart: "always:3": only on-failure takes a retry count`},
		{"config container dns\n option image x\n option cpus -1\n", "dns", `container dns: option cpus: "-1": want a number of CPUs like 0.5`},
		{"config container dns\n option image x\n option memory 1k\n", "dns", "container dns: memory: 1024 bytes: at least 4M"},
		{"config container dns\n option image x\n option healthcheck 'ping 1'\n", "dns", `container dns: option healthcheck: "ping 1": want "exec CMD [ARG…]" or "tcp PORT"`},
		{"config container dns\n option image x\n option net wifi\n", "dns", `container dns: net: "wifi": want none, host, bridge[:BR], macvlan:PORT or ipvlan:PORT`},
		{"config container dns\n option image x\n option ip 10.0.0.2/24\n", "dns", "container dns: ip: needs a bridge, macvlan or ipvlan network"},
		{"config container dns\n option image x\n list env FOO\n", "dns", `container dns: env: "FOO": want KEY=VALUE`},
		{"config container dns\n option image x\n list mounts /a\n", "dns", `container dns: mounts: "/a": want /HOST/PATH:/CONTAINER/PATH[:ro]`},
		{"config container dns\n option image x\n option autostart maybe\n", "dns", `container dns: option autostart: "maybe": want 1 or 0 (yes/no, on/off, true/false)`},
		{"config container dns\n option image x\n list profile nope\n", "dns", `container dns: profile "nope": no such profile`},
		{"config container dns\n option image x\n list depends dns\n", "dns", "container dns: depends: depends on itself"},
		{"config container dns\n option image x\nconfig container dns\n option image y\n", "dns", ""},
		{"config container\n option image x\n", "@container[0]", "container section without a name"},
		{"config profile p\n option memory lots\nconfig container dns\n option image x\n list profile p\n", "dns",
			`container dns: profile p: option memory: "lots": want a size`},
	}
	for _, tt := range tests {
		cfg, err := ParseConfig("f", []byte(tt.in))
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		got := cfg.Errors[tt.name]
		if tt.want == "" {
			// merged named sections are fine
			continue
		}
		if got == nil || !strings.Contains(got.Error(), tt.want) {
			t.Errorf("%q:\n got %v\nwant %s", tt.in, got, tt.want)
		}
		if _, ok := cfg.Containers[tt.name]; ok {
			t.Errorf("%q: bad container kept", tt.in)
		}
		if CodeOf(got) != CodeInvalid {
			t.Errorf("%q: code %s", tt.in, CodeOf(got))
		}
	}
	// a syntax error fails the file, with file:line
	_, err := ParseConfig("/etc/config/otok", []byte("config container a\n option image 'x\n"))
	if err == nil || err.Error() != "/etc/config/otok:2: unterminated single quote" || CodeOf(err) != CodeInvalid {
		t.Errorf("syntax error: %v", err)
	}
	_, err = ParseConfig("f", []byte("config agent\n option stop_timeout soon\n"))
	if err == nil || !strings.Contains(err.Error(), "f:1: agent: option stop_timeout") {
		t.Errorf("agent error: %v", err)
	}
	for in, want := range map[string]string{"reserve 95%": "want a percentage", "reserve lots": "want a size", "reserve -1%": "want a percentage"} {
		_, err = ParseConfig("f", []byte("config agent\n option "+in+"\n"))
		if err == nil || !strings.Contains(err.Error(), "f:1: agent: option reserve") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", in, err)
		}
	}
	for in, want := range map[string]flash.Reserve{"4M": {Bytes: 4 << 20}, "0": {Bytes: -1}, "25%": {Percent: 25}, "0%": {Bytes: -1}} {
		if got, err := ParseReserve(in); err != nil || got != want {
			t.Errorf("reserve %s: %+v %v", in, got, err)
		}
	}
}

func TestCycles(t *testing.T) {
	specs := map[string]*ContainerSpec{
		"a": {Name: "a", Depends: []string{"b"}},
		"b": {Name: "b", Depends: []string{"c"}},
		"c": {Name: "c", Depends: []string{"a"}},
		"d": {Name: "d", Depends: []string{"a", "zz"}},
		"e": {Name: "e"},
	}
	got := findCycles(specs)
	if len(got) != 3 || got["a"] != "a → b → c → a" || got["d"] != "" || got["e"] != "" {
		t.Errorf("cycles %v", got)
	}
}

func TestParseHelpers(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "512": 512, "4k": 4096, "64M": 64 << 20, "1G": 1 << 30, "16MiB": 16 << 20, "2m": 2 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "x", "3x", "-1", "1T", "99999999999999999999G"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
	for in, want := range map[string]RestartPolicy{"no": {Mode: "no"}, "always": {Mode: "always"}, "unless-stopped": {Mode: "unless-stopped"},
		"on-failure": {Mode: "on-failure"}, "on-failure:5": {Mode: "on-failure", MaxRetries: 5}} {
		if got, err := ParseRestart(in); err != nil || got != want || got.String() != in {
			t.Errorf("ParseRestart(%q) = %+v, %v", in, got, err)
		}
	}
	if d, err := ParseSeconds("1m30s"); err != nil || d != 90*time.Second {
		t.Errorf("ParseSeconds: %v %v", d, err)
	}
}

// TestExampleConfig: the shipped example parses cleanly as is, and with
// every option uncommented (so each documented option is a known one with
// a valid example value).
func TestExampleConfig(t *testing.T) {
	data, err := os.ReadFile("../openwrt-feed/otok/files/otok.config")
	if err != nil {
		t.Skip("example config not in this tree:", err)
	}
	cfg, err := ParseConfig("otok.config", data)
	if err != nil || len(cfg.Warnings) != 0 || len(cfg.Errors) != 0 {
		t.Fatalf("as shipped: %v %v %v", err, cfg.Warnings, cfg.Errors)
	}
	var b strings.Builder
	for _, l := range strings.Split(string(data), "\n") {
		t := strings.TrimLeft(l, "\t ")
		for _, kw := range []string{"#option ", "#list ", "#config "} {
			if strings.HasPrefix(t, kw) {
				l = strings.Replace(l, "#", "", 1)
			}
		}
		b.WriteString(l + "\n")
	}
	cfg, err = ParseConfig("otok.config", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 0 || len(cfg.Errors) != 0 {
		t.Fatalf("uncommented: warnings %v errors %v", cfg.Warnings, cfg.Errors)
	}
	web := cfg.Containers["web-1"]
	if web == nil || web.Memory != 64<<20 || web.Health == nil || !web.Health.Restart || len(web.Profiles) != 1 || web.Net != "bridge:br-lan" {
		t.Fatalf("web-1 = %+v", web)
	}
	if cfg.Agent.StopTimeout != 10*time.Second || cfg.Agent.Socket != DefaultSocket || !cfg.Agent.ReserveSet || cfg.Agent.Reserve.Percent != 10 {
		t.Errorf("agent %+v", cfg.Agent)
	}
}
