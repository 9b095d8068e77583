package runtime

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	ok := func() Spec {
		return Spec{Name: "web", Rootfs: Rootfs{Path: "/x"}, Process: Process{Args: []string{"sh"}}}
	}
	cases := []struct {
		name string
		mod  func(*Spec)
		want string
	}{
		{"ok", func(*Spec) {}, ""},
		{"bad name", func(s *Spec) { s.Name = "a/b" }, "invalid name"},
		{"dash first", func(s *Spec) { s.Name = "-a" }, "invalid name"},
		{"no args", func(s *Spec) { s.Process.Args = nil }, "no command"},
		{"relative volume", func(s *Spec) { s.Mounts = []Mount{{Source: "rel", Target: "/x"}} }, "absolute"},
		{"tiny memory", func(s *Spec) { s.Resources.Memory = 1000 }, "minimum"},
		{"swap < memory", func(s *Spec) { s.Resources.Memory, s.Resources.MemorySwap = 64<<20, 32<<20 }, "smaller"},
		{"shares", func(s *Spec) { s.Resources.CPUShares = 1 }, "cpu-shares"},
		{"weight", func(s *Spec) { s.Resources.CPUWeight = 20000 }, "cpu-weight"},
		{"cap", func(s *Spec) { s.CapAdd = []string{"SYS_WIZARD"} }, "SYS_WIZARD"},
		{"rlimit", func(s *Spec) { s.Rlimits = []Rlimit{{Type: "bogus"}} }, "bogus"},
		{"net mode", func(s *Spec) { s.Net.Mode = "weird" }, "weird"},
		{"net path", func(s *Spec) { s.Net.Mode = NetPath }, "path missing"},
	}
	for _, c := range cases {
		s := ok()
		c.mod(&s)
		err := s.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func TestCapabilities(t *testing.T) {
	s := Spec{}
	def, _ := s.capabilities()
	for _, n := range []string{"SYS_ADMIN", "SYS_MODULE", "SYS_BOOT", "SYS_NICE", "SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME",
		"SYS_TTY_CONFIG", "SYSLOG", "WAKE_ALARM", "MAC_ADMIN", "MAC_OVERRIDE", "SYS_PACCT", "MKNOD", "NET_ADMIN"} {
		if def&(1<<uint(capNames[n])) != 0 {
			t.Errorf("default set has %s", n)
		}
	}
	s.CapAdd, s.CapDrop = []string{"NET_ADMIN"}, []string{"CHOWN"}
	m, _ := s.capabilities()
	if m&(1<<uint(capNames["NET_ADMIN"])) == 0 || m&(1<<uint(capNames["CHOWN"])) != 0 {
		t.Errorf("add/drop: %x", m)
	}
	s = Spec{CapDrop: []string{"ALL"}, CapAdd: []string{"KILL"}}
	if m, _ := s.capabilities(); m != 1<<uint(capNames["KILL"]) {
		t.Errorf("drop ALL add KILL: %x", m)
	}
	s = Spec{Privileged: true}
	if m, _ := s.capabilities(); m != allCapsMask() {
		t.Errorf("privileged: %x", m)
	}
	s = Spec{System: true}
	if m, _ := s.capabilities(); m&(1<<uint(capNames["SYS_BOOT"])) == 0 {
		t.Error("system container cannot halt")
	}
	if n, err := ParseCap("cap_net_raw"); err != nil || n != "NET_RAW" {
		t.Errorf("ParseCap: %q %v", n, err)
	}
}
