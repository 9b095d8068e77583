package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/otok/otok/runtime"
	"golang.org/x/sys/unix"
)

// Re-adoption. Containers do not depend on the agent process: their init
// is not killed when the agent dies (no PDEATHSIG), their output goes to a
// file on tmpfs, not to a pipe the agent holds. After `kill -9` of the
// agent, procd respawns it; the new agent reads its state file, checks
// that each recorded init is still the same process (pid and start time
// from /proc/PID/stat, so a reused pid is not mistaken for it), and
// resumes supervision: it waits on the init through a pidfd, runs health
// checks, and applies the restart policy when it exits. The exit status of
// an adopted init is not readable by a process that is not its parent: it
// is reported as unknown and counts as a failure for on-failure.

// adopt re-adopts what the state file lists. Leftovers that are not
// re-adopted are cleaned up before it returns, so that the reconcile that
// follows creates them afresh without racing their cleanup.
func (a *Agent) adopt(ctx context.Context) {
	a.removeNeverStarted(ctx)
	st := a.loadState()
	var dead []func()
	defer func() {
		for _, f := range dead {
			f()
		}
	}()
	a.mu.Lock()
	defer a.mu.Unlock()
	for n, s := range st.API {
		if s != nil && ValidName(n) && s.Name == n {
			a.api[n] = s
		}
	}
	for n, r := range st.Ctrs {
		if !ValidName(n) || r == nil {
			continue
		}
		c := &ctr{name: n, run: r.Run, img: r.Image, net: r.Net, created: r.Created, started: r.Started,
			restarts: r.Restarts, failures: r.Failures, userStopped: r.UserStopped, state: StateExited, gen: 1,
			want: r.Want, known: true}
		if r.UserStopped {
			c.state = StateStopped
		}
		a.ctrs[n] = c
		if !r.Running || r.Run == nil {
			continue
		}
		if err := checkProc(r.Proc); err != nil || a.opts.Runtime == nil {
			// died while no agent was watching: clean up, then the
			// restart policy and autostart decide (reconcile)
			c.exit = &ExitInfo{Unknown: true}
			c.state = StateExited
			// the restart policy decides, as if the agent had seen the exit
			policy := RestartPolicy{Mode: RestartNo}
			if r.Run != nil {
				policy = r.Run.Restart
			}
			c.want = r.Want && shouldRestart(policy, c.exit, false, c.failures)
			c.finished = a.clock.Now()
			dead = append(dead, func() { a.cleanupDead(c, r) })
			a.events.add(Event{Time: a.clock.Now(), Type: EvExit, Container: n, Exit: c.exit, Msg: "exited while the agent was not running"})
			continue
		}
		c.proc, c.adopted, c.state, c.want = r.Proc, true, StateRunning, true
		c.health = r.Health
		c.exited = make(chan struct{})
		if r.Run.Terminal && r.ConsoleFd > 0 {
			// the init kept a dup of the console's master: take it back
			if m, err := recoverConsole(r.Proc, r.ConsoleFd); err != nil {
				a.log.Printf("container %s: console: %v", n, err)
			} else {
				cons := &console{master: m, subs: map[chan []byte]struct{}{}, done: make(chan struct{})}
				c.console, c.consoleFd = cons, r.ConsoleFd
				a.goroutine(func() { a.pump(n, cons) })
			}
		}
		a.watchLocked(c, c.gen)
		if rs, ok := a.opts.Network.(interface{ Resume(string) }); ok && needsNetwork(r.Run) {
			rs.Resume(n)
		}
		a.log.Printf("container %s: re-adopted pid %d", n, r.Proc.Pid)
		a.events.add(Event{Time: a.clock.Now(), Type: EvAdopt, Container: n, Msg: "pid " + strconv.Itoa(r.Proc.Pid)})
	}
	a.adoptUnrecordedLocked(ctx)
}

// neverStartedChecker is implemented by runtimes that can tell a container
// created but never started (its init held before exec) from a running one.
type neverStartedChecker interface {
	NeverStarted(ctx context.Context, name string) bool
}

