package netcfg

import (
	"strings"
	"testing"
)

func TestStableMAC(t *testing.T) {
	a := StableMAC("id1", "web")
	if a.String() != StableMAC("id1", "web").String() {
		t.Fatal("not stable")
	}
	if a.String() == StableMAC("id1", "web2").String() || a.String() == StableMAC("id2", "web").String() {
		t.Fatal("does not depend on both inputs")
	}
	for _, n := range []string{"a", "b", "c", "dns", "web", "x1", "x2", "x3"} {
		m := StableMAC("dev", n)
		if m[0]&1 != 0 || m[0]&2 == 0 || len(m) != 6 {
			t.Errorf("%s: %s is not unicast locally administered", n, m)
		}
	}
	// Golden: changing the derivation changes every container's lease.
	if got := StableMAC("0123456789abcdef", "dns").String(); got != goldenMAC {
		t.Errorf("StableMAC golden = %s, want %s", got, goldenMAC)
	}
}

const goldenMAC = "02:b2:f7:7a:00:24"

func TestParseMAC(t *testing.T) {
	good := map[string]string{
		"02:42:AC:11:00:02": "02:42:ac:11:00:02",
		"02-42-ac-11-00-03": "02:42:ac:11:00:03",
		"00:11:22:33:44:55": "00:11:22:33:44:55",
	}
	for in, want := range good {
		if got, err := ParseMAC(in); err != nil || got != want {
			t.Errorf("ParseMAC(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]string{
		"01:00:5e:00:00:01":       "multicast",
		"00:00:00:00:00:00":       "all zeros",
		"02:42:ac:11:00":          "6-byte",
		"zz:42:ac:11:00:02":       "6-byte",
		"02:42:ac:11:00:02:03:04": "6-byte",
		"":                        "6-byte",
	}
	for in, want := range bad {
		if _, err := ParseMAC(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseMAC(%q) error = %v, want %q", in, err, want)
		}
	}
}

func TestDeviceID(t *testing.T) {
	if DeviceID() == "" {
		t.Fatal("empty device id")
	}
}
