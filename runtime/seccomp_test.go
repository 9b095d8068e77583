package runtime

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

func checkSysnums(t *testing.T, arch string, want map[string]uint32) {
	t.Helper()
	if runtime.GOARCH != arch {
		t.Fatalf("built for %s, table test for %s", runtime.GOARCH, arch)
	}
	got := sysnums[arch]
	if len(got) != len(want) {
		t.Errorf("%s: table has %d entries, x/sys %d", arch, len(got), len(want))
	}
	for n, nr := range want {
		if got[n] != nr {
			t.Errorf("%s: %s = %d, x/sys says %d", arch, n, got[n], nr)
		}
	}
}

// runFilter interprets a filter the way the kernel does for one call.
func runFilter(prog []unix.SockFilter, data []byte, order binary.ByteOrder) (uint32, error) {
	var a uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case bpfLdW:
			if int(in.K)+4 > len(data) {
				return 0, fmt.Errorf("load out of range at %d", pc)
			}
			a = order.Uint32(data[in.K : in.K+4])
		case bpfJeq, bpfJge, bpfJset:
			var ok bool
			switch in.Code {
			case bpfJeq:
				ok = a == in.K
			case bpfJge:
				ok = a >= in.K
			default:
				ok = a&in.K != 0
			}
			if ok {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case bpfRet:
			return in.K, nil
		default:
			return 0, fmt.Errorf("unknown opcode %#x at %d", in.Code, pc)
		}
	}
	return 0, fmt.Errorf("fell off the end")
}

// seccompData encodes struct seccomp_data as arch lays it out.
func seccompData(arch seccompArch, nr uint32, args ...uint64) ([]byte, binary.ByteOrder) {
	var order binary.ByteOrder = binary.LittleEndian
	if arch.bigEndian {
		order = binary.BigEndian
	}
	b := make([]byte, 64)
	order.PutUint32(b[0:], nr)
	order.PutUint32(b[4:], arch.audit)
	for i, a := range args {
		order.PutUint64(b[16+8*i:], a)
	}
	return b, order
}

func TestSeccompFilterEveryArch(t *testing.T) {
	for goarch, arch := range seccompArches {
		t.Run(goarch, func(t *testing.T) {
			nums := sysnums[goarch]
			prog, err := SeccompFilter(goarch, false, false)
			if err != nil {
				t.Fatal(err)
			}
			admin, err := SeccompFilter(goarch, true, false)
			if err != nil {
				t.Fatal(err)
			}
			cases := []struct {
				name        string
				args        []uint64
				want, admin uint32
			}{
				{"mount", nil, retEPERM, retAllow},
				{"umount2", nil, retEPERM, retAllow},
				{"reboot", nil, retEPERM, retEPERM},
				{"init_module", nil, retEPERM, retEPERM},
				{"finit_module", nil, retEPERM, retEPERM},
				{"kexec_load", nil, retEPERM, retEPERM},
				{"swapon", nil, retEPERM, retEPERM},
				{"keyctl", nil, retEPERM, retEPERM},
				{"bpf", nil, retEPERM, retEPERM},
				{"perf_event_open", nil, retEPERM, retEPERM},
				{"open_by_handle_at", nil, retEPERM, retEPERM},
				{"unshare", nil, retEPERM, retAllow},
				{"setns", nil, retEPERM, retAllow},
				{"clone3", nil, retENOSYS, retENOSYS},
				{"clone", []uint64{uint64(unix.SIGCHLD)}, retAllow, retAllow},
				{"clone", []uint64{unix.CLONE_NEWUSER | uint64(unix.SIGCHLD)}, retEPERM, retAllow},
				{"clone", []uint64{unix.CLONE_NEWNET | 0xffffffff00000000}, retEPERM, retAllow},
				{"clone", []uint64{0xffffffff00000000 | unix.CLONE_VM}, retAllow, retAllow},
				{"getpid", nil, retAllow, retAllow},
				{"read", nil, retAllow, retAllow},
				{"execve", nil, retAllow, retAllow},
			}
			extra := map[string]uint32{"getpid": 0, "read": 0, "execve": 0}
			for _, c := range cases {
				nr, ok := nums[c.name]
				if _, isExtra := extra[c.name]; isExtra {
					nr, ok = otherSysnums[goarch][c.name]
				}
				if !ok {
					if c.name == "clone3" || c.name == "kexec_load" {
						t.Fatalf("%s: %s missing from table", goarch, c.name)
					}
					continue
				}
				data, order := seccompData(arch, nr, c.args...)
				for _, p := range []struct {
					prog []unix.SockFilter
					want uint32
					tag  string
				}{{prog, c.want, "default"}, {admin, c.admin, "sys_admin"}} {
					got, err := runFilter(p.prog, data, order)
					if err != nil {
						t.Fatalf("%s %s: %v", c.name, p.tag, err)
					}
					if got != p.want {
						t.Errorf("%s(%#x) %s: action %#x, want %#x", c.name, c.args, p.tag, got, p.want)
					}
				}
			}
			// A foreign architecture on the same kernel is refused.
			foreign := arch
			foreign.audit ^= 0x1234
			data, order := seccompData(foreign, otherSysnums[goarch]["getpid"])
			if got, _ := runFilter(prog, data, order); got != retEPERM {
				t.Errorf("foreign arch: action %#x, want EPERM", got)
			}
			if arch.x32 {
				data, order := seccompData(arch, 0x40000000|otherSysnums[goarch]["getpid"])
				if got, _ := runFilter(prog, data, order); got != retEPERM {
					t.Errorf("x32: action %#x, want EPERM", got)
				}
			}
		})
	}
}

// otherSysnums are a few allowed calls per arch, for the allow path.
var otherSysnums = map[string]map[string]uint32{
	"amd64":  {"read": 0, "getpid": 39, "execve": 59},
	"arm64":  {"read": 63, "getpid": 172, "execve": 221},
	"arm":    {"read": 3, "getpid": 20, "execve": 11},
	"mips":   {"read": 4003, "getpid": 4020, "execve": 4011},
	"mipsle": {"read": 4003, "getpid": 4020, "execve": 4011},
}

func TestSeccompAllowReboot(t *testing.T) {
	for goarch, arch := range seccompArches {
		prog, err := SeccompFilter(goarch, false, true)
		if err != nil {
			t.Fatal(err)
		}
		data, order := seccompData(arch, sysnums[goarch]["reboot"])
		if got, _ := runFilter(prog, data, order); got != retAllow {
			t.Errorf("%s: reboot with allowReboot: %#x", goarch, got)
		}
		data, order = seccompData(arch, sysnums[goarch]["kexec_load"])
		if got, _ := runFilter(prog, data, order); got != retEPERM {
			t.Errorf("%s: kexec_load with allowReboot: %#x", goarch, got)
		}
	}
}

func TestSeccompMIPSNumbering(t *testing.T) {
	// MIPS o32 numbers start at 4000; arm's do not.
	if sysnums["mips"]["reboot"] != 4088 || sysnums["arm"]["reboot"] != 88 {
		t.Fatalf("reboot: mips %d arm %d", sysnums["mips"]["reboot"], sysnums["arm"]["reboot"])
	}
}
