package agent

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Supervision. Restart policies are docker's:
//
//	no              never restart
//	on-failure[:N]  restart after a non-zero exit, a signal or an OOM kill,
//	                at most N times in a row (0: no limit)
//	always          restart after any exit, unless stopped through the API
//	unless-stopped  like always; a container stopped through the API also
//	                stays stopped across agent restarts (until reboot, as
//	                agent state lives on tmpfs)
//
// Restarts back off exponentially: 1 s after the first exit, doubling on
// each consecutive one, capped at 5 min; a container that ran 10 min
// counts as healthy and its next failure starts again at 1 s. While a
// restart is pending the container's state is "restarting" and ps shows
// when the next try is due. Compare procd's respawn (threshold 3600 s,
// timeout 5 s, retry 5): procd restarts after a fixed delay and gives up
// after N quick crashes; otok never gives up under always/unless-stopped
// but waits longer and longer, so a crash-looping container costs at most
// one start every 5 minutes.
const (
	BackoffMin   = time.Second
	BackoffMax   = 5 * time.Minute
	BackoffReset = 10 * time.Minute
)

// backoffDelay is the wait before restart number n (n ≥ 1) of a crash loop.
func backoffDelay(n int) time.Duration {
	d := BackoffMin
	for i := 1; i < n; i++ {
		d *= 2
		if d >= BackoffMax {
			return BackoffMax
		}
	}
	return d
}

// shouldRestart applies the policy to an exit. stopped: the exit was asked
// for (stop, remove, shutdown). failures: consecutive restarts so far.
func shouldRestart(p RestartPolicy, exit *ExitInfo, stopped bool, failures int) bool {
	if stopped {
		return false
	}
	switch p.Mode {
	case RestartAlways, RestartUnlessStopped:
		return true
	case RestartOnFailure:
		return exit.Failed() && (p.MaxRetries == 0 || failures < p.MaxRetries)
	}
	return false
}

// ctr is one container as the agent tracks it. All fields are guarded by
// Agent.mu; busy serialises lifecycle operations (runtime calls happen with
// the lock released and busy set).
type ctr struct {
	name string
	spec *ContainerSpec // desired
	run  *ContainerSpec // what the current/last instance was created with
	img  *Image

	want        bool // should be running
	userStopped bool // stopped through the API (unless-stopped keeps it)
	stopping    bool // the current instance's exit was asked for

	state, health, err string
	proc               Proc
	net                *NetInfo
	created, started   time.Time
	finished           time.Time
	exit               *ExitInfo
	restarts           int // restarts done by supervision
	failures           int // consecutive, for backoff and on-failure:N
	nextRestart        time.Time
	restartTimer       Timer
	busy               string
	adopted            bool
	gen                uint64        // instance number; stale callbacks compare it
	exited             chan struct{} // closed when the current instance has exited
	healthFails        int
	healthTimer        Timer
	waiting            bool           // a start is waiting for dependencies
	lastErr            string         // last start error reported as an event
	known              bool           // restored from the state file: want is what it was
	killSig            syscall.Signal // last signal sent by the kill op to this instance (0: none)
	console            *console       // tty: the current instance's pty master (console.go)
	consoleFd          int            // tty: where the init keeps a dup of the master (0: nowhere)
}

func (c *ctr) running() bool {
	return c.state == StateRunning || c.state == StateStarting || c.state == StateStopping
}

// acquireLocked marks c busy with op or returns a conflict.
func (c *ctr) acquireLocked(op string) error {
	if c.busy != "" {
		return Errorf(CodeConflict, "container %s: busy (%s in progress)", c.name, c.busy)
	}
	c.busy = op
	return nil
}

// setState records a state change and wakes waiters; a.mu held.
func (a *Agent) setStateLocked(c *ctr, state, errMsg string) {
	c.state, c.err = state, errMsg
	a.dirty = true
	a.notifyLocked()
}

