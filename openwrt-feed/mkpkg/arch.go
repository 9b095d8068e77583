package main

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
)

// target maps an OpenWrt package architecture to the `make cross` binary
// that runs there and the ELF header that binary must have.
//
// To support another OpenWrt architecture, add a line here naming the
// dist/otok-<cross> binary that runs on it (and, if no existing cross build
// fits, a matching entry to CROSS_TARGETS in the top-level Makefile), e.g.
// {"arm_cortex-a9_vfpv3-d16", "arm", elf.EM_ARM, binary.LittleEndian, elf.ELFCLASS32}
// for mvebu. The OpenWrt names are the ARCH_PACKAGES values of the targets.
type target struct {
	arch    string // OpenWrt package architecture (Architecture:, arch)
	cross   string // dist/otok-<cross> from `make cross`
	machine elf.Machine
	order   binary.ByteOrder
	class   elf.Class
}

var targets = []target{
	{"mipsel_24kc", "mipsle", elf.EM_MIPS, binary.LittleEndian, elf.ELFCLASS32},
	{"mips_24kc", "mips", elf.EM_MIPS, binary.BigEndian, elf.ELFCLASS32},
	{"arm_cortex-a7_neon-vfpv4", "arm", elf.EM_ARM, binary.LittleEndian, elf.ELFCLASS32},
	{"aarch64_cortex-a53", "arm64", elf.EM_AARCH64, binary.LittleEndian, elf.ELFCLASS64},
	{"x86_64", "amd64", elf.EM_X86_64, binary.LittleEndian, elf.ELFCLASS64},
}

func lookupTarget(arch string) (target, error) {
	for _, t := range targets {
		if t.arch == arch {
			return t, nil
		}
	}
	var known []string
	for _, t := range targets {
		known = append(known, t.arch)
	}
	sort.Strings(known)
	if arch == "" {
		return target{}, fmt.Errorf("no architecture given: ARCH= one of %s", strings.Join(known, " "))
	}
	return target{}, fmt.Errorf("architecture %q: unknown, known are %s (see openwrt-feed/mkpkg/arch.go to add one)", arch, strings.Join(known, " "))
}

// checkBinary makes sure path is a static ELF executable for t.
func checkBinary(path string, t target) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("binary %s: %w (run make cross)", path, err)
	}
	defer f.Close()
	if f.Machine != t.machine || f.ByteOrder != t.order || f.Class != t.class {
		return fmt.Errorf("binary %s: ELF %v %v %v, but %s needs %v %v %v",
			path, f.Machine, f.ByteOrder, f.Class, t.arch, t.machine, t.order, t.class)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("binary %s: ELF type %v is not an executable", path, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("binary %s: has an ELF interpreter, not a static binary", path)
		}
	}
	return nil
}
