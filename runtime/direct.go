package runtime

import (
	"errors"
	"fmt"
	"io"
	"os"
	goruntime "runtime"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A direct start builds the container from a thread of the calling process
// and forks its init from there, instead of re-exec'ing otok as the init
// stage: a second Go program's start (runtime, package inits, the spec's
// decoding) was the largest single cost of `otok run` (~1.1 ms of ~6).
//
// The thread (locked: a new one, or for a foreground run the caller's)
// unshares the mount, UTS and IPC namespaces — a Go thread may; only a
// user namespace needs a single-threaded process — and joins the network
// namespace a helper child made meanwhile (pendingNetNS), builds the root
// filesystem, /dev, /sys and the volumes in them exactly as the init stage
// does, pivots into the root and resolves the command. Then it clones the
// init: the child, PID 1 of a new pid namespace, inherits all of that and
// runs a rawProg (rawchild.go) — join its cgroups, create its cgroup
// namespace, mount /proc (only a process inside the pid namespace can),
// mask it, mount the cgroups, set rlimits, drop privileges, report ready,
// wait for the start fifo, exec. The thread goes back to the host's
// namespaces, its root and its working directory at once, so it pins none
// of the container's and its caller's relative paths keep their meaning.
//
// User namespaces (the thread cannot enter one) and otok's reaper
// (--init: Go code as PID 1) still use the init stage.

// directStart reports whether a spec can be started directly.
func directStart(s *Spec) bool {
	return s.UserNS == nil && !s.Process.Init && os.Getenv("OTOK_INIT_STAGE") == ""
}

// directChild is a forked init and what the parent needs to read its
// status pipe.
type directChild struct {
	proc   *os.Process
	prog   *rawProg
	status *os.File
}

// forkDirect runs on a locked thread; see the comment above.
func forkDirect(cfg *initConfig, cg cgroup, o CreateOptions) (*directChild, error) {
	type result struct {
		c   *directChild
		err error
	}
	if o.KillOnParentExit {
		// The init dies with the thread that forked it: the caller's,
		// which stays locked to its goroutine from here (no handoff to
		// another thread and back, either).
		lockThread()
		return forkDirectThread(cfg, cg, o)
	}
	res := make(chan result, 1)
	go func() {
		lockThread() // never unlocked: the thread's state is the container's
		c, err := forkDirectThread(cfg, cg, o)
		res <- result{c, err}
	}()
	r := <-res
	return r.c, r.err
}

// hostNSFiles are the thread's namespaces before it unshares, to go back to.
var hostNSFiles = []struct {
	file string
	flag int
}{{"mnt", unix.CLONE_NEWNS}, {"uts", unix.CLONE_NEWUTS}, {"ipc", unix.CLONE_NEWIPC}, {"net", unix.CLONE_NEWNET}}

func forkDirectThread(cfg *initConfig, cg cgroup, o CreateOptions) (c *directChild, err error) {
	s := &cfg.Spec
	var host []int
	for _, ns := range hostNSFiles {
		fd, err := unix.Open("/proc/thread-self/ns/"+ns.file, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			closeAll(host)
			return nil, fmt.Errorf("container %s: %w", s.Name, err)
		}
		host = append(host, fd)
	}
	defer closeAll(host)
	// Before the pivot, which changes what the cgroup's path names.
	cgFd, err := cgroupFD(cg)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", s.Name, err)
	}
	if cgFd >= 0 {
		defer unix.Close(cgFd)
	}
	// v1: the child joins its cgroups itself, through these.
	join, err := openV1Tasks(cg)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", s.Name, err)
	}
	defer func() {
		for _, f := range join {
			f.Close()
		}
	}()
	// The thread's working directory, to come back to: relative paths of
	// the caller (a foreground run goes on on this thread) must still
	// mean what they meant.
	// Its root too: setns puts it at the namespace's, which is not the
	// same if otok runs chrooted.
	cwd, err := unix.Open(".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("container %s: working directory: %w", s.Name, err)
	}
	defer unix.Close(cwd)
	rootDir, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("container %s: root directory: %w", s.Name, err)
	}
	defer unix.Close(rootDir)
	flags := unix.CLONE_FS | unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC
	Tracef("direct: cgroup opened")
	if err := unix.Unshare(flags); err != nil {
		return nil, fmt.Errorf("container %s: unshare namespaces: %w", s.Name, err)
	}
	Tracef("direct: unshared")
	defer func() {
		// Back to the host's namespaces (this also leaves the container's
		// root and working directory), so that the thread holds none of
		// the container's. A thread that cannot is never reused anyway.
		for i, ns := range hostNSFiles {
			if e := unix.Setns(host[i], ns.flag); e != nil && err == nil {
				err = fmt.Errorf("container %s: back to the host's %s namespace: %w", s.Name, ns.file, e)
			}
		}
		if e := restoreRoot(rootDir); e != nil && err == nil {
			err = fmt.Errorf("container %s: back to the root directory: %w", s.Name, e)
		}
		if e := unix.Fchdir(cwd); e != nil && err == nil {
			err = fmt.Errorf("container %s: back to the working directory: %w", s.Name, e)
		}
		if err != nil && c != nil {
			c.proc.Kill()
			c.proc.Wait()
			c.status.Close()
			c = nil
		}
	}()
	pl, err := buildDirect(cfg, o, cfg.netns)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", s.Name, err)
	}
	pl.join = join
	return pl.fork(cgFd)
}

