package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Runtime manages the containers whose state lives under Root.
type Runtime struct {
	// Root is the state directory (tmpfs, e.g. /run/otok); containers are
	// under Root/containers/<name>/.
	Root string
	// InitArgs re-exec /proc/self/exe as the init stage: the program's
	// entry must call InitMain for these arguments (e.g. {"otok", "init"}).
	InitArgs []string
	// ExecArgs likewise for the exec stage (ExecMain).
	ExecArgs []string
	// CgroupRoot is where cgroups are mounted ("" = /sys/fs/cgroup).
	CgroupRoot string

	layoutOnce sync.Once
	layout     *CgroupLayout
	layoutErr  error
}

// IO are a process's standard streams. For a terminal, all three are the
// pty slave. nil means /dev/null.
type IO struct {
	Stdin, Stdout, Stderr *os.File
}

// CreateOptions tune Create.
type CreateOptions struct {
	IO IO
	// KillOnParentExit kills the container if the creating thread's
	// process dies (foreground `otok run`). A direct start (see
	// directStart) forks the init from the calling goroutine's thread,
	// which then stays locked to that goroutine: the init dies with it.
	KillOnParentExit bool
	// KeepFiles are kept open by the container's init for its whole life
	// (fds 5, 6, … in the init, after the spec and status pipes), never
	// passed to the workload (close-on-exec): e.g. a tty's master, which
	// a re-adopting agent takes back with pidfd_getfd. Only otok's reaper
	// (Process.Init) outlives the exec; without it they close at exec.
	KeepFiles []*os.File
}

// Container is a created container as seen by its parent process (the
// one that can Wait for it).
type Container struct {
	r    *Runtime
	Name string
	proc *os.Process // the init
	// prog is a direct start's child program: the child may share this
	// address space until it execs, so its memory stays until it is reaped.
	prog  *rawProg
	cg    cgroup
	state *State

	parked   chan struct{} // releases the thread that cloned the init
	released sync.Once
}

// release lets the cloning thread go (after the init is reaped).
func (c *Container) release() { c.released.Do(func() { close(c.parked) }) }

// initConfig travels from the parent to the init stage over a pipe.
type initConfig struct {
	Spec          Spec     `json:"spec"`
	Dir           string   `json:"dir"`
	CgroupVersion int      `json:"cgroupVersion"`
	CgroupV1      []string `json:"cgroupV1,omitempty"`
	Caps          uint64   `json:"caps"`
	LastCap       int      `json:"lastCap"`
	Seccomp       bool     `json:"seccomp"`
	SeccompAdmin  bool     `json:"seccompAdmin"`
	// KeepFiles: fds fdKeep… hold CreateOptions.KeepFiles.
	KeepFiles int `json:"keepFiles,omitempty"`

	// consoleFd is the terminal's fd in the process setting up /dev (the
	// init stage: 0).
	consoleFd int
	// netns: a direct start's new network namespace, in the making.
	netns *pendingNetNS
}

// Cgroups returns the host's cgroup layout (detected once).
func (r *Runtime) Cgroups() (*CgroupLayout, error) {
	r.layoutOnce.Do(func() {
		root := r.CgroupRoot
		if root == "" {
			root = "/sys/fs/cgroup"
		}
		r.layout, r.layoutErr = DetectCgroups(root)
	})
	return r.layout, r.layoutErr
}

func (r *Runtime) cgroupFor(name string) (cgroup, error) {
	l, err := r.Cgroups()
	if err != nil {
		return nil, err
	}
	return l.forContainer(CgroupName(r.Root, name)), nil
}

// ErrNameInUse is returned by Create for a taken name.
var ErrNameInUse = errors.New("name already in use")