// NeverStarted reports whether name is created but not started: its init
// still waits on the start fifo (neverStartedChecker).
func (r *RuntimeAdapter) NeverStarted(ctx context.Context, name string) bool {
	s, err := r.R.State(name)
	return err == nil && s.Status == runtime.StatusCreated
}

// removeNeverStarted kills and deletes what a killed agent created but did
// not get to start (killed during network setup, between Create and
// Start): such an init waits forever on its start fifo, runs nothing, and
// keeps the name. Its image hold and network go too; the reconcile then
// creates the container afresh. Only agent containers are touched (a
// created container of `otok create` is the user's).
func (a *Agent) removeNeverStarted(ctx context.Context) {
	rt := a.opts.Runtime
	nc, ok := rt.(neverStartedChecker)
	if !ok {
		return
	}
	sts, err := rt.List(ctx)
	if err != nil {
		a.log.Printf("runtime: list: %v", err)
		return
	}
	for _, s := range sts {
		if !s.Agent || !ValidName(s.Name) || !nc.NeverStarted(ctx, s.Name) {
			continue
		}
		a.log.Printf("container %s: removing an instance created but never started by the previous agent", s.Name)
		_ = rt.Kill(ctx, s.Name, unix.SIGKILL)
		if a.opts.Network != nil {
			if err := a.opts.Network.Detach(ctx, s.Name); err != nil {
				a.log.Printf("container %s: network detach: %v", s.Name, err)
			}
		}
		if err := rt.Delete(ctx, s.Name); err != nil {
			a.log.Printf("container %s: delete: %v", s.Name, err)
		}
		if a.opts.Store != nil && s.Digest != "" {
			if err := a.opts.Store.Release(ctx, &Image{Name: s.Image, Digest: s.Digest}, s.Name); err != nil {
				a.log.Printf("container %s: release image: %v", s.Name, err)
			}
		}
	}
}

// adoptUnrecorded re-adopts containers an agent created but did not get to
// record (killed between create and its state write): the runtime knows
// them. Containers of `otok run -d` have their own monitor and are left
// alone. a.mu held.
func (a *Agent) adoptUnrecordedLocked(ctx context.Context) {
	if a.opts.Runtime == nil {
		return
	}
	sts, err := a.opts.Runtime.List(ctx)
	if err != nil {
		a.log.Printf("runtime: list: %v", err)
		return
	}
	for _, s := range sts {
		old := a.ctrs[s.Name]
		// a record that says "not running" is older than a live instance
		// (the agent was killed after starting it, before its state
		// write): the instance wins
		if !s.Agent || !s.Running || old != nil && old.running() || !ValidName(s.Name) || checkProc(s.Proc) != nil {
			continue
		}
		if nc, ok := a.opts.Runtime.(neverStartedChecker); ok && nc.NeverStarted(ctx, s.Name) {
			continue // not removed (see removeNeverStarted): not running either
		}
		c := old
		if c == nil {
			c = &ctr{name: s.Name, known: true, gen: 1, created: s.Created}
			a.ctrs[s.Name] = c
		}
		c.proc, c.adopted, c.state, c.want, c.err = s.Proc, true, StateRunning, true, ""
		c.exit, c.exited = nil, make(chan struct{})
		// A record written for this instance (before it showed running)
		// has its start time; one older than the instance has not.
		if c.started.Before(s.Created) {
			c.started = s.Created
		}
		if c.created.IsZero() {
			c.created = s.Created
		}
		if s.Digest != "" && (c.img == nil || c.img.Digest != s.Digest) {
			c.img = &Image{Name: s.Image, Digest: s.Digest}
		}
		a.watchLocked(c, c.gen)
		how := "not in the state file"
		if old != nil {
			how = "the state file had it stopped"
		}
		a.log.Printf("container %s: re-adopted pid %d (%s)", s.Name, s.Proc.Pid, how)
		a.events.add(Event{Time: a.clock.Now(), Type: EvAdopt, Container: s.Name, Msg: "pid " + strconv.Itoa(s.Proc.Pid) + ", unrecorded"})
	}
}