// startCtr creates and starts an instance of c. c must be acquired (busy)
// by the caller; startCtr releases it, in the same critical section that
// records the outcome, so nobody sees "running" while c is still busy.
// Errors are recorded on c and returned.
func (a *Agent) startCtr(ctx context.Context, c *ctr) (err error) {
	a.mu.Lock()
	spec := c.spec.Clone()
	c.gen++
	gen := c.gen
	c.stopping = false
	c.killSig = 0
	if c.restartTimer != nil {
		c.restartTimer.Stop()
		c.restartTimer = nil
	}
	c.nextRestart = time.Time{}
	a.setStateLocked(c, StateStarting, "")
	a.mu.Unlock()

	defer func() {
		if err != nil {
			a.mu.Lock()
			repeat := c.lastErr == err.Error()
			c.lastErr = err.Error()
			c.busy = ""
			if c.gen == gen {
				switch code := CodeOf(err); {
				case code == CodeUnavailable || code == CodeNotFound:
					// retried when an image or port appears (and every
					// RetryInterval)
					a.setStateLocked(c, StateWaiting, err.Error())
				case code != CodeInvalid && c.want && !a.closing && a.ctx.Err() == nil && c.spec != nil &&
					shouldRestart(c.spec.Restart, &ExitInfo{Unknown: true}, false, c.failures):
					// a failed start counts as a crash: the restart policy
					// retries it on the same backoff
					c.failures++
					d := backoffDelay(c.failures)
					c.nextRestart = a.clock.Now().Add(d)
					a.setStateLocked(c, StateRestarting, err.Error())
					c.restartTimer = a.clock.AfterFunc(d, func() { a.goroutine(func() { a.supervisedStart(c, gen) }) })
				default:
					a.setStateLocked(c, StateError, err.Error())
				}
			}
			a.mu.Unlock()
			if !repeat {
				a.event(Event{Type: EvError, Container: c.name, Msg: err.Error()})
			}
		}
	}()
	rt, st := a.opts.Runtime, a.opts.Store
	if rt == nil {
		return Errorf(CodeUnavailable, "container %s: no container runtime in this build", c.name)
	}
	if st == nil {
		return Errorf(CodeUnavailable, "container %s: no image store", c.name)
	}
	img, err := st.Resolve(ctx, spec.Image)
	if err != nil {
		return wrapCode(CodeNotFound, err, "container %s: image %s", c.name, spec.Image)
	}
	rootfs, err := st.Mount(ctx, img, c.name)
	if err != nil {
		return wrapCode(CodeUnavailable, err, "container %s: mount image %s", c.name, spec.Image)
	}
	release := func() { _ = st.Release(context.WithoutCancel(ctx), img, c.name) }
	upper := ""
	if spec.Persistent {
		if upper, err = a.preparePersistent(ctx, c.name); err != nil {
			release()
			return err
		}
	}
	var master, slave *os.File
	if spec.Terminal {
		if master, slave, err = openPty(); err != nil {
			release()
			return wrapCode(CodeInternal, err, "container %s: console", c.name)
		}
	}
	_ = rt.Delete(ctx, c.name) // leftovers of an instance that died with a previous agent
	rs := &RunSpec{Spec: spec, Image: img, Rootfs: rootfs, LogPath: a.logPath(c.name), StateDir: a.stateDir(),
		UpperDir: upper, Console: slave, ConsoleMaster: master}
	p, err := rt.Create(ctx, rs)
	if slave != nil {
		slave.Close() // the init has it
	}
	if err != nil {
		if master != nil {
			master.Close()
		}
		release()
		return wrapCode(CodeInternal, err, "container %s: create", c.name)
	}
	var cons *console
	if master != nil {
		// pump from now on: the init may write before it is started
		cons = &console{master: master, subs: map[chan []byte]struct{}{}, done: make(chan struct{})}
		a.goroutine(func() { a.pump(c.name, cons) })
	}
	undo := func() {
		bg := context.WithoutCancel(ctx)
		_ = rt.Kill(bg, c.name, syscall.SIGKILL)
		wctx, cancel := context.WithTimeout(bg, 5*time.Second)
		_, _ = rt.Wait(wctx, c.name, p)
		cancel()
		if a.opts.Network != nil {
			_ = a.opts.Network.Detach(bg, c.name)
		}
		_ = rt.Delete(bg, c.name)
		release()
	}
	var ni *NetInfo
	if needsNetwork(spec) {
		if a.opts.Network == nil {
			undo()
			return Errorf(CodeUnavailable, "container %s: net %s: no network support in this build", c.name, spec.Net)
		}
		if ni, err = a.opts.Network.Attach(ctx, spec, p); err != nil {
			undo()
			return wrapCode(CodeUnavailable, err, "container %s: network", c.name)
		}
	}
	if err := rt.Start(ctx, c.name); err != nil {
		undo()
		return wrapCode(CodeInternal, err, "container %s: start", c.name)
	}
	a.mu.Lock()
	c.run, c.img, c.proc, c.net, c.console, c.consoleFd = spec, img, p, ni, cons, rs.ConsoleKeptFd
	c.started = a.clock.Now()
	if c.created.IsZero() {
		c.created = c.started
	}
	c.exit, c.adopted = nil, false
	c.exited = make(chan struct{})
	c.health, c.healthFails = "", 0
	if spec.Health != nil {
		c.health = HealthStarting
	}
	c.lastErr = ""
	a.dirty = true
	a.mu.Unlock()
	// Record the instance (still "starting") before anyone can see it
	// running: an agent killed right after a client saw "running" must
	// find it in the state file, with its start time, not adopt it as an
	// unrecorded stranger.
	a.saveState()
	a.mu.Lock()
	c.busy = ""
	a.setStateLocked(c, StateRunning, "")
	a.watchLocked(c, gen)
	a.mu.Unlock()
	a.event(Event{Type: EvStart, Container: c.name, Image: img.Digest, Msg: "pid " + strconv.Itoa(p.Pid), State: StateRunning})
	return nil
}

