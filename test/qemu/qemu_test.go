package qemu

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestParseMarker(t *testing.T) {
	for _, c := range []struct {
		line, kind, args string
		ok               bool
	}{
		{"@@OTOK-QEMU init 1234", "init", "1234", true},
		{"@@OTOK-QEMU exit 0\r", "exit", "0", true},
		// kernel messages can share the line
		{"[    3.1] random: crng init done@@OTOK-QEMU step check ok 26 features", "step", "check ok 26 features", true},
		{"@@OTOK-QEMU ", "", "", false},
		{"plain console output", "", "", false},
	} {
		m, ok := ParseMarker(c.line)
		if ok != c.ok || m.Kind != c.kind || m.Args != c.args {
			t.Errorf("ParseMarker(%q) = %+v, %v; want %s %q %v", c.line, m, ok, c.kind, c.args, c.ok)
		}
	}
}

func TestParseArches(t *testing.T) {
	as, err := ParseArches("")
	if err != nil || len(as) != 4 {
		t.Fatalf("default arches: %v %v", as, err)
	}
	as, err = ParseArches("arm64, mipsle arm")
	if err != nil || len(as) != 3 || as[0].Name != "arm64" || as[1].Name != "mipsel" || as[2].Name != "armhf" {
		t.Fatalf("ParseArches: %v %v", names(as), err)
	}
	if _, err := ParseArches("sparc"); err == nil {
		t.Fatal("unknown arch accepted")
	}
}

func names(as []*Arch) []string {
	var n []string
	for _, a := range as {
		n = append(n, a.Name)
	}
	return n
}

// TestArchOfELF cross-compiles a tiny program for each guest and checks the
// ELF header picks the right guest (endianness tells mips from mipsel).
func TestArchOfELF(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 4 binaries")
	}
	if runtime.GOOS != "linux" {
		t.Skip("linux only")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, a := range Arches {
		out := filepath.Join(dir, a.Name)
		cmd := exec.Command("go", "build", "-o", out, src)
		cmd.Env = append(os.Environ(), a.Env()...)
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v %s", a.Name, err, b)
		}
		got, err := ArchOfELF(out)
		if err != nil || got != a {
			t.Errorf("%s: ArchOfELF = %v, %v", a.Name, got, err)
		}
	}
	if _, err := ArchOfELF(src); err == nil {
		t.Error("a Go source file was taken for an executable")
	}
}

// TestArchive writes a cpio and reads it back with cpio(1) when present,
// else checks the newc framing by hand.
func TestArchive(t *testing.T) {
	var ar Archive
	ar.File("/etc/x/y", 0o644, []byte("hello"))
	ar.Symlink("/bin/sh", "busybox")
	ar.CharDev("/dev/console", 0o600, 5, 1)
	ar.Dir("/tmp", 0o1777)
	if !ar.Has("/etc/x") || !ar.Has("etc/x/y") {
		t.Fatal("parents not added")
	}
	var buf bytes.Buffer
	if err := ar.WriteGzip(&buf); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	if len(raw)%4 != 0 {
		t.Errorf("archive length %d not 4-aligned", len(raw))
	}
	s := string(raw)
	for _, want := range []string{"070701", "etc/x/y\x00", "hello", "TRAILER!!!\x00", "busybox"} {
		if !strings.Contains(s, want) {
			t.Errorf("archive lacks %q", want)
		}
	}
	// parents before children
	if strings.Index(s, "etc\x00") > strings.Index(s, "etc/x/y\x00") {
		t.Error("child before parent")
	}
	if _, err := exec.LookPath("cpio"); err != nil {
		return
	}
	cmd := exec.Command("cpio", "-t")
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -t: %v", err)
	}
	got := strings.Fields(string(out))
	want := []string{"bin", "bin/sh", "dev", "dev/console", "etc", "etc/x", "etc/x/y", "tmp"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("cpio -t = %v, want %v", got, want)
	}
}

func TestAddTools(t *testing.T) {
	root := t.TempDir()
	// A fake sysroot: a script tool and a symlinked one.
	for p, c := range map[string]string{"bin/ip": "#!/bin/sh\n", "usr/bin/mksquashfs": "#!/bin/sh\n"} {
		_ = os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		_ = os.WriteFile(filepath.Join(root, p), []byte(c), 0o755)
	}
	_ = os.MkdirAll(filepath.Join(root, "sbin"), 0o755)
	_ = os.Symlink("/bin/ip", filepath.Join(root, "sbin/tc"))
	var ar Archive
	n, err := addTools(&ar, root)
	if err != nil || n != 3 || !ar.Has("/bin/ip") || !ar.Has("/sbin/tc") || !ar.Has("/usr/bin/mksquashfs") {
		t.Fatalf("addTools = %d, %v", n, err)
	}
}