func (a *Agent) cleanupDead(c *ctr, r *ctrRecord) {
	ctx := a.ctx
	if a.opts.Network != nil && r.Run != nil && needsNetwork(r.Run) {
		_ = a.opts.Network.Detach(ctx, c.name)
	}
	if a.opts.Runtime != nil {
		_ = a.opts.Runtime.Delete(ctx, c.name)
	}
	if a.opts.Store != nil && r.Image != nil {
		_ = a.opts.Store.Release(ctx, r.Image, c.name)
	}
}

// ProcStartTime returns field 22 of /proc/PID/stat (start time in clock
// ticks after boot).
func ProcStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStatStartTime(b)
}

func parseStatStartTime(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := bytes.Fields(b[i+1:])
	// after "pid (comm)": state is field 3, starttime field 22
	if len(f) < 20 {
		return 0, errors.New("malformed /proc stat")
	}
	return strconv.ParseUint(string(f[19]), 10, 64)
}

// checkProc reports whether p is still the same live process.
func checkProc(p Proc) error {
	if p.Pid <= 0 {
		return errors.New("no pid")
	}
	st, err := ProcStartTime(p.Pid)
	if err != nil {
		return err
	}
	if p.StartTime != 0 && st != p.StartTime {
		return fmt.Errorf("pid %d was reused", p.Pid)
	}
	return nil
}

// WaitProc waits for p to exit through a pidfd (Linux ≥ 5.3); it works
// whether or not the caller is p's parent. For a child it also reaps it
// and returns its status; for another process the status is Unknown.
// Runtime adapters use it for re-adopted containers.
func WaitProc(ctx context.Context, p Proc) (*ExitInfo, error) {
	if err := waitExited(ctx, p); err != nil {
		if errors.Is(err, errNotSame) {
			return &ExitInfo{Unknown: true}, nil
		}
		return nil, err
	}
	// Readable pidfd: the process exited. A child stays a zombie until
	// reaped, so its pid cannot have been reused yet.
	var ws unix.WaitStatus
	for {
		got, err := unix.Wait4(p.Pid, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || got != p.Pid {
			return &ExitInfo{Unknown: true}, nil // not our child
		}
		return ExitFromStatus(ws), nil
	}
}

// ExitFromStatus turns a wait status into an ExitInfo.
func ExitFromStatus(ws unix.WaitStatus) *ExitInfo {
	if ws.Signaled() {
		return &ExitInfo{Code: 128 + int(ws.Signal()), Signal: unix.SignalName(ws.Signal())}
	}
	return &ExitInfo{Code: ws.ExitStatus()}
}

// errNotSame: the recorded process is gone (or its pid was reused).
var errNotSame = errors.New("not the recorded process")

// waitExited returns when p has exited (nil), ctx ends (its error), or p
// is not the recorded process (errNotSame). It waits on a pidfd (Linux ≥
// 5.3) in Go's netpoller, so a waiting container holds no OS thread and
// causes no wake-ups; where the pidfd cannot be polled that way it polls
// it every 500 ms instead.
func waitExited(ctx context.Context, p Proc) error {
	fd, err := unix.PidfdOpen(p.Pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return errNotSame
		}
		return fmt.Errorf("pidfd_open %d: %w", p.Pid, err)
	}
	f := os.NewFile(uintptr(fd), "pidfd") // owns fd; registered with the netpoller
	defer f.Close()
	if err := checkProc(p); err != nil {
		return errNotSame
	}
	exited := func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, _ := unix.Poll(fds, 0)
		return n > 0
	}
	if rc, err := f.SyscallConn(); err == nil {
		stop := context.AfterFunc(ctx, func() { _ = f.SetReadDeadline(time.Now()) })
		defer stop()
		err = rc.Read(exited)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// not pollable here: fall back below
	}
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var done bool
		if rc, err := f.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { done = exited(fd) })
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}
