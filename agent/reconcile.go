package agent

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Reconcile: desired = containers of the UCI file + containers created
// through the API; actual = what the agent supervises (re-adopted or
// started). Converge by starting, stopping, restarting (definition
// changed), updating limits live, and removing containers whose UCI
// section is gone. A container's error is recorded on it and never blocks
// the others; starts run concurrently, each as soon as its dependencies
// run.

// reconcile installs cfg as the current config and converges.
func (a *Agent) reconcile(ctx context.Context, cfg *Config) *ReloadReply {
	a.reloadMu.Lock()
	defer a.reloadMu.Unlock()
	r := &ReloadReply{Warnings: cfg.Warnings, Errors: map[string]string{}}
	for n, err := range cfg.Errors {
		r.Errors[n] = err.Error()
	}

	a.mu.Lock()
	a.cfg = cfg
	desired := map[string]*ContainerSpec{}
	for n, s := range a.api {
		desired[n] = s
	}
	for n, s := range cfg.Containers {
		if api, ok := desired[n]; ok && api.Source == "api" {
			r.Errors[n] = "container " + n + ": defined in the config file and through the API; the config file wins"
			delete(a.api, n)
		}
		desired[n] = s
	}
	cycles := findCycles(desired)

	var remove, restart, update, start []*ctr
	for n, c := range a.ctrs {
		if desired[n] != nil {
			continue
		}
		if cfg.Errors[n] != nil {
			// bad definition: keep what runs, say why it was not updated
			c.err = cfg.Errors[n].Error()
			continue
		}
		if c.spec == nil || c.spec.Source == "uci" {
			remove = append(remove, c)
			r.Removed = append(r.Removed, n)
		}
	}
	for n, s := range desired {
		c := a.ctrs[n]
		if c == nil {
			c = &ctr{name: n, spec: s, want: s.Autostart, state: StateCreated, created: a.clock.Now()}
			a.ctrs[n] = c
		} else {
			old := c.spec
			c.spec = s
			switch {
			case old == nil && c.known:
				// restored from the state file: keep what it wanted
				c.known = false
			case old == nil || old.Source != s.Source:
				c.want = c.running() || s.Autostart && !c.userStopped
			}
			if c.running() && c.run == nil {
				c.run = s // adopted without a record: take it as the desired one
			}
			if c.running() && c.run != nil && !sameInstance(c.run, s) {
				if limitsOnly(c.run, s) && a.canUpdate() {
					update = append(update, c)
					r.Updated = append(r.Updated, n)
				} else {
					restart = append(restart, c)
					r.Restart = append(r.Restart, n)
				}
				continue
			}
		}
		if cyc := cycles[n]; cyc != "" {
			msg := "container " + n + ": depends: dependency cycle " + cyc
			r.Errors[n] = msg
			if !c.running() {
				a.setStateLocked(c, StateError, msg)
			}
			continue
		}
		if c.want && !c.running() && c.state != StateRestarting && c.busy == "" && !c.waiting {
			start = append(start, c)
			r.Started = append(r.Started, n)
		}
	}
	a.dirty = true
	a.notifyLocked()
	a.mu.Unlock()

	var wg sync.WaitGroup
	for _, c := range remove {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.mu.Lock()
			t := a.stopTimeoutLocked(c)
			a.mu.Unlock()
			if err := a.removeCtr(ctx, c, t); err != nil {
				a.log.Printf("container %s: remove: %v", c.name, err)
			}
		}()
	}
	var failMu sync.Mutex
	failed := map[string]string{}
	for _, c := range update {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.mu.Lock()
			s := c.spec
			a.mu.Unlock()
			l := Limits{Memory: s.Memory, CPUs: s.CPUs, Pids: s.Pids}
			if err := a.opts.Runtime.(LimitUpdater).Update(ctx, c.name, l); err != nil {
				// the instance keeps its old limits (c.run unchanged: the
				// next reload tries again); reported, not "updated"
				msg := fmt.Sprintf("container %s: limits not applied live (it keeps running with the old ones): %v", c.name, err)
				a.log.Print(msg)
				failMu.Lock()
				failed[c.name] = msg
				failMu.Unlock()
				a.mu.Lock()
				c.err = msg
				a.dirty = true
				a.notifyLocked()
				a.mu.Unlock()
				a.event(Event{Type: EvError, Container: c.name, Msg: msg})
				return
			}
			a.mu.Lock()
			r := *c.run
			r.Memory, r.CPUs, r.Pids = s.Memory, s.CPUs, s.Pids
			c.run = &r
			if c.err != "" && strings.HasPrefix(c.err, "container "+c.name+": limits not applied live") {
				c.err = ""
			}
			a.mu.Unlock()
			a.event(Event{Type: EvUpdate, Container: c.name, Msg: limitsString(l, true)})
		}()
	}
	for _, c := range restart {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.mu.Lock()
			t := a.stopTimeoutLocked(c)
			a.mu.Unlock()
			if err := a.stopCtr(ctx, c, t, false); err != nil {
				a.log.Printf("container %s: stop to apply changes: %v", c.name, err)
				return
			}
			a.mu.Lock()
			c.want = true
			a.mu.Unlock()
			a.launchStart(c)
		}()
	}
	wg.Wait()
	if len(failed) > 0 {
		r.Updated = slices.DeleteFunc(r.Updated, func(n string) bool { return failed[n] != "" })
		for n, msg := range failed {
			r.Errors[n] = msg
		}
	}
	for _, c := range start {
		a.launchStart(c)
	}
	a.saveState()
	slices.Sort(r.Removed)
	slices.Sort(r.Restart)
	slices.Sort(r.Updated)
	slices.Sort(r.Started)
	return r
}