func needsNetwork(s *ContainerSpec) bool {
	switch s.Net {
	case "", "none", "host":
		return false
	}
	return true
}

// wrapCode keeps err's code if it has one, else uses code.
func wrapCode(code Code, err error, format string, a ...any) error {
	if c := CodeOf(err); c != CodeInternal {
		code = c
	}
	return &Error{Code: code, Msg: fmt.Sprintf(format, a...) + ": " + err.Error()}
}

// watchLocked starts the goroutine that waits for instance gen of c to
// exit, and its health checks; a.mu held.
func (a *Agent) watchLocked(c *ctr, gen uint64) {
	p := c.proc
	a.goroutine(func() {
		exit, err := a.opts.Runtime.Wait(a.ctx, c.name, p)
		if a.ctx.Err() != nil {
			return // the agent is going away without stopping containers
		}
		if err != nil {
			exit = &ExitInfo{Unknown: true}
			a.log.Printf("container %s: wait: %v", c.name, err)
		}
		a.onExit(c, gen, exit)
	})
	if c.run != nil && c.run.Health != nil {
		a.scheduleHealthLocked(c, gen, c.run.Health.Interval)
	}
}

// onExit cleans up after instance gen of c exited and applies the restart
// policy.
func (a *Agent) onExit(c *ctr, gen uint64, exit *ExitInfo) {
	ctx := a.ctx
	a.mu.Lock()
	if c.gen != gen {
		a.mu.Unlock()
		return
	}
	detach := a.opts.Network != nil && c.run != nil && needsNetwork(c.run)
	img := c.img
	a.mu.Unlock()
	if detach {
		if err := a.opts.Network.Detach(ctx, c.name); err != nil {
			a.log.Printf("container %s: network detach: %v", c.name, err)
		}
	}
	if err := a.opts.Runtime.Delete(ctx, c.name); err != nil {
		a.log.Printf("container %s: delete: %v", c.name, err)
	}
	// Release this instance's image hold before anyone waiting on c.exited
	// (a restart) can take a new one: holds are keyed by container name, so
	// a late release would drop the next instance's hold.
	a.mu.Lock()
	current := c.gen == gen
	a.mu.Unlock()
	if current && img != nil && a.opts.Store != nil {
		if err := a.opts.Store.Release(ctx, img, c.name); err != nil {
			a.log.Printf("container %s: release image: %v", c.name, err)
		}
	}
	a.mu.Lock()
	if c.gen != gen {
		a.mu.Unlock()
		return
	}
	now := a.clock.Now()
	ran := now.Sub(c.started)
	c.exit, c.finished, c.proc, c.net, c.console, c.consoleFd = exit, now, Proc{}, nil, nil, 0
	if c.healthTimer != nil {
		c.healthTimer.Stop()
		c.healthTimer = nil
	}
	if c.exited != nil {
		close(c.exited)
	}
	if ran >= BackoffReset {
		c.failures = 0
	}
	policy := RestartPolicy{Mode: RestartNo}
	if c.spec != nil {
		policy = c.spec.Restart
	}
	killed := killedByUser(c, exit)
	if killed {
		c.userStopped = true // as docker kill: a manual stop
	}
	stopped := c.stopping || !c.want || a.closing || killed
	restart := shouldRestart(policy, exit, stopped, c.failures)
	var evs []Event
	evs = append(evs, Event{Type: EvExit, Container: c.name, Exit: exit})
	switch {
	case restart:
		c.failures++
		c.restarts++
		d := backoffDelay(c.failures)
		c.nextRestart = now.Add(d)
		a.setStateLocked(c, StateRestarting, "")
		g := c.gen
		c.restartTimer = a.clock.AfterFunc(d, func() { a.goroutine(func() { a.supervisedStart(c, g) }) })
		evs = append(evs, Event{Type: EvRestart, Container: c.name, Msg: fmt.Sprintf("restart %d in %s (%s)", c.restarts, d, policy)})
	case stopped:
		if !a.closing {
			c.want = false
		}
		a.setStateLocked(c, StateStopped, "")
	default:
		if policy.Mode == RestartOnFailure && exit.Failed() {
			evs = append(evs, Event{Type: EvGiveUp, Container: c.name, Msg: fmt.Sprintf("%s: %d restarts, giving up", policy, c.failures)})
		}
		c.want = false // until started again (API, or the next boot)
		a.setStateLocked(c, StateExited, "")
	}
	a.mu.Unlock()
	for _, e := range evs {
		a.event(e)
	}
	a.saveState()
}

