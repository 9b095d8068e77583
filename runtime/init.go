package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The start fifo: the init opens it for reading and writing (which does
// not block, and keeps it open for any starter) before it reports ready,
// and reads one byte from it once ready; Start writes that byte. A
// starter that finds no reader (ENXIO) knows the init is gone.
func openStartFifo(dir string) (int, error) {
	return unix.Open(filepath.Join(dir, "start.fifo"), unix.O_RDWR|unix.O_CLOEXEC, 0)
}

func waitStart(fifo int) error {
	var b [1]byte
	for {
		_, err := unix.Read(fifo, b[:])
		if err != unix.EINTR {
			return err
		}
	}
}

// Init stage file descriptors (ExtraFiles of the re-exec).
const (
	fdSpec   = 3 // initConfig JSON, parent → init
	fdStatus = 4 // "ready\n" or "error …\n", init → parent; close-on-exec
	fdKeep   = 5 // first of initConfig.KeepFiles, kept by the reaper
)

// InitMain is the container's init stage, run as PID 1 of the new
// namespaces by re-exec of /proc/self/exe. It builds the container's root
// filesystem, reports ready, waits on the start fifo, drops privileges and
// execs the user process. It returns only on failure (after reporting it).
func InitMain() error {
	lockThread()
	// Ignore, from the start, the signals whose Go default would end the
	// init stage oddly: as PID 1 of its pid namespace it cannot be killed
	// by them, so Go's handler exits 2 instead (a forwarded SIGTERM while
	// still in Go). Ignoring is one sigaction each; catching them all
	// (signal.Notify) hands every signal over to Go's signal thread and
	// back, milliseconds on a loaded CPU. The reaper (--init) catches
	// every signal once it knows it is one (see initStage); otherwise
	// they are set back to their defaults just before exec.
	signal.Ignore(stageSignals...)
	status := os.NewFile(fdStatus, "status")
	unix.CloseOnExec(fdStatus)
	err := initStage(status)
	if err != nil {
		if _, werr := fmt.Fprintf(status, "error %s\n", strings.ReplaceAll(err.Error(), "\n", " ")); werr != nil {
			// Past "ready": the parent no longer listens; tell the
			// container's stderr.
			fmt.Fprintf(os.Stderr, "otok: %v\n", err)
		}
	}
	return err
}

// stageSignals are the catchable signals whose Go default action ends
// the process (exit 2 or a stack dump).
var stageSignals = []os.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGABRT, unix.SIGTERM}

// defaultStageSignals sets stageSignals back to SIG_DFL (exec keeps an
// ignored signal ignored) with raw sigactions: Go's signal package
// would first hand each to its signal thread. A zeroed struct sigaction
// is SIG_DFL with no flags and an empty mask in every architecture's
// layout.
func defaultStageSignals() error {
	var act [64]byte
	for _, sig := range stageSignals {
		if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig.(syscall.Signal)), uintptr(ptr(&act)), 0, sigsetSize, 0, 0); e != 0 {
			return fmt.Errorf("reset %v: %w", sig, e)
		}
	}
	return nil
}