// Create sets up a container up to the point where only exec of the user
// process remains: the init stage runs in new namespaces, in the cgroup,
// with its root filesystem mounted and pivoted, and waits. Between Create
// and Start the caller may configure /proc/<Pid>/ns/net.
func (r *Runtime) Create(ctx context.Context, spec *Spec, o CreateOptions) (c *Container, err error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	name := spec.Name
	caps, _ := spec.capabilities()
	layout, err := r.Cgroups()
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	if err := os.MkdirAll(r.containersDir(), 0o711); err != nil {
		return nil, fmt.Errorf("container %s: state dir: %w", name, err)
	}
	dir := r.Dir(name)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("container %s: %w", name, ErrNameInUse)
		}
		return nil, fmt.Errorf("container %s: state dir: %w", name, err)
	}
	// Held until the state is recorded: a directory without state.json
	// whose lock is free was left by a killed creator (Delete, Sweep).
	unlockCreate, err := r.lock(name)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer unlockCreate()
	Tracef("create: validated")
	cg := layout.forSpec(CgroupName(r.Root, name), spec)
	cont := &Container{r: r, Name: name, cg: cg, parked: make(chan struct{})}
	defer func() {
		if err == nil {
			return
		}
		if cont.proc != nil {
			cont.proc.Kill()
			cont.proc.Wait()
		}
		cont.release()
		cg.destroy()
		os.RemoveAll(dir)
	}()
	var netns *pendingNetNS
	if directStart(spec) && spec.Net.Mode == NetNew {
		// A new network namespace is the slowest part of a start (most
		// of a millisecond here): a helper child makes it meanwhile.
		if netns, err = newNetNS(); err != nil {
			return nil, fmt.Errorf("container %s: %w", name, err)
		}
		defer netns.close() // the container holds it by then
	}
	if err := unix.Mkfifo(filepath.Join(dir, "start.fifo"), 0o600); err != nil {
		return nil, fmt.Errorf("container %s: start fifo: %w", name, err)
	}
	if err := cg.create(spec.Resources, spec.Devices); err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	cfg := initConfig{
		Spec: *spec, Dir: dir, CgroupVersion: layout.Version, Caps: caps, LastCap: lastCap(),
		Seccomp:      !spec.Privileged && !spec.NoSeccomp,
		SeccompAdmin: caps&(1<<unix.CAP_SYS_ADMIN) != 0,
		KeepFiles:    len(o.KeepFiles),
		netns:        netns,
	}
	if v1, ok := cg.(*cgroupV1); ok {
		for _, d := range v1.paths() {
			cfg.CgroupV1 = append(cfg.CgroupV1, filepath.Base(filepath.Dir(filepath.Dir(d))))
		}
	}
	var warnings []string
	ready := func() error { return nil } // waits for the init's report
	if directStart(spec) {
		ready, err = cont.createDirect(ctx, &cfg, o)
	} else {
		warnings, err = cont.createInitStage(ctx, &cfg, o)
	}
	if err != nil {
		return nil, err
	}
	start, _ := procStart(cont.proc.Pid)
	st := &State{
		Spec: *spec, Status: StatusCreated, Pid: cont.proc.Pid, PidStart: start,
		ParentPid: os.Getpid(), Created: time.Now().UTC(), Cgroups: cg.paths(),
		CgroupVer: layout.Version, Caps: CapNames(caps), Seccomp: cfg.Seccomp,
		Warnings: warnings,
	}
	// Encoded while a direct start's init still sets itself up.
	b, err := encodeState(st)
	if err != nil {
		return nil, err
	}
	if err := ready(); err != nil {
		return nil, err
	}
	Tracef("create: init ready")
	if err := r.writeState(name, b); err != nil {
		return nil, err
	}
	cont.state = st
	return cont, nil
}

// createDirect forks the init from a thread of this process (direct.go);
// the function it returns waits until the init is ready.
func (c *Container) createDirect(ctx context.Context, cfg *initConfig, o CreateOptions) (func() error, error) {
	child, err := forkDirect(cfg, c.cg, o)
	if err != nil {
		return nil, err
	}
	c.proc, c.prog = child.proc, child.prog
	Tracef("create: init forked")
	return func() error {
		defer child.status.Close()
		if err := readDirectStatus(ctx, child); err != nil {
			return fmt.Errorf("container %s: %w", c.Name, err)
		}
		return nil
	}, nil
}

