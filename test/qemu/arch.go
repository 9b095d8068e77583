package qemu

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
)

// Arch is one emulated router type.
type Arch struct {
	Name    string   // mipsel, mips, armhf, arm64 (result lines use it)
	GOARCH  string   // mipsle, mips, arm, arm64
	GOENV   []string // extra build env (GOMIPS, GOARM)
	Dist    string   // suffix of the make cross binary: dist/otok-<Dist>
	QEMU    string   // qemu-system binary
	Machine []string // -M/-cpu arguments
	Console string   // kernel console device
	NIC     string   // -nic model
	// Modules are loaded in the guest (with their dependencies) when the
	// kernel has them as modules; built-in ones are skipped.
	Modules []string
	// Busybox is false where Debian has no busybox-static (mips): the guest
	// then has only the Go /init and the Go toybox.
	Busybox bool
}

// commonModules are what otok needs from a Debian kernel.
var commonModules = []string{
	"loop", "squashfs", "overlay", "veth", "macvlan", "ipvlan", "bridge",
	"8021q", "dummy", "nf_tables", "nft_chain_nat", "nft_nat", "nft_masq", "nft_ct",
	"nft_redir", "nft_fib_ipv4", "nft_reject_ipv4", "nft_limit", "nf_nat", "nf_conntrack", "tun",
}

// Arches is the table of supported guests, in result order.
var Arches = []*Arch{
	{Name: "mipsel", GOARCH: "mipsle", GOENV: []string{"GOMIPS=softfloat"}, Dist: "mipsle",
		QEMU: "qemu-system-mipsel", Machine: []string{"-M", "malta"}, Console: "ttyS0", NIC: "pcnet",
		Modules: append([]string{"pcnet32"}, commonModules...), Busybox: true},
	{Name: "mips", GOARCH: "mips", GOENV: []string{"GOMIPS=softfloat"}, Dist: "mips",
		QEMU: "qemu-system-mips", Machine: []string{"-M", "malta"}, Console: "ttyS0", NIC: "pcnet"},
	{Name: "armhf", GOARCH: "arm", GOENV: []string{"GOARM=7"}, Dist: "arm",
		QEMU: "qemu-system-arm", Machine: []string{"-M", "virt", "-cpu", "cortex-a15"}, Console: "ttyAMA0", NIC: "virtio-net-pci",
		Modules: append([]string{"virtio_pci", "virtio_net"}, commonModules...), Busybox: true},
	{Name: "arm64", GOARCH: "arm64", Dist: "arm64",
		QEMU: "qemu-system-aarch64", Machine: []string{"-M", "virt", "-cpu", "cortex-a53"}, Console: "ttyAMA0", NIC: "virtio-net-pci",
		Modules: append([]string{"virtio_pci", "virtio_net"}, commonModules...), Busybox: true},
}

// Lookup finds an arch by its name, its GOARCH or its dist suffix.
func Lookup(name string) (*Arch, error) {
	for _, a := range Arches {
		if name == a.Name || name == a.GOARCH || name == a.Dist {
			return a, nil
		}
	}
	return nil, fmt.Errorf("arch %q: unknown (want mipsel, mips, armhf or arm64)", name)
}

// ParseArches parses a space- or comma-separated list ("" means all).
func ParseArches(list string) ([]*Arch, error) {
	f := strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' })
	if len(f) == 0 {
		return Arches, nil
	}
	var out []*Arch
	for _, n := range f {
		a, err := Lookup(n)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// Env is the build environment for a Go program for this arch.
func (a *Arch) Env() []string {
	return append([]string{"GOOS=linux", "GOARCH=" + a.GOARCH, "CGO_ENABLED=0"}, a.GOENV...)
}

// ArchOfELF reads an executable's ELF header and names the guest that runs
// it. Endianness tells mips from mipsel; EM_ARM is armhf (GOARM=7).
func ArchOfELF(path string) (*Arch, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	e, err := elf.NewFile(f)
	if err != nil {
		return nil, fmt.Errorf("%s: not an ELF executable: %w", path, err)
	}
	switch {
	case e.Machine == elf.EM_MIPS && e.Class == elf.ELFCLASS32 && e.ByteOrder == binary.LittleEndian:
		return Lookup("mipsel")
	case e.Machine == elf.EM_MIPS && e.Class == elf.ELFCLASS32 && e.ByteOrder == binary.BigEndian:
		return Lookup("mips")
	case e.Machine == elf.EM_ARM:
		return Lookup("armhf")
	case e.Machine == elf.EM_AARCH64:
		return Lookup("arm64")
	}
	return nil, fmt.Errorf("%s: no guest for ELF machine %v (%v, %v)", path, e.Machine, e.Class, e.ByteOrder)
}