// supervisedStart is a restart due after backoff.
func (a *Agent) supervisedStart(c *ctr, gen uint64) {
	a.mu.Lock()
	if a.ctx.Err() != nil || a.closing || c.gen != gen || !c.want || c.state != StateRestarting {
		a.mu.Unlock()
		return
	}
	c.restartTimer = nil
	if c.acquireLocked("restart") != nil {
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	_ = a.startCtr(a.ctx, c) // a failure schedules the next try itself
}

// stopCtr stops c's running instance: its stop signal, then SIGKILL after
// timeout. user: asked through the API (unless-stopped remembers it).
// During Shutdown what c wants is kept, so the next agent (procd restart,
// upgrade) starts it again.
func (a *Agent) stopCtr(ctx context.Context, c *ctr, timeout time.Duration, user bool) error {
	a.mu.Lock()
	if !a.closing {
		c.want = false
	}
	if user {
		c.userStopped = true
		a.dirty = true
	}
	if c.restartTimer != nil {
		c.restartTimer.Stop()
		c.restartTimer = nil
	}
	switch c.state {
	case StateRestarting, StateWaiting, StateError, StateCreated:
		c.nextRestart = time.Time{}
		a.setStateLocked(c, StateStopped, c.err)
		a.mu.Unlock()
		return nil
	}
	if !c.running() {
		a.mu.Unlock()
		return nil
	}
	if err := c.acquireLocked("stop"); err != nil {
		a.mu.Unlock()
		return err
	}
	c.stopping = true
	exited := c.exited
	sig := syscall.SIGTERM
	if c.run != nil && c.run.System {
		sig = syscall.SIGPWR
	}
	a.setStateLocked(c, StateStopping, "")
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		c.busy = ""
		a.notifyLocked()
		a.mu.Unlock()
	}()
	a.event(Event{Type: EvStop, Container: c.name, Msg: fmt.Sprintf("%s, SIGKILL after %s", sigName(sig), timeout)})
	if err := a.opts.Runtime.Kill(ctx, c.name, sig); err != nil {
		a.log.Printf("container %s: %s: %v", c.name, sigName(sig), err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-exited:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	if err := a.opts.Runtime.Kill(context.WithoutCancel(ctx), c.name, syscall.SIGKILL); err != nil {
		a.log.Printf("container %s: SIGKILL: %v", c.name, err)
	}
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
		return Errorf(CodeTimeout, "container %s: did not exit after SIGKILL", c.name)
	}
}

func sigName(s syscall.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGPWR:
		return "SIGPWR"
	}
	if n := unix.SignalName(s); n != "" {
		return n
	}
	return "signal " + strconv.Itoa(int(s))
}