// readDirectStatus waits for a directly started init's ready record, on
// this thread (poll, to see ctx).
func readDirectStatus(ctx context.Context, child *directChild) error {
	fd := int(child.status.Fd())
	var rec [8]byte
	n := 0
	for n < len(rec) {
		if ctx.Err() != nil {
			child.proc.Kill()
			return ctx.Err()
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if k, err := unix.Poll(pfd, 100); k == 0 || err == unix.EINTR {
			continue
		} else if err != nil {
			return fmt.Errorf("init status: %w", err)
		}
		k, err := unix.Read(fd, rec[n:])
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil || k == 0 {
			return fmt.Errorf("init died before it was ready")
		}
		n += k
	}
	return child.prog.result(rec[:])
}

// createInitStage re-execs otok as the init stage (a user namespace,
// otok's reaper) and waits until it is ready.
func (c *Container) createInitStage(ctx context.Context, cfg *initConfig, o CreateOptions) ([]string, error) {
	r, spec, cg, name, dir := c.r, &cfg.Spec, c.cg, c.Name, cfg.Dir
	specR, specW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer specR.Close()
	defer specW.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer statusR.Close()
	defer statusW.Close()

	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       r.InitArgs,
		Env:        initEnv(stageInit),
		Stdin:      o.IO.Stdin,
		Stdout:     o.IO.Stdout,
		Stderr:     o.IO.Stderr,
		ExtraFiles: append([]*os.File{specR, statusW}, o.KeepFiles...),
	}
	uids, gids := spec.idMaps()
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 spec.cloneFlags(),
		Setsid:                     true,
		Setctty:                    spec.Process.Terminal,
		Ctty:                       0,
		UidMappings:                uids,
		GidMappings:                gids,
		GidMappingsEnableSetgroups: true,
	}
	if spec.UserNS != nil {
		// Become root inside the new user namespace before exec, so the
		// init stage keeps its capabilities there; it must be able to
		// open the start fifo as that (host) user.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
		// …and reach its directories: search (not read) permission for
		// others on the state and image directories.
		for _, d := range []string{r.Root, r.containersDir(), filepath.Dir(spec.Rootfs.Path)} {
			if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o001 == 0 {
				os.Chmod(d, st.Mode().Perm()|0o011)
			}
		}
		if err := os.Chown(filepath.Join(dir, "start.fifo"), spec.UserNS.HostUID, spec.UserNS.HostGID); err != nil {
			return nil, fmt.Errorf("container %s: start fifo: %w", name, err)
		}
	}
	if o.KillOnParentExit {
		cmd.SysProcAttr.Pdeathsig = unix.SIGKILL
	}
	// The init is born in its cgroup (so its cgroup namespace, from the
	// clone, is rooted there): v2 clones into the cgroup directly
	// (CLONE_INTO_CGROUP); v1 moves the cloning thread into the cgroup
	// first, which, done by the thread itself, takes no global lock (a
	// cgroup.procs write waits for an RCU grace period, ~10 ms on a busy
	// CPU), and moves it back after the clone.
	if fd, err := cgroupFD(cg); err == nil && fd >= 0 {
		defer unix.Close(fd)
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = fd
	}
	started := make(chan error, 1)
	parked := c.parked // closed when the cloning thread may go
	go func() {
		// With Pdeathsig the init is killed when the *thread* that cloned
		// it exits: that thread stays parked until the init is reaped.
		lockThread()
		back, err := cg.enterThread()
		if err != nil {
			started <- err
			return // the locked thread exits, leaving any cgroup it joined
		}
		err = cmd.Start()
		if back() != nil {
			started <- err
			<-parked
			return // could not move back: let the thread die
		}
		started <- err
		if err == nil && o.KillOnParentExit {
			<-parked
		}
		unlockThread()
	}()
	err = <-started
	if err != nil {
		return nil, fmt.Errorf("container %s: start init: %w", name, err)
	}
	c.proc = cmd.Process
	specR.Close()
	statusW.Close()
	Tracef("create: init cloned")
	if err := json.NewEncoder(specW).Encode(cfg); err != nil {
		return nil, fmt.Errorf("container %s: send spec: %w", name, err)
	}
	Tracef("create: spec sent")
	// The init may ask for an idmapped image ("lower <target>"); the
	// answer goes back on the spec pipe: 'L' attached, 'N' use it as is.
	var warnings []string
	err = readStatus(ctx, statusR, cmd.Process, func(req string) {
		target, ok := strings.CutPrefix(req, "lower ")
		answer := []byte{'N'}
		if ok {
			if err := attachIDMappedLower(cmd.Process.Pid, spec.Rootfs.Path, target); err == nil {
				answer[0] = 'L'
			} else {
				// Older kernels cannot idmap every filesystem (squashfs
				// before 6.x): the container runs, but the image's files
				// keep their host owners (nobody inside).
				warnings = append(warnings, fmt.Sprintf("user namespace: cannot idmap the image (%v): its files stay owned by their host ids (nobody in the container)", err))
			}
		}
		specW.Write(answer)
	})
	specW.Close()
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	return warnings, nil
}