func (a *Agent) canUpdate() bool {
	_, ok := a.opts.Runtime.(LimitUpdater)
	return ok
}

// sameInstance: would an instance created from a still match b? Fields
// supervision reads live (restart policy, health, depends, autostart,
// stop timeout, profiles, source) do not need a new instance.
func sameInstance(a, b *ContainerSpec) bool {
	return bytes.Equal(instanceKey(a), instanceKey(b))
}

func instanceKey(s *ContainerSpec) []byte {
	c := s.Clone()
	c.Restart, c.Health, c.Depends, c.Autostart, c.StopTimeout, c.Profiles, c.Source = RestartPolicy{}, nil, nil, false, 0, nil, ""
	b, _ := encMode.Marshal(c)
	return b
}

// limitsOnly: a and b differ only in cgroup limits.
func limitsOnly(a, b *ContainerSpec) bool {
	x := a.Clone()
	x.Memory, x.CPUs, x.Pids = b.Memory, b.CPUs, b.Pids
	return sameInstance(x, b)
}

// launchStart starts c in its own goroutine once its dependencies run.
// c.waiting is set while that goroutine decides; it clears it in the same
// critical section as its decision, so a later launch is never lost.
func (a *Agent) launchStart(c *ctr) {
	a.mu.Lock()
	if c.waiting || c.busy != "" {
		a.mu.Unlock()
		return
	}
	c.waiting = true
	gen := c.gen
	a.mu.Unlock()
	a.goroutine(func() { a.startWhenReady(a.ctx, c, gen) })
}

// startWhenReady waits until every dependency of c runs, then starts it.
// It stops waiting when c is no longer wanted or a dependency will not
// come (stopped, failed, missing): c is then "waiting" with the reason,
// and the next change (a dependency starting, a reload, an image import)
// tries again.
//
// gen is c's instance number when the start was asked for: if an instance
// was started since (by the API or supervision), this start is stale and
// does nothing, and a pending restart (backoff) is never cut short.
func (a *Agent) startWhenReady(ctx context.Context, c *ctr, gen uint64) {
	for {
		a.mu.Lock()
		if ctx.Err() != nil || a.closing || !c.want || c.spec == nil || c.running() || c.gen != gen || c.state == StateRestarting {
			c.waiting = false
			a.mu.Unlock()
			return
		}
		err := a.depsErrLocked(c)
		if err == nil {
			c.waiting = false
			if c.acquireLocked("start") != nil {
				a.mu.Unlock()
				return
			}
			a.mu.Unlock()
			// a container now running may be what others wait for; a
			// failed start changes nothing for them (and retrying after
			// it would retry this very container at once, in a loop)
			if a.startCtr(ctx, c) == nil {
				a.retryWaiting(ctx)
			}
			return
		}
		coming := true
		for _, d := range c.spec.Depends {
			if !depComing(a.ctrs[d]) {
				coming = false
			}
		}
		if !coming {
			c.waiting = false
			msg := err.Error()
			if c.err != msg {
				a.setStateLocked(c, StateWaiting, msg)
			}
			repeat := c.lastErr == msg
			c.lastErr = msg
			a.mu.Unlock()
			if !repeat {
				a.event(Event{Type: EvError, Container: c.name, Msg: msg})
			}
			return
		}
		if c.state != StateWaiting {
			a.setStateLocked(c, StateWaiting, err.Error())
		}
		ch := a.changed
		a.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			a.mu.Lock()
			c.waiting = false
			a.mu.Unlock()
			return
		}
	}
}

// retryWaiting launches a start for every wanted container that is
// waiting (dependency, image, port) or failed to start.
func (a *Agent) retryWaiting(ctx context.Context) {
	a.mu.Lock()
	var cs []*ctr
	for _, c := range a.ctrs {
		if c.want && c.spec != nil && (c.state == StateWaiting || c.state == StateCreated) && !c.waiting && c.busy == "" {
			cs = append(cs, c)
		}
	}
	a.mu.Unlock()
	for _, c := range cs {
		a.launchStart(c)
	}
}

// RetryInterval is how often containers waiting for something outside
// the agent (an image imported by the CLI, a network port appearing) are
// tried again.
const RetryInterval = 30 * time.Second

// depComing: d is running or on its way (starting, restart pending, or
// wanted and about to start).
func depComing(d *ctr) bool {
	if d == nil {
		return false
	}
	if d.running() || d.state == StateRestarting || d.busy != "" {
		return true
	}
	return d.want && (d.state == StateCreated || d.waiting)
}