// pendingNetNS is a network namespace a helper child is making, while
// the caller builds the root filesystem (a new network namespace is the
// slowest part of a start: ~0.6 ms here). A raw child, not a goroutine:
// a new locked thread took as long to get going.
type pendingNetNS struct {
	pid          int
	prog         *rawProg
	status, done *os.File // its ready record; closed to let it exit
	fd           int      // the namespace, once joined
}

func newNetNS() (*pendingNetNS, error) {
	statR, statW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer statW.Close()
	doneR, doneW, err := os.Pipe()
	if err != nil {
		statR.Close()
		return nil, err
	}
	defer doneR.Close()
	p := &rawProg{}
	var b [1]byte
	// Only the two pipe ends, at 3 and 4: its copies of this process's
	// other fds (the other end of done included) are closed.
	p.add("status fd", ignoreNone, unix.SYS_DUP3, statW.Fd(), childStatusFd, unix.O_CLOEXEC)
	p.add("done fd", ignoreNone, unix.SYS_DUP3, doneR.Fd(), childFifoFd, unix.O_CLOEXEC)
	p.add("close done", ignoreNone, unix.SYS_CLOSE, doneW.Fd())
	p.add("close fds", ignoreAny, unix.SYS_CLOSE_RANGE, 5, ^uintptr(0), 0) // 5.9+
	p.add("new network namespace", ignoreNone, unix.SYS_UNSHARE, unix.CLONE_NEWNET)
	p.markReady()
	p.add("wait", ignoreAny, unix.SYS_READ, childFifoFd, p.mem(&b, unsafe.Pointer(&b[0])), 1)
	p.add("exit", ignoreNone, unix.SYS_EXIT_GROUP, 0)
	pid, errno := startRawChild(nil, 0, p)
	if errno != 0 {
		statR.Close()
		doneW.Close()
		return nil, fmt.Errorf("network namespace: start helper: %w", errno)
	}
	return &pendingNetNS{pid: pid, prog: p, status: statR, done: doneW, fd: -1}, nil
}

// join moves the calling (locked) thread into the namespace.
func (n *pendingNetNS) join() error {
	var rec [8]byte
	if _, err := io.ReadFull(n.status, rec[:]); err != nil {
		return fmt.Errorf("network namespace: helper died")
	}
	if err := n.prog.result(rec[:]); err != nil {
		return err
	}
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/net", n.pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("network namespace: %w", err)
	}
	n.fd = fd
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("network namespace: setns: %w", err)
	}
	return nil
}

// close lets the helper exit and reaps it (the container, if any, holds
// the namespace by then).
func (n *pendingNetNS) close() {
	n.done.Close()
	n.status.Close()
	var ws unix.WaitStatus
	for {
		if _, err := unix.Wait4(n.pid, &ws, 0, nil); err != unix.EINTR {
			break
		}
	}
	goruntime.KeepAlive(n.prog)
	if n.fd >= 0 {
		unix.Close(n.fd)
	}
}