// cgroupFD returns a v2 cgroup directory fd for CLONE_INTO_CGROUP, or -1.
func cgroupFD(cg cgroup) (int, error) {
	if v2, ok := cg.(*cgroupV2); ok {
		return v2.joinThread()
	}
	return -1, nil
}

// readStatus waits for the init stage's "ready" line or its error; other
// lines are requests for the parent, passed to ask.
func readStatus(ctx context.Context, r *os.File, p *os.Process, ask func(string)) error {
	type res struct {
		line string
		err  error
	}
	ch := make(chan res, 1)
	br := bufio.NewReader(r)
	for {
		go func() {
			line, err := br.ReadString('\n')
			ch <- res{line, err}
		}()
		var x res
		select {
		case <-ctx.Done():
			p.Kill()
			return ctx.Err()
		case x = <-ch:
		}
		line := strings.TrimSpace(x.line)
		switch {
		case line == "ready":
			return nil
		case strings.HasPrefix(line, "error "):
			return errors.New(strings.TrimPrefix(line, "error "))
		case x.err != nil:
			return fmt.Errorf("init stage died before it was ready")
		case strings.HasPrefix(line, "lower "):
			ask(line)
		default:
			return fmt.Errorf("init stage: unexpected %q", line)
		}
	}
}

// Pid is the container init's pid in the host's pid namespace.
func (c *Container) Pid() int { return c.proc.Pid }

// State is the state recorded at creation.
func (c *Container) State() *State { return c.state }

// Start lets the created container exec its process.
func (c *Container) Start(ctx context.Context) error {
	st := *c.state // as recorded by Create, which this process ran
	return c.r.start(ctx, c.Name, &st)
}

// Start releases a created container's init (waiting on its start fifo).
func (r *Runtime) Start(ctx context.Context, name string) error { return r.start(ctx, name, nil) }