func exitString(e *ExitInfo) string {
	switch {
	case e == nil:
		return ""
	case e.Unknown:
		return "(exit status unknown)"
	case e.OOM:
		return "(out of memory, killed)"
	case e.Signal != "":
		return "(killed by " + e.Signal + ")"
	}
	return "(code " + strconv.Itoa(e.Code) + ")"
}

// Health checks.

func (a *Agent) scheduleHealthLocked(c *ctr, gen uint64, d time.Duration) {
	c.healthTimer = a.clock.AfterFunc(d, func() { a.goroutine(func() { a.healthCheck(c, gen) }) })
}

func (a *Agent) healthCheck(c *ctr, gen uint64) {
	a.mu.Lock()
	if a.ctx.Err() != nil || c.gen != gen || c.state != StateRunning || c.run == nil || c.run.Health == nil {
		a.mu.Unlock()
		return
	}
	h := *c.run.Health
	ni := c.net
	hostNet := c.run.Net == "host"
	a.mu.Unlock()

	ctx, cancel := context.WithTimeout(a.ctx, h.Timeout)
	var err error
	if len(h.Exec) > 0 {
		var code int
		code, err = a.opts.Runtime.Exec(ctx, c.name, h.Exec)
		if err == nil && code != 0 {
			err = fmt.Errorf("exit code %d", code)
		}
	} else {
		err = tcpCheck(ctx, ni, hostNet, h.TCPPort)
	}
	cancel()

	a.mu.Lock()
	if c.gen != gen || c.state != StateRunning {
		a.mu.Unlock()
		return
	}
	var ev *Event
	restart := false
	if err == nil {
		c.healthFails = 0
		if c.health != HealthHealthy {
			c.health = HealthHealthy
			ev = &Event{Type: EvHealth, Container: c.name, Health: HealthHealthy}
		}
	} else {
		c.healthFails++
		if c.healthFails >= h.Retries && c.health != HealthUnhealthy {
			c.health = HealthUnhealthy
			ev = &Event{Type: EvHealth, Container: c.name, Health: HealthUnhealthy, Msg: err.Error()}
			restart = h.Restart
		}
	}
	a.dirty = true
	a.notifyLocked()
	if !restart {
		a.scheduleHealthLocked(c, gen, h.Interval)
	}
	a.mu.Unlock()
	if ev != nil {
		a.event(*ev)
	}
	if restart {
		if _, err := a.restart(a.ctx, c.name, 0, true); err != nil {
			a.log.Printf("container %s: restart after failed health check: %v", c.name, err)
		}
	}
}

func tcpCheck(ctx context.Context, ni *NetInfo, hostNet bool, port int) error {
	host := ""
	if hostNet {
		host = "127.0.0.1"
	} else if ni != nil && len(ni.Addrs) > 0 {
		host, _, _ = strings.Cut(ni.Addrs[0], "/")
	}
	if host == "" {
		return fmt.Errorf("tcp %d: container has no address to check", port)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return conn.Close()
}
