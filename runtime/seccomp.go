package runtime

import (
	"fmt"
	"runtime"
	"sort"

	"golang.org/x/sys/unix"
)

// The default seccomp filter is a deny list (like Docker's, but written
// out per architecture from golang.org/x/sys/unix numbers, see
// seccomp_tables.go): everything is allowed except the calls below, which
// fail with EPERM. clone3 fails with ENOSYS so libcs fall back to clone,
// whose flags the filter can inspect. Syscalls of a foreign ABI on the
// same kernel (i386/x32 on amd64, arm on arm64) fail with EPERM.

// seccompDenied are refused unless the container has CAP_SYS_ADMIN
// (--privileged turns the filter off entirely).
var seccompDeniedAdmin = []string{
	"mount", "umount", "umount2", "pivot_root", "open_tree", "move_mount",
	"fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
	"unshare", "setns", "quotactl", "quotactl_fd", "fanotify_init",
	"name_to_handle_at", "lookup_dcookie",
}

// seccompDeniedAlways are refused to every non-privileged container.
var seccompDeniedAlways = []string{
	"init_module", "finit_module", "delete_module", "create_module",
	"get_kernel_syms", "query_module", "kexec_load", "kexec_file_load",
	"reboot", "swapon", "swapoff", "acct", "keyctl", "add_key",
	"request_key", "bpf", "perf_event_open", "open_by_handle_at",
	"userfaultfd", "nfsservctl", "uselib", "_sysctl", "iopl", "ioperm",
	"vm86", "vm86old", "kcmp", "process_vm_readv", "process_vm_writev",
	"syslog", "pidfd_getfd",
}

// nsCloneFlags are the clone flags that create namespaces.
const nsCloneFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP

// seccompArch describes one architecture for filter generation.
type seccompArch struct {
	audit     uint32 // AUDIT_ARCH_* value in seccomp_data.arch
	bigEndian bool   // where the low 32 bits of an argument sit
	x32       bool   // amd64: refuse the x32 ABI (nr | 0x40000000)
}

var seccompArches = map[string]seccompArch{
	"amd64":  {audit: unix.AUDIT_ARCH_X86_64, x32: true},
	"arm64":  {audit: unix.AUDIT_ARCH_AARCH64},
	"arm":    {audit: unix.AUDIT_ARCH_ARM},
	"mips":   {audit: unix.AUDIT_ARCH_MIPS, bigEndian: true},
	"mipsle": {audit: unix.AUDIT_ARCH_MIPSEL},
}

// seccomp_data offsets.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// BPF opcodes.
const (
	bpfLdW  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfJeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfJge  = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	bpfJset = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	bpfRet  = unix.BPF_RET | unix.BPF_K
)

const (
	retAllow  = unix.SECCOMP_RET_ALLOW
	retEPERM  = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	retENOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
)

// SeccompFilter builds the default filter for goarch. allowAdmin leaves the
// mount and namespace families allowed (the container has CAP_SYS_ADMIN);
// allowReboot lets a system container's init halt itself (in a child pid
// namespace reboot() only ends that namespace).
func SeccompFilter(goarch string, allowAdmin, allowReboot bool) ([]unix.SockFilter, error) {
	arch, ok := seccompArches[goarch]
	nums, ok2 := sysnums[goarch]
	if !ok || !ok2 {
		return nil, fmt.Errorf("seccomp: no syscall table for %s", goarch)
	}
	deny := map[uint32]bool{}
	add := func(names []string) {
		for _, n := range names {
			if nr, ok := nums[n]; ok {
				deny[nr] = true
			}
		}
	}
	add(seccompDeniedAlways)
	if !allowAdmin {
		add(seccompDeniedAdmin)
	}
	if allowReboot {
		delete(deny, nums["reboot"])
	}
	denied := make([]uint32, 0, len(deny))
	for nr := range deny {
		denied = append(denied, nr)
	}
	sort.Slice(denied, func(i, j int) bool { return denied[i] < denied[j] })

	// Tail, addressed by distance from the end:
	//   ret ALLOW; ret EPERM; ret ENOSYS
	type jump struct{ to int } // index of a tail instruction
	var prog []unix.SockFilter
	// Fixups: instruction index -> (true target, false target) as tail ids
	// (-1 = next instruction).
	type fix struct{ at, jt, jf int }
	var fixes []fix
	const (
		tAllow = iota
		tEPERM
		tENOSYS
		tCloneArgs // the clone flags check, placed before the tail
	)
	emit := func(code uint16, k uint32) int {
		prog = append(prog, unix.SockFilter{Code: code, K: k})
		return len(prog) - 1
	}
	jumpTo := func(code uint16, k uint32, jt, jf int) {
		i := emit(code, k)
		fixes = append(fixes, fix{i, jt, jf})
	}
	emit(bpfLdW, offArch)
	jumpTo(bpfJeq, arch.audit, -1, tEPERM)
	emit(bpfLdW, offNr)
	if arch.x32 {
		jumpTo(bpfJge, 0x40000000, tEPERM, -1)
	}
	if nr, ok := nums["clone3"]; ok {
		jumpTo(bpfJeq, nr, tENOSYS, -1)
	}
	if nr, ok := nums["clone"]; ok && !allowAdmin {
		jumpTo(bpfJeq, nr, tCloneArgs, -1)
	}
	for _, nr := range denied {
		jumpTo(bpfJeq, nr, tEPERM, -1)
	}
	// ret ALLOW falls here for everything not matched.
	target := map[int]int{}
	target[tAllow] = emit(bpfRet, retAllow)
	if !allowAdmin {
		off := uint32(offArgs)
		if arch.bigEndian {
			off += 4
		}
		target[tCloneArgs] = emit(bpfLdW, off)
		jumpTo(bpfJset, nsCloneFlags, tEPERM, -1)
		emit(bpfRet, retAllow)
	}
	target[tEPERM] = emit(bpfRet, retEPERM)
	target[tENOSYS] = emit(bpfRet, retENOSYS)
	for _, f := range fixes {
		for _, p := range []struct {
			id  int
			dst *uint8
		}{{f.jt, &prog[f.at].Jt}, {f.jf, &prog[f.at].Jf}} {
			if p.id == -1 {
				*p.dst = 0
				continue
			}
			d := target[p.id] - f.at - 1
			if d < 0 || d > 255 {
				return nil, fmt.Errorf("seccomp: jump out of range (%d)", d)
			}
			*p.dst = uint8(d)
		}
	}
	if len(prog) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp: filter too long (%d)", len(prog))
	}
	return prog, nil
}

// installSeccomp loads the default filter for the running architecture on
// every thread. no_new_privs must already be set.
func installSeccomp(allowAdmin, allowReboot bool) error {
	prog, err := SeccompFilter(runtime.GOARCH, allowAdmin, allowReboot)
	if err != nil {
		return err
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	_, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(ptr(&fprog)))
	if e != 0 {
		return fmt.Errorf("seccomp: install filter: %w", e)
	}
	return nil
}
