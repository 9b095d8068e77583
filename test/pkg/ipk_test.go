package pkg

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var elfWant = map[string]struct {
	machine elf.Machine
	order   binary.ByteOrder
	class   elf.Class
}{
	"mipsel_24kc":              {elf.EM_MIPS, binary.LittleEndian, elf.ELFCLASS32},
	"mips_24kc":                {elf.EM_MIPS, binary.BigEndian, elf.ELFCLASS32},
	"arm_cortex-a7_neon-vfpv4": {elf.EM_ARM, binary.LittleEndian, elf.ELFCLASS32},
	"aarch64_cortex-a53":       {elf.EM_AARCH64, binary.LittleEndian, elf.ELFCLASS64},
	"x86_64":                   {elf.EM_X86_64, binary.LittleEndian, elf.ELFCLASS64},
}

// dataLayout is the installed tree of the ipk: path → mode (dirs end in /).
var dataLayout = []struct {
	name string
	mode int64
}{
	{"./", 0o755},
	{"./etc/", 0o755},
	{"./etc/config/", 0o755},
	{"./etc/config/otok", 0o600},
	{"./etc/init.d/", 0o755},
	{"./etc/init.d/otok", 0o755},
	{"./etc/otok/", 0o755},
	{"./etc/otok/keys/", 0o755},
	{"./etc/uci-defaults/", 0o755},
	{"./etc/uci-defaults/90-otok", 0o755},
	{"./lib/", 0o755},
	{"./lib/upgrade/", 0o755},
	{"./lib/upgrade/keep.d/", 0o755},
	{"./lib/upgrade/keep.d/otok", 0o644},
	{"./usr/", 0o755},
	{"./usr/bin/", 0o755},
	{"./usr/bin/otok", 0o755},
}

const version = "1.2.3.4~abcdef1-r2"

func TestIPK(t *testing.T) {
	setup(t)
	for _, a := range arches {
		t.Run(a.arch, func(t *testing.T) {
			path := buildPkg(t, "ipk", a.arch, a.cross, version)
			if want := "otok_" + version + "_" + a.arch + ".ipk"; filepath.Base(path) != want {
				t.Fatalf("package file %s, want %s", filepath.Base(path), want)
			}
			checkIPK(t, path, a.arch, filepath.Join(distDir, "otok-"+a.cross))
		})
	}
}

