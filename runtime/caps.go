package runtime

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// capNames maps capability names (without CAP_) to numbers.
var capNames = map[string]int{
	"CHOWN": unix.CAP_CHOWN, "DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE,
	"DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH, "FOWNER": unix.CAP_FOWNER,
	"FSETID": unix.CAP_FSETID, "KILL": unix.CAP_KILL, "SETGID": unix.CAP_SETGID,
	"SETUID": unix.CAP_SETUID, "SETPCAP": unix.CAP_SETPCAP,
	"LINUX_IMMUTABLE": unix.CAP_LINUX_IMMUTABLE, "NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE,
	"NET_BROADCAST": unix.CAP_NET_BROADCAST, "NET_ADMIN": unix.CAP_NET_ADMIN,
	"NET_RAW": unix.CAP_NET_RAW, "IPC_LOCK": unix.CAP_IPC_LOCK, "IPC_OWNER": unix.CAP_IPC_OWNER,
	"SYS_MODULE": unix.CAP_SYS_MODULE, "SYS_RAWIO": unix.CAP_SYS_RAWIO,
	"SYS_CHROOT": unix.CAP_SYS_CHROOT, "SYS_PTRACE": unix.CAP_SYS_PTRACE,
	"SYS_PACCT": unix.CAP_SYS_PACCT, "SYS_ADMIN": unix.CAP_SYS_ADMIN,
	"SYS_BOOT": unix.CAP_SYS_BOOT, "SYS_NICE": unix.CAP_SYS_NICE,
	"SYS_RESOURCE": unix.CAP_SYS_RESOURCE, "SYS_TIME": unix.CAP_SYS_TIME,
	"SYS_TTY_CONFIG": unix.CAP_SYS_TTY_CONFIG, "MKNOD": unix.CAP_MKNOD,
	"LEASE": unix.CAP_LEASE, "AUDIT_WRITE": unix.CAP_AUDIT_WRITE,
	"AUDIT_CONTROL": unix.CAP_AUDIT_CONTROL, "SETFCAP": unix.CAP_SETFCAP,
	"MAC_OVERRIDE": unix.CAP_MAC_OVERRIDE, "MAC_ADMIN": unix.CAP_MAC_ADMIN,
	"SYSLOG": unix.CAP_SYSLOG, "WAKE_ALARM": unix.CAP_WAKE_ALARM,
	"BLOCK_SUSPEND": unix.CAP_BLOCK_SUSPEND, "AUDIT_READ": unix.CAP_AUDIT_READ,
	"PERFMON": unix.CAP_PERFMON, "BPF": unix.CAP_BPF,
	"CHECKPOINT_RESTORE": unix.CAP_CHECKPOINT_RESTORE,
}

// DefaultCaps is the capability set of a container's root user: Docker's
// default minus MKNOD (otok has no device cgroup on v2, so creating device
// nodes must not be possible) and minus NET_RAW (raw and packet sockets let
// a container forge traffic on the router's ports; Podman drops it too —
// `--cap-add NET_RAW` for ping and packet capture). Everything LXC's lxc.cap.drop list drops
// (mac_admin, mac_override, sys_admin, sys_boot, sys_module, sys_nice,
// sys_pacct, sys_ptrace, sys_rawio, sys_resource, sys_time, sys_tty_config,
// syslog, wake_alarm) is absent, as are net_admin, bpf, perfmon and
// checkpoint_restore. The same set is the bounding, permitted, effective
// and inheritable set; the ambient set is empty.
var DefaultCaps = []string{
	"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
	"SETPCAP", "SETFCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "AUDIT_WRITE",
}

// ParseCap normalises a capability name ("net_admin", "CAP_NET_ADMIN").
func ParseCap(s string) (string, error) {
	n := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "CAP_")
	if n == "ALL" {
		return n, nil
	}
	if _, ok := capNames[n]; !ok {
		return "", fmt.Errorf("unknown capability %q", s)
	}
	return n, nil
}

// capabilities returns the container's capability mask.
func (s *Spec) capabilities() (uint64, error) {
	all := allCapsMask()
	if s.Privileged {
		return all, nil
	}
	var mask uint64
	for _, n := range DefaultCaps {
		mask |= 1 << uint(capNames[n])
	}
	if s.System {
		// The init halts with reboot(), which in a child pid namespace
		// only ends the namespace (kexec stays blocked by seccomp).
		mask |= 1 << unix.CAP_SYS_BOOT
	}
	// Drops first, then adds: --cap-drop ALL --cap-add X leaves X.
	for _, c := range s.CapDrop {
		n, err := ParseCap(c)
		if err != nil {
			return 0, fmt.Errorf("cap-drop: %w", err)
		}
		if n == "ALL" {
			mask = 0
		} else {
			mask &^= 1 << uint(capNames[n])
		}
	}
	for _, c := range s.CapAdd {
		n, err := ParseCap(c)
		if err != nil {
			return 0, fmt.Errorf("cap-add: %w", err)
		}
		if n == "ALL" {
			mask = all
		} else {
			mask |= 1 << uint(capNames[n])
		}
	}
	return mask & all, nil
}

// CapNames lists the names in a mask, sorted.
func CapNames(mask uint64) []string {
	var out []string
	for n, v := range capNames {
		if mask&(1<<uint(v)) != 0 {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// lastCap is the highest capability the running kernel knows.
// lastCap is the kernel's highest capability number, read once (a start
// asked for it five times).
var lastCap = sync.OnceValue(func() int {
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 0 && n < 64 {
			return n
		}
	}
	return unix.CAP_LAST_CAP
})

func allCapsMask() uint64 {
	l := lastCap()
	if l >= 63 {
		return ^uint64(0)
	}
	return (uint64(1) << uint(l+1)) - 1
}

// dropBounding removes every capability not in mask from the bounding set
// of every thread (it needs CAP_SETPCAP: call it before setuid).
func dropBounding(mask uint64, last int) error {
	for c := 0; c <= last; c++ {
		if mask&(1<<uint(c)) != 0 {
			continue
		}
		if e := threadSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c), 0); e != 0 && e != unix.EINVAL {
			return fmt.Errorf("drop bounding capability %d: %w", c, e)
		}
	}
	return nil
}

// applyCapSets sets the permitted, effective and inheritable sets of every
// thread to eff and clears the ambient set. It runs after setuid (with
// PR_SET_KEEPCAPS) and before the seccomp filter is installed.
func applyCapSets(eff uint64) error {
	if e := threadSyscall(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0); e != 0 && e != unix.EINVAL {
		return fmt.Errorf("clear ambient capabilities: %w", e)
	}
	hdr, data := capSetArgs(eff)
	if e := threadSyscall(unix.SYS_CAPSET, uintptr(ptr(hdr)), uintptr(ptr(&data[0])), 0); e != 0 {
		return fmt.Errorf("capset: %w", e)
	}
	return nil
}

// capSetArgs are capset's arguments for eff as the effective, permitted
// and inheritable sets.
func capSetArgs(eff uint64) (*unix.CapUserHeader, *[2]unix.CapUserData) {
	hdr := &unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := &[2]unix.CapUserData{}
	// Never ask for more than this process has (otok may itself run with a
	// reduced set, e.g. inside another container): capset would fail.
	if unix.Capget(hdr, &data[0]) == nil {
		eff &= uint64(data[0].Permitted) | uint64(data[1].Permitted)<<32
	}
	for i := 0; i < 2; i++ {
		v := uint32(eff >> (32 * uint(i)))
		data[i] = unix.CapUserData{Effective: v, Permitted: v, Inheritable: v}
	}
	return hdr, data
}
