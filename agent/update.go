package agent

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The update and kill ops: what `otok update` and `otok kill` do to a
// container the agent manages.

// Limits are the cgroup limits the agent changes live. Memory, CPUs and
// Pids are the spec's (0 = none). MemorySwap is not part of the agent's
// spec: nil keeps what the runtime recorded (lowered to the default when
// it would fall below a new memory limit), -1 = unlimited swap, 0 = the
// default (as much swap as memory), else memory+swap in bytes.
type Limits struct {
	Memory     int64   `cbor:"memory" json:"memory"`
	CPUs       float64 `cbor:"cpus" json:"cpus"`
	Pids       int64   `cbor:"pids" json:"pids"`
	MemorySwap *int64  `cbor:"memorySwap,omitempty" json:"memory_swap,omitempty"`
}

// UpdateRequest changes a container's limits; a nil field keeps its value,
// 0 removes a limit.
type UpdateRequest struct {
	Name       string   `cbor:"name" json:"name"`
	Memory     *int64   `cbor:"memory,omitempty" json:"memory,omitempty"`
	MemorySwap *int64   `cbor:"memorySwap,omitempty" json:"memory_swap,omitempty"`
	CPUs       *float64 `cbor:"cpus,omitempty" json:"cpus,omitempty"`
	Pids       *int64   `cbor:"pids,omitempty" json:"pids,omitempty"`
}

// UpdateReply says what an update changed.
type UpdateReply struct {
	Name string `cbor:"name" json:"name"`
	// Live: the running instance's cgroup has the new limits.
	Live bool `cbor:"live,omitempty" json:"live,omitempty"`
	// Saved: the container's desired state has them too (API-defined
	// containers), so the next instance gets them.
	Saved bool `cbor:"saved,omitempty" json:"saved,omitempty"`
	// Note explains a change that will not last (a container defined in
	// the config file keeps the file's limits).
	Note string `cbor:"note,omitempty" json:"note,omitempty"`
}

// KillRequest sends Signal (a name as kill(1) takes it, with or without
// SIG, or a number; "" = SIGKILL) to a container's init.
type KillRequest struct {
	Name   string `cbor:"name" json:"name"`
	Signal string `cbor:"signal,omitempty" json:"signal,omitempty"`
}

// Op names of this file.
const (
	OpUpdate = "update"
	OpKill   = "kill"
)

func init() {
	op(OpUpdate, true, func(ctx context.Context, a *Agent, r *UpdateRequest) (any, error) { return a.Update(ctx, r) })
	op(OpKill, true, func(ctx context.Context, a *Agent, r *KillRequest) (any, error) {
		return a.Kill(ctx, r.Name, r.Signal)
	})
}