func initStage(status *os.File) error {
	var cfg initConfig
	f := os.NewFile(fdSpec, "spec")
	dec := json.NewDecoder(f)
	if err := dec.Decode(&cfg); err != nil {
		return fmt.Errorf("init: read spec: %w", err)
	}
	// After the spec the parent answers the init's requests (see ask).
	answers := io.MultiReader(dec.Buffered(), f)
	ask := func(req string) (byte, error) {
		if _, err := fmt.Fprintf(status, "%s\n", req); err != nil {
			return 0, err
		}
		var b [1]byte
		for b[0] = '\n'; b[0] == '\n'; { // the encoder ends the spec with a newline
			if _, err := io.ReadFull(answers, b[:]); err != nil {
				return 0, err
			}
		}
		return b[0], nil
	}
	s := &cfg.Spec
	if s.Process.Init {
		// The reaper forwards every signal: catch them all from here.
		earlySignals = make(chan os.Signal, 32)
		signal.Notify(earlySignals)
	}
	if s.Net.Mode == NetPath {
		if err := joinNetPath(s.Net.Path); err != nil {
			return fmt.Errorf("container %s: %w", s.Name, err)
		}
	}
	if s.Net.Mode == NetNew {
		if err := loopbackUp(); err != nil {
			return fmt.Errorf("container %s: %w", s.Name, err)
		}
	}
	// The start fifo must be opened before pivot_root hides its path.
	fifo, err := openStartFifo(cfg.Dir)
	if err != nil {
		return fmt.Errorf("container %s: start fifo: %w", s.Name, err)
	}
	Tracef("init: spec read")
	root, err := setupRootfs(&cfg, ask)
	if err != nil {
		return fmt.Errorf("container %s: rootfs: %w", s.Name, err)
	}
	sys, err := setupMounts(&cfg, root, true)
	if err != nil {
		return fmt.Errorf("container %s: %w", s.Name, err)
	}
	f.Close()
	if sys != "" {
		mountCgroups(&cfg, sys)
	}
	Tracef("init: mounts done")
	path, env, err := enterRoot(s, root, "/")
	if err != nil {
		return fmt.Errorf("container %s: %w", s.Name, err)
	}
	if err := applyRlimits(s.Rlimits); err != nil {
		return fmt.Errorf("container %s: %w", s.Name, err)
	}
	Tracef("init: ready")
	// Ready: the parent may now configure the network namespace.
	if _, err := status.Write([]byte("ready\n")); err != nil {
		return fmt.Errorf("container %s: report ready: %w", s.Name, err)
	}
	if err := waitStart(fifo); err != nil {
		return fmt.Errorf("container %s: wait for start: %w", s.Name, err)
	}
	unix.Close(fifo)
	priv := privileges{caps: cfg.Caps, lastCap: cfg.LastCap, seccomp: cfg.Seccomp, seccompAdmin: cfg.SeccompAdmin, seccompReboot: s.System, noNewPrivs: !s.Privileged}
	if err := priv.apply(&s.Process); err != nil {
		return fmt.Errorf("container %s: %w", s.Name, err)
	}
	Tracef("init: exec")
	// The pids limit is already set: the parent writes it just before it
	// releases the start fifo (see applyPidsLimit).
	for i := 0; i < cfg.KeepFiles; i++ {
		unix.CloseOnExec(fdKeep + i) // the reaper's, never the workload's
	}
	if s.Process.Init {
		os.Exit(reap(path, s.Process.Args, env, s.Process.Terminal))
	}
	if err := defaultStageSignals(); err != nil {
		return fmt.Errorf("container %s: %w", s.Name, err)
	}
	err = unix.Exec(path, s.Process.Args, env)
	fmt.Fprintf(os.Stderr, "otok: container %s: exec %s: %v\n", s.Name, path, err)
	os.Exit(127)
	return nil
}

// enterRoot pivots into root (built and mounted), masks the kernel paths
// under maskPrefix unless privileged, makes / read-only if asked, sets
// the hostname, finds the command and enters its working directory. It
// returns the command's path and environment.
func enterRoot(s *Spec, root, maskPrefix string) (path string, env []string, err error) {
	if err := pivotRoot(root); err != nil {
		return "", nil, err
	}
	if !s.Privileged {
		if err := maskPathsUnder(maskPrefix); err != nil {
			return "", nil, err
		}
	}
	if s.Rootfs.ReadOnly {
		if err := remountRO("/"); err != nil {
			return "", nil, fmt.Errorf("read-only root: %w", err)
		}
	}
	hostname := s.Hostname
	if hostname == "" {
		hostname = s.Name
	}
	if err := unix.Sethostname([]byte(hostname)); err != nil {
		return "", nil, fmt.Errorf("sethostname: %w", err)
	}
	env = processEnv(s, &s.Process, hostname)
	if path, err = lookPath(s.Process.Args[0], env); err != nil {
		return "", nil, err
	}
	if err := enterCwd(&s.Process); err != nil {
		return "", nil, err
	}
	return path, env, nil
}

// processEnv is the process's environment with otok's defaults.
func processEnv(s *Spec, p *Process, hostname string) []string {
	env := []string{}
	has := map[string]bool{}
	for _, kv := range p.Env {
		k, _, _ := strings.Cut(kv, "=")
		has[k] = true
	}
	add := func(k, v string) {
		if !has[k] {
			env = append(env, k+"="+v)
		}
	}
	add("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	add("HOSTNAME", hostname)
	if p.UID == 0 {
		add("HOME", "/root")
	} else {
		add("HOME", "/")
	}
	if p.Terminal {
		add("TERM", "xterm")
	}
	if s != nil && s.System {
		add("container", "otok")
	}
	return append(env, p.Env...)
}

// lookPath finds a command in the container's PATH (after pivot_root).
func lookPath(cmd string, env []string) (string, error) {
	if strings.Contains(cmd, "/") {
		if err := executable(cmd); err != nil {
			return "", fmt.Errorf("command %s: %w", cmd, err)
		}
		return cmd, nil
	}
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, cmd)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %s: not found in the image (PATH=%s)", cmd, path)
}