// restoreRoot makes the directory at fd the thread's root again.
func restoreRoot(fd int) error {
	if err := unix.Fchdir(fd); err != nil {
		return err
	}
	return unix.Chroot(".")
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// directPlan is a prepared child: its program and the fds it takes.
type directPlan struct {
	name  string
	prog  *rawProg
	files []*os.File // become fds 0, 1, 2, childStatusFd, childFifoFd
	join  []*os.File // v1 tasks files the child writes itself into
	own   []*os.File // closed after the fork
	statR *os.File
}

// buildDirect does the init stage's setup on the calling thread (in the
// container's namespaces, except pid and cgroup) and prepares the rest.
func buildDirect(cfg *initConfig, o CreateOptions, netns *pendingNetNS) (_ *directPlan, err error) {
	s := &cfg.Spec
	pl := &directPlan{name: s.Name, prog: &rawProg{}}
	defer func() {
		if err != nil {
			pl.closeFiles()
			if pl.statR != nil {
				pl.statR.Close()
			}
		}
	}()
	stdio := []*os.File{o.IO.Stdin, o.IO.Stdout, o.IO.Stderr}
	for i, f := range stdio {
		if f == nil {
			if f, err = os.OpenFile(os.DevNull, os.O_RDWR, 0); err != nil {
				return nil, err
			}
			pl.own = append(pl.own, f)
			stdio[i] = f
		}
	}
	if s.Process.Terminal && o.IO.Stdin != nil {
		cfg.consoleFd = int(o.IO.Stdin.Fd())
	}
	// Blocking fds, read by the caller's thread (no poller handoffs).
	var sp [2]int
	if err := unix.Pipe2(sp[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("status pipe: %w", err)
	}
	statR, statW := os.NewFile(uintptr(sp[0]), "status"), os.NewFile(uintptr(sp[1]), "status")
	pl.statR = statR
	pl.own = append(pl.own, statW)
	fd, err := openStartFifo(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("start fifo: %w", err)
	}
	fifo := os.NewFile(uintptr(fd), "start.fifo")
	pl.own = append(pl.own, fifo)
	pl.files = append(stdio, statW, fifo)

	// What the child must do for /proc (a look at the host's, before the
	// pivot, says which masked paths are directories).
	var procMasks []procMask
	if !s.Privileged {
		for _, p := range maskedPaths {
			if st, err := os.Lstat(p); err == nil && strings.HasPrefix(p, "/proc/") {
				procMasks = append(procMasks, procMask{p, st.IsDir()})
			}
		}
	}
	root, err := setupRootfs(cfg, nil)
	if err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	Tracef("direct: rootfs")
	// The network namespace, before sysfs (which shows its devices).
	switch s.Net.Mode {
	case NetPath:
		if err := joinNetPath(s.Net.Path); err != nil {
			return nil, err
		}
	case NetNew:
		if err := netns.join(); err != nil {
			return nil, err
		}
		if err := loopbackUp(); err != nil {
			return nil, err
		}
	}
	Tracef("direct: in network namespace")
	sys, err := setupMounts(cfg, root, false)
	if err != nil {
		return nil, err
	}
	var v1 []string
	v1ok := false
	if sys != "" && cfg.CgroupVersion == 1 {
		v1, v1ok = prepareCgroupsV1(cfg, sys)
	}
	Tracef("direct: mounts done")
	// /proc is masked by the child, which mounts it.
	path, env, err := enterRoot(s, root, "/sys/")
	if err != nil {
		return nil, err
	}
	Tracef("direct: pivoted, command found")
	p := pl.prog
	p.prefix = []byte("otok: container " + s.Name + ": ")
	p.errs = errnoTexts()
	addStdio(p, s.Process.Terminal)
	addProc(p, procMasks)
	// The cgroup namespace, from here: the child is in its cgroup (born
	// there on v2, inherited from this thread on v1), so it is its root.
	p.add("cgroup namespace", ignoreNone, unix.SYS_UNSHARE, unix.CLONE_NEWCGROUP)
	if cfg.CgroupVersion == 2 && sys != "" || v1ok {
		addCgroupMounts(p, cfg.CgroupVersion, v1)
	}
	if err := addRlimits(p, s.Rlimits); err != nil {
		return nil, err
	}
	priv := privileges{caps: cfg.Caps, lastCap: cfg.LastCap, seccomp: cfg.Seccomp, seccompAdmin: cfg.SeccompAdmin, seccompReboot: s.System, noNewPrivs: !s.Privileged}
	if err := priv.addOps(p, &s.Process, o.KillOnParentExit); err != nil {
		return nil, err
	}
	p.markReady()
	var b [1]byte
	p.add("wait for start", ignoreNone, unix.SYS_READ, childFifoFd, p.mem(&b, unsafe.Pointer(&b[0])), 1)
	addSignalDefaults(p)
	p.add("exec "+path, ignoreNone, unix.SYS_EXECVE, p.cstr(path), p.cstrv(s.Process.Args), p.cstrv(env))
	Tracef("direct: program built")
	return pl, nil
}

func (pl *directPlan) closeFiles() {
	for _, f := range pl.own {
		f.Close()
	}
}

// fork parks the child's fds above any the child will write and forks it
// (into the v2 cgroup cgFd, or the thread's v1 cgroups with cgFd -1). The
// caller reads the status pipe.
func (pl *directPlan) fork(cgFd int) (*directChild, error) {
	defer pl.closeFiles()
	p := pl.prog
	// Sources well above the targets (0…4), so the child's dup3s cannot
	// clobber one another; then everything from 5 up is closed.
	var parked []int
	defer func() { closeAll(parked) }()
	first := []rawOp{}
	for i, f := range pl.files {
		hi, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 64)
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", pl.name, err)
		}
		parked = append(parked, hi)
		flags := uintptr(0)
		if i >= childStatusFd {
			flags = unix.O_CLOEXEC
		}
		first = append(first, rawOp{trap: unix.SYS_DUP3, args: [6]uintptr{uintptr(hi), uintptr(i), flags}, desc: []byte("set up fds")})
	}
	// v1: into the container's cgroups, before anything else (a thread
	// writing "0" to tasks moves itself). v2: cloned there.
	zero := []byte("0")
	p.keep = append(p.keep, zero)
	for _, f := range pl.join {
		hi, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 64)
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", pl.name, err)
		}
		parked = append(parked, hi)
		first = append(first, rawOp{trap: unix.SYS_WRITE, args: [6]uintptr{uintptr(hi), uintptr(unsafe.Pointer(&zero[0])), 1}, desc: []byte("join cgroup " + f.Name())})
	}
	// close_range: 5.9 and later; before, the fds are close-on-exec anyway.
	first = append(first, rawOp{trap: unix.SYS_CLOSE_RANGE, args: [6]uintptr{5, ^uintptr(0), 0}, ignore: ignoreAny, desc: []byte("close fds")})
	p.ops = append(first, p.ops...)
	p.ready += len(first)

	var args *cloneArgs
	if cgFd >= 0 {
		args = &cloneArgs{flags: unix.CLONE_NEWPID | unix.CLONE_INTO_CGROUP, exitSignal: uint64(unix.SIGCHLD), cgroup: uint64(cgFd)}
	}
	Tracef("direct: fork")
	pid, errno := startRawChild(args, unix.CLONE_NEWPID, p)
	Tracef("direct: fork returned")
	goruntime.KeepAlive(p)
	if errno != 0 {
		return nil, fmt.Errorf("container %s: fork init: %w", pl.name, errno)
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		return nil, err
	}
	Tracef("direct: forked")
	return &directChild{proc: proc, prog: p, status: pl.statR}, nil
}

