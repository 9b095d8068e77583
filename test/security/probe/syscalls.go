package main

import (
	"errors"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// denied classifies a syscall's error for a call made with arguments the
// kernel only rejects after its permission checks: EPERM, EACCES or
// ENOSYS (seccomp or a missing capability) is blocked, anything else
// (success, EINVAL, EFAULT, ENOENT…) means the call got through.
func denied(what string, err error) result {
	switch {
	case err == nil:
		return allowed("%s succeeded", what)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES), errors.Is(err, unix.ENOSYS):
		return blocked("%s: %v", what, err)
	default:
		return allowed("%s passed the permission check: %v", what, err)
	}
}

func errno(_, _ uintptr, e unix.Errno) error {
	if e != 0 {
		return e
	}
	return nil
}

func syscallProbes() []probe {
	return []probe{
		{"mount", func() result {
			d, err := os.MkdirTemp("", "probe-mnt-")
			if err != nil {
				d = "/dev/shm"
			}
			defer os.Remove(d)
			err = unix.Mount("probe", d, "tmpfs", 0, "size=4k")
			if err == nil {
				unix.Unmount(d, unix.MNT_DETACH)
			}
			return denied("mount tmpfs", err)
		}},
		{"mount_remount_proc_sys_rw", func() result {
			return denied("remount /proc/sys rw", unix.Mount("", "/proc/sys", "", unix.MS_REMOUNT|unix.MS_BIND, ""))
		}},
		{"umount", func() result {
			// /proc/sysrq-trigger is masked by a bind mount: unmounting
			// it would unmask it.
			return denied("umount2 /proc/sysrq-trigger", unix.Unmount("/proc/sysrq-trigger", unix.MNT_DETACH))
		}},
		{"pivot_root", func() result {
			// In a child: success would change this process's root.
			return subVerdict("pivot_root")
		}},
		{"open_tree", func() result {
			fd, err := unix.OpenTree(unix.AT_FDCWD, "/proc", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
			if err == nil {
				unix.Close(fd)
			}
			return denied("open_tree(/proc, CLONE)", err)
		}},
		{"move_mount", func() result {
			return denied("move_mount(/proc/sys -> /tmp)", unix.MoveMount(unix.AT_FDCWD, "/proc/sys", unix.AT_FDCWD, "/tmp", 0))
		}},
		{"fsopen", func() result {
			r, _, e := unix.Syscall(unix.SYS_FSOPEN, uintptr(unsafe.Pointer(bytePtr("tmpfs"))), 0, 0)
			if e == 0 {
				unix.Close(int(r))
			}
			return denied("fsopen(tmpfs)", errno(r, 0, e))
		}},
		{"init_module", func() result {
			// An empty module image: EINVAL/ENOEXEC only after the check.
			return denied("init_module", unix.InitModule([]byte{0}, ""))
		}},
		{"finit_module", func() result {
			f, err := os.Open("/proc/self/exe")
			if err != nil {
				return blocked("open /proc/self/exe: %v", err)
			}
			defer f.Close()
			return denied("finit_module(own binary)", unix.FinitModule(int(f.Fd()), "", 0))
		}},
		{"delete_module", func() result {
			return denied("delete_module(otok_probe_none)", errno(unix.Syscall(unix.SYS_DELETE_MODULE, uintptr(unsafe.Pointer(bytePtr("otok_probe_none"))), unix.O_NONBLOCK, 0)))
		}},
		{"kexec_load", func() result {
			// No segments, an invalid flag: rejected after CAP_SYS_BOOT.
			r, _, e := unix.Syscall6(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0xdead0000, 0, 0)
			return denied("kexec_load", errno(r, 0, e))
		}},
		{"reboot", func() result {
			// CAD_OFF: in the host pid namespace it only disables
			// ctrl-alt-del; in a child pid namespace it is EINVAL after
			// the CAP_SYS_BOOT check.
			return denied("reboot(CAD_OFF)", unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF))
		}},
		{"swapon", func() result {
			return denied("swapon(/nonexistent)", errno(unix.Syscall(unix.SYS_SWAPON, uintptr(unsafe.Pointer(bytePtr("/probe-nonexistent-swap"))), 0, 0)))
		}},
		{"syslog_read", func() result {
			buf := make([]byte, 256)
			_, err := unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
			return denied("syslog(READ_ALL)", err)
		}},
		{"keyctl", func() result {
			_, err := unix.KeyctlInt(unix.KEYCTL_GET_KEYRING_ID, unix.KEY_SPEC_SESSION_KEYRING, 0, 0, 0)
			return denied("keyctl(GET_KEYRING_ID)", err)
		}},
		{"add_key", func() result {
			_, err := unix.AddKey("user", "otok-probe", []byte("x"), unix.KEY_SPEC_PROCESS_KEYRING)
			return denied("add_key", err)
		}},
		{"bpf", func() result {
			// BPF_MAP_CREATE of a one-entry array.
			attr := [12]uint32{2 /* BPF_MAP_TYPE_ARRAY */, 4, 4, 1}
			r, _, e := unix.Syscall(unix.SYS_BPF, 0 /* BPF_MAP_CREATE */, uintptr(unsafe.Pointer(&attr[0])), unsafe.Sizeof(attr))
			if e == 0 {
				unix.Close(int(r))
			}
			return denied("bpf(MAP_CREATE)", errno(r, 0, e))
		}},
		{"perf_event_open", func() result {
			attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_CPU_CLOCK}
			attr.Size = uint32(unsafe.Sizeof(attr))
			attr.Bits = unix.PerfBitDisabled
			fd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
			if err == nil {
				unix.Close(fd)
			}
			return denied("perf_event_open(self, cpu-clock)", err)
		}},
		{"userfaultfd", func() result {
			r, _, e := unix.Syscall(unix.SYS_USERFAULTFD, unix.O_CLOEXEC, 0, 0)
			if e == 0 {
				unix.Close(int(r))
			}
			return denied("userfaultfd", errno(r, 0, e))
		}},
		{"open_by_handle_at", openByHandle},
		{"name_to_handle_at", func() result {
			h := make([]byte, 8+128)
			*(*uint32)(unsafe.Pointer(&h[0])) = 128
			var mnt int32
			r, _, e := unix.Syscall6(unix.SYS_NAME_TO_HANDLE_AT, atFdcwd, uintptr(unsafe.Pointer(bytePtr("/"))),
				uintptr(unsafe.Pointer(&h[0])), uintptr(unsafe.Pointer(&mnt)), 0, 0)
			// Not a privilege by itself (files' handles), but Shocker's
			// first half: refused by the default filter.
			return denied("name_to_handle_at(/)", errno(r, 0, e))
		}},
		{"mknod_block", func() result { return mknodProbe(unix.S_IFBLK, 7, 0, "loop0") }},
		{"mknod_char_mem", func() result { return mknodProbe(unix.S_IFCHR, 1, 1, "mem") }},
		{"socket_raw", func() result {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
			if err == nil {
				unix.Close(fd)
			}
			return denied("socket(AF_INET, SOCK_RAW)", err)
		}},
		{"socket_packet", func() result {
			fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
			if err == nil {
				unix.Close(fd)
			}
			return denied("socket(AF_PACKET, SOCK_RAW)", err)
		}},
		{"ptrace_outside", ptraceOutside},
		{"process_vm_readv_outside", vmReadvOutside},
		{"pidfd_open_outside", func() result {
			if cfg.outsidePid == 0 {
				return blocked("no -outside-pid given")
			}
			r, _, e := unix.Syscall(unix.SYS_PIDFD_OPEN, uintptr(cfg.outsidePid), 0, 0)
			if e == unix.ESRCH {
				return blocked("pidfd_open(%d): %v (not in this pid namespace)", cfg.outsidePid, e)
			}
			if e == 0 {
				unix.Close(int(r))
				if isMarker(cfg.outsidePid) {
					return allowed("pidfd_open(%d) of the outside process succeeded", cfg.outsidePid)
				}
				return blocked("pid %d here is a container process, not the outside one", cfg.outsidePid)
			}
			return denied("pidfd_open", e)
		}},
		{"kill_outside", func() result {
			if cfg.outsidePid == 0 {
				return blocked("no -outside-pid given")
			}
			err := unix.Kill(cfg.outsidePid, 0)
			if err == nil && isMarker(cfg.outsidePid) {
				return allowed("kill(%d, 0) reached the outside process", cfg.outsidePid)
			}
			if err == nil {
				return blocked("pid %d here is a container process", cfg.outsidePid)
			}
			return blocked("kill(%d, 0): %v", cfg.outsidePid, err)
		}},
		{"iopl", ioplProbe},
	}
}