// start does it with the recorded state, or s if the caller has it.
func (r *Runtime) start(ctx context.Context, name string, s *State) error {
	unlock, err := r.lock(name)
	if err != nil {
		return err
	}
	defer unlock()
	if s == nil {
		if s, err = r.load(name); err != nil {
			return err
		}
	}
	if s.Status != StatusCreated {
		return fmt.Errorf("container %s: is %s, not created", name, s.Status)
	}
	// The pids limit, from here: the init stage cannot set it (v2).
	if err := r.applyPidsLimit(s); err != nil {
		return fmt.Errorf("container %s: %w", name, err)
	}
	// The init reads one byte from the start fifo (see openStartFifo).
	fifo := filepath.Join(r.Dir(name), "start.fifo")
	fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENXIO) || err == nil && !s.alive() {
		if err == nil {
			unix.Close(fd)
		}
		return fmt.Errorf("container %s: init exited before start", name)
	}
	if err != nil {
		return fmt.Errorf("container %s: open start fifo: %w", name, err)
	}
	_, err = unix.Write(fd, []byte{0})
	unix.Close(fd)
	if err != nil {
		if errors.Is(err, unix.EPIPE) {
			return fmt.Errorf("container %s: init exited before start", name)
		}
		return fmt.Errorf("container %s: release start fifo: %w", name, err)
	}
	Tracef("start: released")
	os.Remove(fifo)
	s.Status = StatusRunning
	s.Started = time.Now().UTC()
	return r.save(s)
}

// ExitCode maps a wait status to a shell-style code: the exit status, or
// 128+N for a process killed by signal N.
func ExitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// Wait waits for the container's init to exit, records the exit (code,
// OOM kill) and removes the cgroup. Only the creating process can Wait.
func (c *Container) Wait(ctx context.Context) (*State, error) { return c.wait(ctx, false) }

// WaitRemove is Wait followed by Delete, for a container that goes with
// its command (run --rm): the exit is reported but never recorded, and the
// state directory is removed with the cgroup. The caller releases what it
// attached (image, network) as after Delete.
func (c *Container) WaitRemove(ctx context.Context) (*State, error) { return c.wait(ctx, true) }

func (c *Container) wait(ctx context.Context, remove bool) (*State, error) {
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			c.proc.Kill()
		case <-done:
		}
	}()
	ps, werr := c.proc.Wait()
	goruntime.KeepAlive(c.prog)
	c.prog = nil
	close(done)
	c.release()
	Tracef("wait: init exited")
	code := -1
	reason := ""
	if ps != nil {
		ws := ps.Sys().(syscall.WaitStatus)
		code = ExitCode(ws)
		if ws.Signaled() {
			reason = "killed by " + unix.SignalName(ws.Signal())
		} else {
			reason = fmt.Sprintf("exited with %d", ws.ExitStatus())
		}
	} else if werr != nil {
		reason = werr.Error()
	}
	oom := c.cg.oomKilled()
	if oom {
		reason = "OOM killed (memory limit)"
	}
	if remove {
		// The cgroup and the state directory go at the same time: both
		// wait on the kernel (a memory cgroup's rmdir most).
		cgDone := make(chan error, 1)
		go func() { cgDone <- c.cg.destroy() }()
		unlock, err := c.r.lock(c.Name)
		if err != nil {
			return c.stopped(code, oom, reason), <-cgDone // removed meanwhile (rm -f)
		}
		defer unlock()
		rmErr := c.r.removeDir(c.Name)
		Tracef("wait: state removed")
		cgErr := <-cgDone
		Tracef("wait: cgroup removed")
		return c.stopped(code, oom, reason), errors.Join(cgErr, rmErr)
	}
	unlock, err := c.r.lock(c.Name)
	if err != nil {
		// Removed meanwhile (rm -f): report what we saw.
		return c.stopped(code, oom, reason), c.cg.destroy()
	}
	defer unlock()
	st, err := c.r.load(c.Name)
	if err != nil {
		st = c.state
	}
	st.Status = StatusStopped
	st.ExitCode = code
	st.OOMKilled = oom
	st.ExitReason = reason
	st.Finished = time.Now().UTC()
	// The exit is recorded before the cgroup goes: removing a v2 cgroup
	// can take seconds on a slow router (EBUSY until the kernel lets go
	// of it), and a reader in the meantime saw a dead init without a
	// record ("init gone", exit -1: mipsel guest). The cgroup goes under
	// the lock, so a re-create of the container cannot race with it.
	saveErr := c.r.save(st)
	cgErr := c.cg.destroy()
	Tracef("wait: cgroup removed")
	return st, errors.Join(saveErr, cgErr)
}