// startRawChild starts prog in a new child (clone3 args, or clone flags
// with args nil). Where it can, the child shares this address space, on
// a stack of its own: a fork's copy-on-write would make every page this
// multi-threaded process then writes a fault and a TLB shootdown until
// the child execs. The program's memory, stack included, must stay
// referenced until the child has exec'd or exited.
func startRawChild(args *cloneArgs, flags uintptr, p *rawProg) (int, syscall.Errno) {
	var stack []byte
	if haveCloneVM {
		stack = make([]byte, childStackSize)
		p.keep = append(p.keep, stack)
	}
	var all, old [4]uint64
	for i := range all {
		all[i] = ^uint64(0)
	}
	// No Go signal handler may run in the child: it starts with every
	// signal blocked (the mask is the thread's: stay on it).
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	if _, _, e := syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all[0])), uintptr(unsafe.Pointer(&old[0])), sigsetSize, 0, 0); e != 0 {
		return 0, e
	}
	var pid int
	var errno syscall.Errno
	if haveCloneVM {
		pid, errno = cloneVM(args, flags, stack, p)
	} else {
		pid, errno = rawForkProg(args, flags, p)
	}
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old[0])), 0, sigsetSize, 0, 0)
	return pid, errno
}

// childStackSize is the stack of a CLONE_VM child: runRawProg's frames
// and the system calls' (o32 MIPS reads 32 bytes above the stack pointer).
const childStackSize = 16 << 10

