package testenv

import "testing"

func TestKernelRuns(t *testing.T) {
	for _, c := range []struct {
		machine, goarch string
		native, known   bool
	}{
		{"x86_64", "amd64", true, true},
		{"x86_64", "386", true, true},
		{"x86_64", "mips", false, true}, // qemu-mips-static on a PC
		{"x86_64", "arm", false, true},
		{"aarch64", "arm", true, true},
		{"armv7l", "arm", true, true},
		{"armv7l", "arm64", false, true},
		{"mips", "mipsle", true, true}, // a mipsel guest says mips
		{"mips", "mips", true, true},
		{"sparc64", "mips", false, false},
	} {
		native, known := kernelRuns(c.machine, c.goarch)
		if native != c.native || known != c.known {
			t.Errorf("kernelRuns(%q, %q) = %v, %v; want %v, %v", c.machine, c.goarch, native, known, c.native, c.known)
		}
	}
}

func TestUnderQemuUserNative(t *testing.T) {
	t.Setenv("OTOK_QEMU_GUEST", "1")
	if UnderQemuUser() {
		t.Error("UnderQemuUser in a qemu-system guest")
	}
}
