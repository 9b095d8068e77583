package main

import "testing"

func TestFromDescribe(t *testing.T) {
	for _, c := range []struct {
		describe string
		commits  int
		want     string
	}{
		{"v1.2.3-0-g1a2b3c4", 0, "1.2.3-r1"},
		{"1.2.3-0-g1a2b3c4", 0, "1.2.3-r1"},
		{"v1.2.3-5-g1a2b3c4", 0, "1.2.3.5~1a2b3c4-r1"},
		{"v2.0-rc1-0-g1a2b3c4", 0, "2.0_rc1-r1"},
		{"v2.0-rc1-7-g1a2b3c4", 0, "2.0_rc1_git7~1a2b3c4-r1"},
		{"v1.0beta2-0-g1a2b3c4", 0, "1.0_beta2-r1"},
		{"1a2b3c4", 42, "0.0.0.42~1a2b3c4-r1"},
		{"1a2b3c4d5e6f", 7, "0.0.0.7~1a2b3c4d5e6f-r1"},
	} {
		got, err := fromDescribe(c.describe, c.commits, 1)
		if err != nil || got != c.want {
			t.Errorf("fromDescribe(%q, %d) = %q, %v; want %q", c.describe, c.commits, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "v1.0-3-g1a2b3c4-dirty", "release-3-g1a2b3c4", "v1.x-0-g1a2b3c4", "1a2b3c4", "XYZ"} {
		if v, err := fromDescribe(bad, 0, 1); err == nil {
			t.Errorf("fromDescribe(%q) = %q, want an error", bad, v)
		}
	}
}

func TestValidVersion(t *testing.T) {
	for _, v := range []string{"1", "1.2.3", "1.2.3a", "1.2.3-r0", "1.2_rc1", "1.2_git20240101", "1.2.3_p1_git5~deadbeef-r12", "2024.01.01~abcdef1-r1"} {
		if err := validVersion(v); err != nil {
			t.Errorf("validVersion(%q): %v", v, err)
		}
	}
	for _, v := range []string{"", "v1", "1.0 beta", "1.0-dirty", "1.0-1", "1:1.0", "1.0~ABCDEF", "1.0_foo", "1..2", "1.0-r", "1.0AB", "1.2.3_rc1.5", "1.0\n"} {
		if err := validVersion(v); err == nil {
			t.Errorf("validVersion(%q) accepted", v)
		}
	}
}