// cloneVM starts prog in a child sharing this address space, on stack.
func cloneVM(args *cloneArgs, flags uintptr, stack []byte, prog *rawProg) (int, syscall.Errno) {
	// The top, 16-byte aligned, with room above it.
	base := uintptr(unsafe.Pointer(&stack[0]))
	top := (base + uintptr(len(stack)) - 64) &^ 15
	var pid, errno uintptr
	if args != nil {
		a := *args
		a.flags |= unix.CLONE_VM
		a.stack, a.stackSize = uint64(base), uint64(top-base)
		pid, errno = rawCloneVM(unix.SYS_CLONE3, uintptr(unsafe.Pointer(&a)), unsafe.Sizeof(a), prog)
		goruntime.KeepAlive(&a)
	} else {
		pid, errno = rawCloneVM(unix.SYS_CLONE, flags|unix.CLONE_VM|uintptr(unix.SIGCHLD), top, prog)
	}
	return int(pid), syscall.Errno(errno)
}

type procMask struct {
	path string
	dir  bool
}

// addStdio: a session of its own, with the terminal as its controlling one.
func addStdio(p *rawProg, terminal bool) {
	p.add("setsid", ignoreAny, unix.SYS_SETSID)
	if terminal {
		p.add("controlling terminal", ignoreNone, unix.SYS_IOCTL, 0, unix.TIOCSCTTY, 0)
	}
}

// addProc mounts /proc and, unless privileged, masks and write-protects
// what maskPathsUnder does in the init stage.
func addProc(p *rawProg, masks []procMask) {
	const nsd = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	p.add("mount proc on /proc", ignoreNone, unix.SYS_MOUNT, p.cstr("proc"), p.cstr("/proc"), p.cstr("proc"), nsd, 0)
	if masks == nil {
		return
	}
	null, tmpfs, size := p.cstr("/dev/null"), p.cstr("tmpfs"), p.cstr("size=0")
	for _, m := range masks {
		if m.dir {
			p.add("mask "+m.path, ignoreENOENT, unix.SYS_MOUNT, tmpfs, p.cstr(m.path), tmpfs, unix.MS_RDONLY, size)
		} else {
			p.add("mask "+m.path, ignoreENOENT, unix.SYS_MOUNT, null, p.cstr(m.path), 0, unix.MS_BIND, 0)
		}
	}
	for _, path := range readonlyPaths {
		c := p.cstr(path)
		p.add("mount "+path, ignoreENOENT, unix.SYS_MOUNT, c, c, 0, unix.MS_BIND|unix.MS_REC, 0)
		p.add("read-only "+path, ignoreENOENT, unix.SYS_MOUNT, 0, c, 0, unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|nsd|unix.MS_RELATIME, 0)
	}
}

