// Package cross checks the cross-built binaries: each is a static ELF for
// its architecture, and `otok version` and `otok check` run under
// qemu-user. It uses $OTOK_DIST (from `make cross`), or builds the binaries
// itself into a temporary directory.
package cross

import (
	"debug/elf"
	"encoding/binary"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/otok/otok/test/testenv"
)

var targets = []struct {
	name, goarch, extra, qemu string
	machine                   elf.Machine
	order                     binary.ByteOrder
	class                     elf.Class
}{
	{"mipsle", "mipsle", "GOMIPS=softfloat", "qemu-mipsel-static", elf.EM_MIPS, binary.LittleEndian, elf.ELFCLASS32},
	{"mips", "mips", "GOMIPS=softfloat", "qemu-mips-static", elf.EM_MIPS, binary.BigEndian, elf.ELFCLASS32},
	{"arm", "arm", "GOARM=7", "qemu-arm-static", elf.EM_ARM, binary.LittleEndian, elf.ELFCLASS32},
	{"arm64", "arm64", "", "qemu-aarch64-static", elf.EM_AARCH64, binary.LittleEndian, elf.ELFCLASS64},
	{"amd64", "amd64", "", "", elf.EM_X86_64, binary.LittleEndian, elf.ELFCLASS64},
}

func TestMain(m *testing.M) { testenv.Main(m) }

func TestCrossBinaries(t *testing.T) {
	d := testenv.Dist(t) // $OTOK_DIST or built like make cross
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			bin := filepath.Join(d, "otok-"+tg.name)
			f, err := elf.Open(bin)
			if err != nil {
				t.Fatalf("%s: %v (run make cross)", bin, err)
			}
			defer f.Close()
			if f.Machine != tg.machine || f.ByteOrder != tg.order || f.Class != tg.class {
				t.Errorf("ELF %v %v %v, want %v %v %v", f.Machine, f.ByteOrder, f.Class, tg.machine, tg.order, tg.class)
			}
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Errorf("has an ELF interpreter: not static")
				}
			}
			if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
				t.Errorf("links shared libraries %v", libs)
			}
			if out, err := exec.Command("file", bin).Output(); err == nil && !strings.Contains(string(out), "statically linked") {
				t.Errorf("file(1) does not call it static: %s", out)
			}

			argv := func(args ...string) *exec.Cmd {
				if tg.qemu == "" {
					return exec.Command(bin, args...)
				}
				return exec.Command(tg.qemu, append([]string{bin}, args...)...)
			}
			if tg.qemu != "" {
				if _, err := exec.LookPath(tg.qemu); err != nil {
					t.Fatalf("%s not installed (make deps installs qemu-user-static)", tg.qemu)
				}
			}
			out, err := argv("version").CombinedOutput()
			if err != nil {
				t.Fatalf("version: %v\n%s", err, out)
			}
			want := "linux/" + tg.goarch
			if !strings.Contains(string(out), want) {
				t.Errorf("version output lacks %q:\n%s", want, out)
			}
			if tg.extra != "" && !strings.Contains(string(out), tg.extra) {
				t.Errorf("version output lacks %q:\n%s", tg.extra, out)
			}

			cmd := argv("--store", t.TempDir(), "check")
			out, err = cmd.CombinedOutput()
			code := testenv.ExitCode(t, err)
			if code != 0 && code != 1 {
				t.Fatalf("check exit %d:\n%s", code, out)
			}
			for _, s := range []string{"namespace", "squashfs", "seccomp", "result:"} {
				if !strings.Contains(string(out), s) {
					t.Errorf("check output lacks %q:\n%s", s, out)
				}
			}
			t.Logf("otok check under %s: exit %d", tg.qemu, code)
		})
	}
}