func executable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return errors.New("not found in the image")
		}
		return err
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}

func enterCwd(p *Process) error {
	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if err := os.MkdirAll(cwd, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("working directory %s: %w", cwd, err)
	}
	if err := unix.Chdir(cwd); err != nil {
		return fmt.Errorf("working directory %s: %w", cwd, err)
	}
	return nil
}

// privileges is the reduction applied just before exec.
type privileges struct {
	caps         uint64
	lastCap      int
	seccomp      bool
	seccompAdmin bool
	// seccompReboot: reboot() allowed (system containers)
	seccompReboot bool
	noNewPrivs    bool
	// hostIDs: the process is not in the container's user namespace, so
	// it switches to the host ids its container ids map to (exec into a
	// userns container); it keeps no capabilities.
	userns *UserNS
}

// apply switches to the process's user and groups, reduces capabilities,
// sets no_new_privs and installs the seccomp filter, on every thread.
func (pv *privileges) apply(p *Process) error {
	uid, gid := p.UID, p.GID
	groups := p.Groups
	caps := pv.caps
	if u := pv.userns; u != nil {
		uid, gid = u.HostUID+uid, u.HostGID+gid
		for i := range groups {
			groups[i] += u.HostGID
		}
		caps = 0
	}
	// The bounding set shrinks while still root (it needs CAP_SETPCAP).
	if err := dropBounding(caps, pv.lastCap); err != nil {
		return err
	}
	if e := threadSyscall(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1, 0); e != 0 {
		return fmt.Errorf("keepcaps: %w", e)
	}
	// Thread-local like the capability calls: Go's syscall.Setuid runs
	// on every thread and spins (sched_yield) until all have, which costs
	// milliseconds on a busy CPU. Only this thread execs.
	gs := make([]uint32, len(groups))
	for i, g := range groups {
		gs[i] = uint32(g)
	}
	var gp uintptr
	if len(gs) > 0 {
		gp = uintptr(ptr(&gs[0]))
	}
	if e := threadSyscall(sysSetgroups, uintptr(len(gs)), gp, 0); e != 0 {
		return fmt.Errorf("setgroups %v: %w", groups, e)
	}
	if e := threadSyscall(sysSetresgid, uintptr(gid), uintptr(gid), uintptr(gid)); e != 0 {
		return fmt.Errorf("setgid %d: %w", gid, e)
	}
	if e := threadSyscall(sysSetresuid, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
		return fmt.Errorf("setuid %d: %w", uid, e)
	}
	// A non-root user keeps the bounding set but no effective,
	// permitted or inheritable capabilities (as with Docker).
	eff := caps
	if uid != 0 || pv.userns != nil {
		eff = 0
	}
	if err := applyCapSets(eff); err != nil {
		return err
	}
	if pv.noNewPrivs {
		if e := threadSyscall(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); e != 0 {
			return fmt.Errorf("no_new_privs: %w", e)
		}
	}
	if pv.seccomp {
		if err := installSeccomp(pv.seccompAdmin, pv.seccompReboot); err != nil {
			return err
		}
	}
	return nil
}

// earlySignals receives every signal the init stage of a reaper gets.
var earlySignals chan os.Signal

// reap runs the command as the only child of otok's minimal init: it
// forwards signals to it, reaps every zombie, and returns the child's exit
// code when it exits.
func reap(path string, args, env []string, tty bool) int {
	sigs := earlySignals
	attr := &os.ProcAttr{
		Env:   env,
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys:   &syscall.SysProcAttr{Setpgid: true, Foreground: tty, Ctty: 0},
	}
	child, err := os.StartProcess(path, args, attr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "otok init: start %s: %v\n", path, err)
		return 127
	}
	for {
		sig := <-sigs
		s, ok := sig.(syscall.Signal)
		if !ok {
			continue
		}
		if s != syscall.SIGCHLD {
			if s == syscall.SIGURG {
				continue // Go runtime preemption
			}
			syscall.Kill(child.Pid, s)
			continue
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if err != nil || pid <= 0 {
				break
			}
			if pid == child.Pid {
				return ExitCode(ws)
			}
		}
	}
}