// stopped is the container's last state with its exit, unrecorded.
func (c *Container) stopped(code int, oom bool, reason string) *State {
	st := *c.state
	st.Status, st.ExitCode, st.OOMKilled, st.ExitReason = StatusStopped, code, oom, reason
	st.Finished = time.Now().UTC()
	return &st
}

// Kill sends sig to the container's init.
func (r *Runtime) Kill(name string, sig syscall.Signal) error {
	s, err := r.State(name)
	if err != nil {
		return err
	}
	if !s.Alive() {
		return fmt.Errorf("container %s: not running", name)
	}
	if err := unix.Kill(s.Pid, sig); err != nil {
		return fmt.Errorf("container %s: kill %s: %w", name, unix.SignalName(sig), err)
	}
	return nil
}

// Stop sends the stop signal, waits up to timeout for the init to exit,
// then kills it. It returns when the init is gone.
func (r *Runtime) Stop(ctx context.Context, name string, timeout time.Duration) error {
	s, err := r.State(name)
	if err != nil {
		return err
	}
	if !s.Alive() {
		return nil
	}
	if s.Status == StatusCreated {
		timeout = 0 // nothing runs yet
	} else if err := unix.Kill(s.Pid, s.Spec.stopSignal()); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("container %s: stop: %w", name, err)
	}
	if waitExit(ctx, s, timeout) {
		return nil
	}
	if err := unix.Kill(s.Pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("container %s: kill: %w", name, err)
	}
	if !waitExit(ctx, s, 10*time.Second) {
		return fmt.Errorf("container %s: init %d survived SIGKILL", name, s.Pid)
	}
	return nil
}