// Update changes a container's limits. A running container gets them
// live (through the runtime's LimitUpdater; a failure changes nothing and
// is returned). An API-defined container keeps them in its desired state
// (saved in the state dir). A container defined in the config file keeps
// the file's limits as its desired state: the live change lasts until the
// next reload or restart, and the reply's Note says so.
func (a *Agent) Update(ctx context.Context, r *UpdateRequest) (*UpdateReply, error) {
	if r.Memory == nil && r.MemorySwap == nil && r.CPUs == nil && r.Pids == nil {
		return nil, Errorf(CodeInvalid, "container %s: update: nothing to change (memory, memorySwap, cpus or pids)", r.Name)
	}
	switch {
	case r.Memory != nil && *r.Memory < 0:
		return nil, Errorf(CodeInvalid, "container %s: update: memory %d: want bytes ≥ 0 (0 = no limit)", r.Name, *r.Memory)
	case r.MemorySwap != nil && *r.MemorySwap < -1:
		return nil, Errorf(CodeInvalid, "container %s: update: memorySwap %d: want bytes, 0 (default) or -1 (unlimited)", r.Name, *r.MemorySwap)
	case r.CPUs != nil && (*r.CPUs < 0 || *r.CPUs != *r.CPUs):
		return nil, Errorf(CodeInvalid, "container %s: update: cpus %v: want a number ≥ 0 (0 = no limit)", r.Name, *r.CPUs)
	case r.Pids != nil && *r.Pids < 0:
		return nil, Errorf(CodeInvalid, "container %s: update: pids %d: want a number ≥ 0 (0 = no limit)", r.Name, *r.Pids)
	}
	a.mu.Lock()
	c, err := a.lookupLocked(r.Name)
	if err == nil && c.spec == nil {
		err = Errorf(CodeConflict, "container %s: being removed", r.Name)
	}
	if err != nil {
		a.mu.Unlock()
		return nil, err
	}
	live := c.state == StateRunning
	uci := c.spec.Source != "api"
	if !live && uci {
		a.mu.Unlock()
		return nil, Errorf(CodeConflict, "container %s: is %s and defined in %s: edit its limits there and run 'otok agent reload'", r.Name, c.state, a.opts.ConfigPath)
	}
	if err := c.acquireLocked("update"); err != nil {
		a.mu.Unlock()
		return nil, err
	}
	base := c.spec
	if live && c.run != nil {
		base = c.run
	}
	l := Limits{Memory: base.Memory, CPUs: base.CPUs, Pids: base.Pids, MemorySwap: r.MemorySwap}
	if r.Memory != nil {
		l.Memory = *r.Memory
	}
	if r.CPUs != nil {
		l.CPUs = *r.CPUs
	}
	if r.Pids != nil {
		l.Pids = *r.Pids
	}
	check := base.Clone()
	check.Memory, check.CPUs, check.Pids = l.Memory, l.CPUs, l.Pids
	if err := check.Validate(); err != nil {
		c.busy = ""
		a.mu.Unlock()
		return nil, err
	}
	a.mu.Unlock()
	release := func() {
		a.mu.Lock()
		c.busy = ""
		a.notifyLocked()
		a.mu.Unlock()
	}
	rep := &UpdateReply{Name: r.Name}
	if live {
		up, ok := a.opts.Runtime.(LimitUpdater)
		if !ok {
			release()
			return nil, Errorf(CodeUnavailable, "container %s: update: this runtime cannot change limits live", r.Name)
		}
		if err := up.Update(ctx, r.Name, l); err != nil {
			release()
			return nil, wrapCode(CodeInvalid, err, "container %s: update", r.Name)
		}
		rep.Live = true
	}
	a.mu.Lock()
	if live && c.run != nil {
		run := c.run.Clone()
		run.Memory, run.CPUs, run.Pids = l.Memory, l.CPUs, l.Pids
		c.run = run
	}
	if !uci {
		s := c.spec.Clone()
		s.Memory, s.CPUs, s.Pids = l.Memory, l.CPUs, l.Pids
		c.spec = s
		a.api[r.Name] = s
		a.dirty = true
		rep.Saved = true
	} else {
		rep.Note = fmt.Sprintf("container %s: defined in %s, whose limits apply again at the next reload or restart (edit it to keep these)", r.Name, a.opts.ConfigPath)
	}
	c.busy = ""
	a.notifyLocked()
	a.mu.Unlock()
	if r.MemorySwap != nil && !live {
		rep.Note = strings.TrimSpace(rep.Note + " memorySwap applies to a running container only; the agent's spec does not keep it")
	}
	a.event(Event{Type: EvUpdate, Container: r.Name, Msg: limitsString(l, rep.Live)})
	if rep.Saved {
		a.saveState()
	}
	return rep, nil
}

func limitsString(l Limits, live bool) string {
	s := fmt.Sprintf("memory %d, cpus %g, pids %d", l.Memory, l.CPUs, l.Pids)
	if l.MemorySwap != nil {
		s += fmt.Sprintf(", memory-swap %d", *l.MemorySwap)
	}
	if live {
		return s + " (live)"
	}
	return s + " (next start)"
}

// ParseSignal parses a signal as kill(1) takes it: TERM, SIGTERM, sigterm
// or 15. "" is SIGKILL.
func ParseSignal(s string) (syscall.Signal, error) {
	if s == "" {
		return syscall.SIGKILL, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("signal %s: want 1–64", s)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("signal %s: unknown signal name", s)
}

// stopSignals end a container by convention: a kill with one of them is
// a stop (as docker's kill is), so the restart policy does not bring the
// container back. Any other signal counts as a stop only when the
// container then dies of that very signal.
var stopSignals = map[syscall.Signal]bool{syscall.SIGKILL: true, syscall.SIGTERM: true, syscall.SIGINT: true,
	syscall.SIGQUIT: true, syscall.SIGPWR: true}

// Kill sends a signal to a running container's init.
func (a *Agent) Kill(ctx context.Context, name, signal string) (*ContainerStatus, error) {
	sig, err := ParseSignal(signal)
	if err != nil {
		return nil, Errorf(CodeInvalid, "container %s: kill: %v", name, err)
	}
	a.mu.Lock()
	c, err := a.lookupLocked(name)
	if err == nil && !c.running() {
		err = Errorf(CodeConflict, "container %s: not running (%s)", name, c.state)
	}
	if err != nil {
		a.mu.Unlock()
		return nil, err
	}
	c.killSig = sig
	gen := c.gen
	a.mu.Unlock()
	if err := a.opts.Runtime.Kill(ctx, name, sig); err != nil {
		a.mu.Lock()
		if c.gen == gen {
			c.killSig = 0
		}
		a.mu.Unlock()
		return nil, wrapCode(CodeConflict, err, "container %s: kill %s", name, sigName(sig))
	}
	a.event(Event{Type: EvKill, Container: name, Msg: sigName(sig)})
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.statusLocked(c, false), nil
}

// killedByUser: the exit follows a kill op (a.mu held).
func killedByUser(c *ctr, exit *ExitInfo) bool {
	if c.killSig == 0 {
		return false
	}
	if stopSignals[c.killSig] {
		return true
	}
	return exit != nil && exit.Signal != "" && unix.SignalNum(exit.Signal) == c.killSig
}