// openV1Tasks opens the tasks files of a v1 container's cgroups (none on
// v2), skipping hierarchies it has no cgroup in.
func openV1Tasks(cg cgroup) ([]*os.File, error) {
	v1, ok := cg.(*cgroupV1)
	if !ok {
		return nil, nil
	}
	var out []*os.File
	for _, d := range v1.paths() {
		f, err := os.OpenFile(d+"/tasks", os.O_WRONLY, 0)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			for _, f := range out {
				f.Close()
			}
			return nil, fmt.Errorf("cgroup %s: %w", d, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// addCgroupMounts mounts the container's cgroups read-only at
// /sys/fs/cgroup, as mountCgroups does; failures are not fatal.
func addCgroupMounts(p *rawProg, version int, v1 []string) {
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY
	dir := "/sys/fs/cgroup"
	if version == 2 {
		c := p.cstr("cgroup2")
		p.add("mount cgroup2", ignoreAny, unix.SYS_MOUNT, c, p.cstr(dir), c, flags, 0)
		return
	}
	cg := p.cstr("cgroup")
	for _, c := range v1 {
		p.add("mount cgroup "+c, ignoreAny, unix.SYS_MOUNT, cg, p.cstr(dir+"/"+c), cg, flags, p.cstr(c))
	}
	p.add("read-only /sys/fs/cgroup", ignoreAny, unix.SYS_MOUNT, 0, p.cstr(dir), 0, unix.MS_REMOUNT|flags, 0)
}

// addRlimits sets the resource limits as applyRlimits does.
func addRlimits(p *rawProg, limits []Rlimit) error {
	set, err := rlimitSet(limits)
	if err != nil {
		return err
	}
	for _, l := range set {
		v := &[2]uint64{l.soft, l.hard}
		p.add(fmt.Sprintf("rlimit %s=%d:%d", l.name, l.soft, l.hard), ignoreNone, unix.SYS_PRLIMIT64, 0, uintptr(l.res), p.mem(v, unsafe.Pointer(v)), 0)
	}
	return nil
}

// addOps is apply as a program: the same calls in the same order, plus
// the parent-death signal (after setuid, which clears it).
func (pv *privileges) addOps(p *rawProg, proc *Process, pdeathsig bool) error {
	for c := 0; c <= pv.lastCap; c++ {
		if pv.caps&(1<<uint(c)) == 0 {
			p.add(fmt.Sprintf("drop bounding capability %d", c), ignoreEINVAL, unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(c))
		}
	}
	p.add("keepcaps", ignoreNone, unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1)
	gs := make([]uint32, len(proc.Groups)+1) // +1: never an empty slice's address
	for i, g := range proc.Groups {
		gs[i] = uint32(g)
	}
	p.add(fmt.Sprintf("setgroups %v", proc.Groups), ignoreNone, sysSetgroups, uintptr(len(proc.Groups)), p.mem(gs, unsafe.Pointer(&gs[0])))
	uid, gid := uintptr(proc.UID), uintptr(proc.GID)
	p.add(fmt.Sprintf("setgid %d", proc.GID), ignoreNone, sysSetresgid, gid, gid, gid)
	p.add(fmt.Sprintf("setuid %d", proc.UID), ignoreNone, sysSetresuid, uid, uid, uid)
	if pdeathsig {
		p.add("parent death signal", ignoreNone, unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL))
	}
	eff := pv.caps
	if proc.UID != 0 {
		eff = 0
	}
	p.add("clear ambient capabilities", ignoreEINVAL, unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL)
	hdr, data := capSetArgs(eff)
	p.add("capset", ignoreNone, unix.SYS_CAPSET, p.mem(hdr, unsafe.Pointer(hdr)), p.mem(data, unsafe.Pointer(&data[0])))
	if pv.noNewPrivs {
		p.add("no_new_privs", ignoreNone, unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1)
	}
	if pv.seccomp {
		prog, err := SeccompFilter(goruntime.GOARCH, pv.seccompAdmin, pv.seccompReboot)
		if err != nil {
			return err
		}
		fprog := &unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
		p.keep = append(p.keep, prog)
		p.add("seccomp: install filter", ignoreNone, unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, p.mem(fprog, unsafe.Pointer(fprog)))
	}
	return nil
}

// addSignalDefaults resets every signal's action (a Go handler must not
// run in the child) and unblocks them all, for the exec.
func addSignalDefaults(p *rawProg) {
	act := new([64]byte) // SIG_DFL, no flags, empty mask in every layout
	a := p.mem(act, unsafe.Pointer(act))
	for sig := 1; sig <= 64; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		p.add("reset signals", ignoreAny, unix.SYS_RT_SIGACTION, uintptr(sig), a, 0, sigsetSize)
	}
	none := new([4]uint64)
	p.add("unblock signals", ignoreNone, unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, p.mem(none, unsafe.Pointer(none)), 0, sigsetSize)
}