// waitExit waits until s's init has exited (is a zombie or gone).
func waitExit(ctx context.Context, s *State, timeout time.Duration) bool {
	fd, err := unix.PidfdOpen(s.Pid, 0)
	deadline := time.Now().Add(timeout)
	if err == nil {
		defer unix.Close(fd)
	}
	for {
		if !s.alive() {
			return true
		}
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return false
		}
		if fd >= 0 && err == nil {
			ms := int(left / time.Millisecond)
			if ms > 100 {
				ms = 100
			}
			unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
		} else {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// Delete removes a stopped container: its cgroup and state directory. With
// force a running container is killed first. It returns the last state so
// the caller can release what it attached (image mount, network).
func (r *Runtime) Delete(ctx context.Context, name string, force bool) (*State, error) {
	s, err := r.State(name)
	if errors.Is(err, ErrNotFound) && ValidName(name) {
		if _, serr := os.Stat(r.Dir(name)); serr == nil {
			return r.deleteHalfCreated(ctx, name, force, err)
		}
	}
	if err != nil {
		return nil, err
	}
	if s.Alive() {
		// A created container runs nothing yet: remove it like a stopped one.
		if !force && s.Status != StatusCreated {
			return nil, fmt.Errorf("container %s: is %s (stop it first, or rm -f)", name, s.Status)
		}
		unix.Kill(s.Pid, unix.SIGKILL)
		if !waitExit(ctx, s, 10*time.Second) {
			return nil, fmt.Errorf("container %s: init %d survived SIGKILL", name, s.Pid)
		}
	}
	Tracef("delete: state read")
	unlock, err := r.lock(name)
	if err != nil {
		return nil, err
	}
	defer unlock()
	Tracef("delete: locked")
	var errs []error
	if cg, err := r.cgroupFor(name); err == nil {
		if err := cg.destroy(); err != nil {
			errs = append(errs, err)
		}
	}
	Tracef("delete: cgroups gone")
	if err := r.removeDir(name); err != nil {
		errs = append(errs, err)
	}
	return s, errors.Join(errs...)
}

// removeDir removes a container's state directory. The container's parent
// (a monitor) may still be writing its last record; it retries briefly.
func (r *Runtime) removeDir(name string) error {
	var err error
	for i := 0; i < 100; i++ {
		if err = os.RemoveAll(r.Dir(name)); err == nil {
			return nil
		}
		Tracef("delete: remove state: %v", err)
		time.Sleep(2 * time.Millisecond)
	}
	return fmt.Errorf("container %s: remove state: %w", name, err)
}

// deleteHalfCreated removes a state directory without state.json: once
// its lock is free no Create is running, so it was left by a creator killed
// before the init was ready (its cgroup and any init still in it go too).
func (r *Runtime) deleteHalfCreated(ctx context.Context, name string, force bool, notFound error) (*State, error) {
	unlock, err := r.lock(name) // waits for a Create in progress
	if err != nil {
		return nil, notFound
	}
	if _, err := r.load(name); err == nil {
		unlock() // the Create finished meanwhile
		return r.Delete(ctx, name, force)
	}
	defer unlock()
	var errs []error
	if cg, err := r.cgroupFor(name); err == nil {
		if err := cg.destroy(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(r.Dir(name)); err != nil {
		errs = append(errs, fmt.Errorf("container %s: remove state: %w", name, err))
	}
	return nil, errors.Join(errs...)
}

// Stats returns the container's cgroup counters.
func (r *Runtime) Stats(name string) (*CgroupStats, error) {
	s, err := r.State(name)
	if err != nil {
		return nil, err
	}
	cg, err := r.cgroupFor(name)
	if err != nil {
		return nil, err
	}
	st, err := cg.stats()
	if err != nil {
		return nil, fmt.Errorf("container %s: stats: %w", name, err)
	}
	_ = s
	return &st, nil
}

// Sweep finds containers whose init and parent are both gone without the
// exit being recorded (the parent was killed), records them as stopped and
// removes their cgroups; it also removes half-created state directories.
// It returns the names it changed.
func (r *Runtime) Sweep(ctx context.Context) ([]string, error) {
	ents, err := os.ReadDir(r.containersDir())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var swept []string
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if !e.IsDir() || !ValidName(name) {
			continue
		}
		s, err := r.load(name)
		if err != nil {
			// No state.json: Create was interrupted, or runs. A running
			// Create holds the lock; give one a moment to take it.
			if info, ierr := e.Info(); ierr == nil && time.Since(info.ModTime()) > 2*time.Second && !r.lockHeld(name) {
				if cg, cerr := r.cgroupFor(name); cerr == nil {
					cg.destroy()
				}
				os.RemoveAll(r.Dir(name))
				swept = append(swept, name)
			}
			continue
		}
		if s.Status == StatusStopped || s.alive() || pidAlive(s.ParentPid, 0) && s.ParentPid != os.Getpid() {
			continue
		}
		unlock, err := r.lock(name)
		if err != nil {
			continue
		}
		// Again under the lock: the parent records the exit under it and
		// then exits, possibly between the read above and the look at
		// it; a record read now is final (do not overwrite it as lost).
		if s, err = r.load(name); err != nil || s.Status == StatusStopped || s.alive() || pidAlive(s.ParentPid, 0) && s.ParentPid != os.Getpid() {
			unlock()
			continue
		}
		if cg, cerr := r.cgroupFor(name); cerr == nil {
			if err := cg.destroy(); err != nil {
				errs = append(errs, err)
			}
		}
		s.Status = StatusStopped
		s.ExitCode = -1
		s.ExitReason = "lost: otok was killed while the container ran"
		s.Finished = time.Now().UTC()
		r.save(s)
		unlock()
		swept = append(swept, name)
	}
	return swept, errors.Join(errs...)
}

// lockHeld reports whether another process holds the container's lock.
func (r *Runtime) lockHeld(name string) bool {
	f, err := os.OpenFile(filepath.Join(r.Dir(name), "lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return false
	}
	defer f.Close()
	return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil
}

// lockThread pins the calling goroutine to its OS thread for good: the
// thread is discarded when the goroutine exits.
func lockThread() { goruntime.LockOSThread() }

func unlockThread() { goruntime.UnlockOSThread() }