func checkIPK(t *testing.T, path, arch, bin string) {
	pkg := mustRead(t, path)
	when := time.Unix(mustAtoi(t, epoch), 0)

	// Outer archive: exactly OpenWrt's three members, in ipkg-build's order.
	outer := readTarGz(t, pkg)
	var names []string
	members := map[string][]byte{}
	for _, m := range outer {
		names = append(names, m.hdr.Name)
		members[m.hdr.Name] = m.data
		checkOwnerTime(t, m.hdr.Name, m.hdr.Uid, m.hdr.Gid, m.hdr.ModTime, when)
	}
	if got := strings.Join(names, " "); got != "./debian-binary ./data.tar.gz ./control.tar.gz" {
		t.Fatalf("outer members %q", got)
	}
	if string(members["./debian-binary"]) != "2.0\n" {
		t.Errorf("debian-binary %q", members["./debian-binary"])
	}

	// The same with the standard tools: tar -xzf, then each member.
	dir := t.TempDir()
	run(t, dir, "tar", "-xzf", path)
	for _, n := range []string{"debian-binary", "data.tar.gz", "control.tar.gz"} {
		if b := mustRead(t, filepath.Join(dir, n)); !bytes.Equal(b, members["./"+n]) {
			t.Errorf("tar -x %s differs from the archive member", n)
		}
	}
	root := filepath.Join(dir, "root")
	ctl := filepath.Join(dir, "control")
	for _, d := range []string{root, ctl} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run(t, root, "tar", "--same-permissions", "-xzf", filepath.Join(dir, "data.tar.gz"))
	run(t, ctl, "tar", "--same-permissions", "-xzf", filepath.Join(dir, "control.tar.gz"))
	listing := run(t, dir, "tar", "-tzvf", filepath.Join(dir, "data.tar.gz"))
	for _, l := range strings.Split(strings.TrimSpace(listing), "\n") {
		if f := strings.Fields(l); len(f) < 2 || f[1] != "0/0" {
			t.Errorf("tar -tv: owner not 0/0: %s", l)
		}
	}

	// data.tar.gz: layout, modes, owners, mtimes.
	dataRaw := gunzip(t, members["./data.tar.gz"])
	data := readTar(t, dataRaw)
	if len(data) != len(dataLayout) {
		var got []string
		for _, m := range data {
			got = append(got, m.hdr.Name)
		}
		t.Fatalf("data.tar.gz has %d entries, want %d: %v", len(data), len(dataLayout), got)
	}
	for i, m := range data {
		want := dataLayout[i]
		if m.hdr.Name != want.name || m.hdr.Mode&0o7777 != want.mode {
			t.Errorf("data entry %d: %s %o, want %s %o", i, m.hdr.Name, m.hdr.Mode, want.name, want.mode)
		}
		checkOwnerTime(t, m.hdr.Name, m.hdr.Uid, m.hdr.Gid, m.hdr.ModTime, when)
		if fi, err := os.Lstat(filepath.Join(root, want.name)); err != nil {
			t.Errorf("extracted %s: %v", want.name, err)
		} else if int64(fi.Mode().Perm()) != want.mode {
			t.Errorf("extracted %s: mode %o, want %o", want.name, fi.Mode().Perm(), want.mode)
		}
	}
	for name, src := range map[string]string{
		"usr/bin/otok":             bin,
		"etc/init.d/otok":          filepath.Join(filesDir, "otok.init"),
		"etc/config/otok":          filepath.Join(filesDir, "otok.config"),
		"etc/uci-defaults/90-otok": filepath.Join(filesDir, "otok.uci-defaults"),
	} {
		if !bytes.Equal(mustRead(t, filepath.Join(root, name)), mustRead(t, src)) {
			t.Errorf("%s is not %s", name, src)
		}
	}
	if got := string(mustRead(t, filepath.Join(root, "lib/upgrade/keep.d/otok"))); got != "/etc/otok/keys/\n" {
		t.Errorf("keep.d/otok %q", got)
	}
	checkELF(t, filepath.Join(root, "usr/bin/otok"), arch)

	// data.tar is what OpenWrt's ipkg-build gets from GNU tar for this tree
	// (its Installed-Size is then the same too).
	if v := run(t, dir, "tar", "--version"); strings.Contains(v, "GNU tar") {
		cmd := exec.Command("tar", "--format=gnu", "--numeric-owner", "--owner=0", "--group=0",
			"--sort=name", "-cpf", "-", "--mtime=@"+epoch, ".")
		cmd.Dir = root
		gnu, err := cmd.Output()
		if err != nil {
			t.Fatalf("GNU tar: %v", err)
		}
		if !bytes.Equal(gnu, dataRaw) {
			t.Errorf("data.tar (%d bytes) differs from GNU tar's (%d bytes) for the same tree", len(dataRaw), len(gnu))
		}
	}

	// control.tar.gz
	var ctlNames []string
	for _, m := range readTarGz(t, members["./control.tar.gz"]) {
		ctlNames = append(ctlNames, m.hdr.Name)
		checkOwnerTime(t, m.hdr.Name, m.hdr.Uid, m.hdr.Gid, m.hdr.ModTime, when)
	}
	if got := strings.Join(ctlNames, " "); got != "./ ./conffiles ./control ./postinst ./prerm" {
		t.Errorf("control members %q", got)
	}
	for n, mode := range map[string]os.FileMode{"control": 0o644, "conffiles": 0o644, "postinst": 0o755, "prerm": 0o755} {
		if fi, err := os.Stat(filepath.Join(ctl, n)); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("control/%s: %v %v, want mode %o", n, fi.Mode(), err, mode)
		}
	}
	if got := string(mustRead(t, filepath.Join(ctl, "conffiles"))); got != "/etc/config/otok\n" {
		t.Errorf("conffiles %q", got)
	}
	fields := parseControl(t, string(mustRead(t, filepath.Join(ctl, "control"))))
	want := map[string]string{
		"Package":         "otok",
		"Version":         version,
		"Depends":         "libc, kmod-veth, kmod-macvlan, kmod-ipvlan, kmod-loop",
		"Source":          "openwrt-feed/otok",
		"SourceName":      "otok",
		"License":         "LicenseRef-otok",
		"Section":         "utils",
		"SourceDateEpoch": epoch,
		"URL":             "https://github.com/otok/otok",
		"Maintainer":      "otok developers <otok@users.noreply.github.com>",
		"Architecture":    arch,
		"Installed-Size":  strconv.Itoa(len(dataRaw)),
	}
	for k, v := range want {
		if fields[k] != v {
			t.Errorf("control %s: %q, want %q", k, fields[k], v)
		}
	}
	// As package-pack.mk writes it: "Description:  first line" (two
	// spaces), continuation lines indented by one space.
	if !strings.HasPrefix(fields["Description"], " Containers on OpenWrt routers.") || !strings.Contains(fields["Description"], "\n ") {
		t.Errorf("control Description %q: want a summary line and indented continuation lines", fields["Description"])
	}
	if len(fields) != len(want)+1 {
		t.Errorf("control has fields %v", fields)
	}
	post := string(mustRead(t, filepath.Join(ctl, "postinst")))
	prerm := string(mustRead(t, filepath.Join(ctl, "prerm")))
	if !strings.HasPrefix(post, "#!/bin/sh\n") || !strings.Contains(post, "default_postinst $0 $@") {
		t.Errorf("postinst:\n%s", post)
	}
	if !strings.HasPrefix(prerm, "#!/bin/sh\n") || !strings.Contains(prerm, "default_prerm $0 $@") {
		t.Errorf("prerm:\n%s", prerm)
	}
}

func checkOwnerTime(t *testing.T, name string, uid, gid int, mtime, want time.Time) {
	t.Helper()
	if uid != 0 || gid != 0 {
		t.Errorf("%s: owner %d:%d, want 0:0", name, uid, gid)
	}
	if !mtime.Equal(want) {
		t.Errorf("%s: mtime %v, want %v", name, mtime, want)
	}
}

func checkELF(t *testing.T, path, arch string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("packaged binary: %v", err)
	}
	defer f.Close()
	w := elfWant[arch]
	if f.Machine != w.machine || f.ByteOrder != w.order || f.Class != w.class {
		t.Errorf("packaged binary: ELF %v %v %v, want %v %v %v", f.Machine, f.ByteOrder, f.Class, w.machine, w.order, w.class)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("packaged binary has an ELF interpreter: not static")
		}
	}
}

// parseControl reads a Debian-style control file (continuation lines
// start with a space and are kept, with their newline, in the value).
func parseControl(t *testing.T, s string) map[string]string {
	t.Helper()
	m := map[string]string{}
	last := ""
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if strings.HasPrefix(l, " ") && last != "" {
			m[last] += "\n" + l
			continue
		}
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			t.Fatalf("control line %q", l)
		}
		if _, dup := m[k]; dup {
			t.Errorf("control field %s twice", k)
		}
		m[k], last = v, k
	}
	return m
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func mustAtoi(t *testing.T, s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