// atFdcwd is AT_FDCWD as a syscall argument.
var atFdcwd = func() uintptr { fd := unix.AT_FDCWD; return uintptr(fd) }()

func bytePtr(s string) *byte {
	b, _ := unix.BytePtrFromString(s)
	return b
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// isMarker reports whether pid (as seen here) is the host's outside
// process, by its argv[0].
func isMarker(pid int) bool {
	b, err := os.ReadFile("/proc/" + itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	return len(b) >= len(cfg.marker) && string(b[:len(cfg.marker)]) == cfg.marker
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	if neg {
		b = append([]byte{'-'}, b...)
	}
	return string(b)
}

func ptraceOutside() result {
	if cfg.outsidePid == 0 {
		return blocked("no -outside-pid given")
	}
	err := unix.PtraceSeize(cfg.outsidePid)
	if err == nil {
		unix.PtraceDetach(cfg.outsidePid)
		if isMarker(cfg.outsidePid) {
			return allowed("PTRACE_SEIZE of outside pid %d succeeded", cfg.outsidePid)
		}
		return blocked("pid %d here is a container process, not the outside one", cfg.outsidePid)
	}
	if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EPERM) {
		return blocked("PTRACE_SEIZE(%d): %v", cfg.outsidePid, err)
	}
	return allowed("PTRACE_SEIZE(%d): unexpected %v", cfg.outsidePid, err)
}

func vmReadvOutside() result {
	if cfg.outsidePid == 0 {
		return blocked("no -outside-pid given")
	}
	buf := make([]byte, 8)
	local := []unix.Iovec{{Base: &buf[0], Len: 8}}
	// Address 0x1000 is never mapped: EFAULT means the target was reached.
	remote := []unix.RemoteIovec{{Base: 0x1000, Len: 8}}
	_, err := unix.ProcessVMReadv(cfg.outsidePid, local, remote, 0)
	if errors.Is(err, unix.ESRCH) {
		return blocked("process_vm_readv(%d): %v (not in this pid namespace)", cfg.outsidePid, err)
	}
	if err == nil || errors.Is(err, unix.EFAULT) {
		if !isMarker(cfg.outsidePid) {
			return blocked("pid %d here is a container process", cfg.outsidePid)
		}
	}
	return denied("process_vm_readv(outside)", err)
}

// openByHandle is Shocker (2014): a well-formed handle for inode 2 of the
// root's filesystem. Without CAP_DAC_READ_SEARCH (or with the filter) the
// kernel says EPERM before decoding it.
func openByHandle() result {
	var h struct {
		bytes uint32
		typ   int32
		f     [8]byte
	}
	h.bytes, h.typ = 8, 1 // FILEID_INO32_GEN
	h.f[0] = 2
	r, _, e := unix.Syscall(unix.SYS_OPEN_BY_HANDLE_AT, atFdcwd, uintptr(unsafe.Pointer(&h)), unix.O_RDONLY)
	if e == 0 {
		unix.Close(int(r))
	}
	return denied("open_by_handle_at(ino 2)", errno(r, 0, e))
}

func mknodProbe(typ uint32, major, minor uint32, name string) result {
	d, err := os.MkdirTemp("", "probe-dev-")
	if err != nil {
		d = "/dev/shm"
	}
	defer os.RemoveAll(d)
	p := d + "/" + name
	err = unix.Mknod(p, typ|0o600, int(unix.Mkdev(major, minor)))
	if err != nil {
		return denied("mknod "+name, err)
	}
	// Created (CAP_MKNOD): still harmless if the device cgroup refuses
	// opening it (or the mount is nodev).
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err == nil {
		unix.Close(fd)
		return allowed("mknod %s and open succeeded", name)
	}
	return blocked("mknod %s worked but open: %v", name, err)
}
