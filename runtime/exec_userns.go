package runtime

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// forkIntoUserNS starts the exec stage inside a container's user
// namespace. A multi-threaded Go process cannot setns(CLONE_NEWUSER), so
// the calling thread — locked, already in the container's other
// namespaces and cgroup — forks with a raw clone: the child has one
// thread, joins the user namespace, becomes its root (the host ids
// container root maps to) and execs argv. The child runs only raw
// syscalls on memory prepared before the fork. files become the child's
// fds 0.. in order (nil: /dev/null). With cgroupFd >= 0 (v2) the child is
// cloned into that cgroup (clone3 CLONE_INTO_CGROUP): on v2 the thread
// cannot move itself there, and without it the child would stay in the
// caller's cgroup, outside the container's limits.
func forkIntoUserNS(usernsFd, cgroupFd int, argv []string, files []*os.File, setsid bool) (*os.Process, error) {
	path, err := syscall.BytePtrFromString("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	argvp, err := syscall.SlicePtrFromStrings(argv)
	if err != nil {
		return nil, err
	}
	envp, _ := syscall.SlicePtrFromStrings(initEnv(stageExec))
	// Park every source fd above the targets so the child's dup3s cannot
	// clobber one another.
	null, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer null.Close()
	src := make([]int, len(files))
	for i, f := range files {
		fd := int(null.Fd())
		if f != nil {
			fd = int(f.Fd())
		}
		hi, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 100)
		if err != nil {
			return nil, err
		}
		defer unix.Close(hi)
		src[i] = hi
	}
	var all, old [4]uint64
	for i := range all {
		all[i] = ^uint64(0)
	}
	var none [4]uint64
	// No Go signal handler may run in the child.
	if _, _, e := syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all[0])), uintptr(unsafe.Pointer(&old[0])), sigsetSize, 0, 0); e != 0 {
		return nil, fmt.Errorf("block signals: %w", e)
	}
	var args *cloneArgs
	if cgroupFd >= 0 {
		args = &cloneArgs{flags: unix.CLONE_INTO_CGROUP, exitSignal: uint64(unix.SIGCHLD), cgroup: uint64(cgroupFd)}
	}
	pid, errno := rawForkExec(usernsFd, args, path, &argvp[0], &envp[0], src, setsid, sigsetSize, &none[0])
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old[0])), 0, sigsetSize, 0, 0)
	if errno != 0 {
		return nil, fmt.Errorf("fork: %w", errno)
	}
	return os.FindProcess(pid)
}

// rawForkExec is the fork; everything after the clone in the child is a
// raw syscall (no allocation, no stack growth, no scheduler). The child
// exits 120+step on failure.
//
//go:nosplit
//go:norace
func rawForkExec(usernsFd int, args *cloneArgs, path *byte, argv, envp **byte, src []int, setsid bool, sigsetSize uintptr, none *uint64) (int, syscall.Errno) {
	var r1 uintptr
	var e syscall.Errno
	if args != nil {
		// No stack: the child runs on a copy of this one, as with fork.
		r1, _, e = syscall.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(args)), unsafe.Sizeof(*args), 0)
	} else {
		r1, _, e = syscall.RawSyscall6(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
	}
	if e != 0 {
		return 0, e
	}
	if r1 != 0 {
		return int(r1), 0 // parent
	}
	// Child.
	if _, _, e = syscall.RawSyscall(unix.SYS_SETNS, uintptr(usernsFd), unix.CLONE_NEWUSER, 0); e != 0 {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 121, 0, 0)
	}
	if _, _, e = syscall.RawSyscall(sysSetgroups, 0, 0, 0); e != 0 {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 122, 0, 0)
	}
	if _, _, e = syscall.RawSyscall(sysSetresgid, 0, 0, 0); e != 0 {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 123, 0, 0)
	}
	if _, _, e = syscall.RawSyscall(sysSetresuid, 0, 0, 0); e != 0 {
		syscall.RawSyscall(unix.SYS_EXIT_GROUP, 124, 0, 0)
	}
	for i := 0; i < len(src); i++ {
		if _, _, e = syscall.RawSyscall(unix.SYS_DUP3, uintptr(src[i]), uintptr(i), 0); e != 0 {
			syscall.RawSyscall(unix.SYS_EXIT_GROUP, 125, 0, 0)
		}
	}
	if setsid {
		syscall.RawSyscall(unix.SYS_SETSID, 0, 0, 0)
		syscall.RawSyscall(unix.SYS_IOCTL, 0, unix.TIOCSCTTY, 1)
	}
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(none)), 0, sigsetSize, 0, 0)
	syscall.RawSyscall(unix.SYS_EXECVE, uintptr(unsafe.Pointer(path)), uintptr(unsafe.Pointer(argv)), uintptr(unsafe.Pointer(envp)))
	syscall.RawSyscall(unix.SYS_EXIT_GROUP, 126, 0, 0)
	return 0, 0
}

// cloneArgs is the kernel's struct clone_args up to cgroup (version 2,
// 88 bytes).
type cloneArgs struct {
	flags, pidfd, childTID, parentTID, exitSignal, stack, stackSize, tls, setTID, setTIDSize, cgroup uint64
}
