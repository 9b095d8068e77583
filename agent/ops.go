package agent

import (
	"context"
	"os"
	"slices"
	"strings"
	"time"
)

// The container ops of the command API (see api.go for the table).

// Run adds an API-defined container and (start) starts it. A container
// that cannot be started is not kept: nothing changes.
func (a *Agent) Run(ctx context.Context, spec *ContainerSpec, start bool) (*ContainerStatus, error) {
	s := spec.Clone()
	s.Source = "api"
	s.Autostart = start
	if err := s.Validate(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	if _, ok := a.ctrs[s.Name]; ok {
		a.mu.Unlock()
		return nil, Errorf(CodeConflict, "container %s: already exists", s.Name)
	}
	if a.closing {
		a.mu.Unlock()
		return nil, Errorf(CodeUnavailable, "agent is shutting down")
	}
	if cyc := findCycles(a.desiredLocked(s)); cyc[s.Name] != "" {
		a.mu.Unlock()
		return nil, Errorf(CodeInvalid, "container %s: depends: dependency cycle %s", s.Name, cyc[s.Name])
	}
	c := &ctr{name: s.Name, spec: s, want: start, state: StateCreated, created: a.clock.Now(), busy: "run"}
	a.ctrs[s.Name] = c
	a.api[s.Name] = s
	a.dirty = true
	a.notifyLocked()
	a.mu.Unlock()
	a.event(Event{Type: EvCreate, Container: s.Name, Image: s.Image})
	if start {
		err := a.depsRunning(c)
		if err == nil {
			err = a.startCtr(ctx, c)
		}
		if err != nil {
			a.mu.Lock()
			delete(a.ctrs, s.Name)
			delete(a.api, s.Name)
			c.gen++
			a.dirty = true
			a.notifyLocked()
			a.mu.Unlock()
			if s.Persistent {
				a.removePersistent(context.WithoutCancel(ctx), s.Name) // nothing kept: its layer goes too
			}
			a.saveState()
			return nil, err
		}
	}
	a.mu.Lock()
	if !start {
		c.busy = ""
	}
	st := a.statusLocked(c, false)
	a.mu.Unlock()
	a.saveState()
	return st, nil
}

// desiredLocked is every desired spec, plus extra.
func (a *Agent) desiredLocked(extra ...*ContainerSpec) map[string]*ContainerSpec {
	m := map[string]*ContainerSpec{}
	for n, c := range a.ctrs {
		if c.spec != nil {
			m[n] = c.spec
		}
	}
	for _, s := range extra {
		m[s.Name] = s
	}
	return m
}

// depsRunning reports why c cannot start yet (a dependency not running).
func (a *Agent) depsRunning(c *ctr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.depsErrLocked(c)
}

func (a *Agent) depsErrLocked(c *ctr) error {
	for _, d := range c.spec.Depends {
		dc := a.ctrs[d]
		if dc == nil {
			return Errorf(CodeUnavailable, "container %s: depends on %s, which does not exist", c.name, d)
		}
		if dc.state != StateRunning {
			return Errorf(CodeUnavailable, "container %s: depends on %s, which is %s", c.name, d, dc.state)
		}
	}
	return nil
}

// Start starts a stopped container.
func (a *Agent) Start(ctx context.Context, name string) (*ContainerStatus, error) {
	a.mu.Lock()
	c, err := a.lookupLocked(name)
	if err == nil && c.spec == nil {
		err = Errorf(CodeConflict, "container %s: being removed", name)
	}
	if err == nil && c.running() {
		err = Errorf(CodeConflict, "container %s: already %s", name, c.state)
	}
	if err == nil {
		err = c.acquireLocked("start")
	}
	if err != nil {
		a.mu.Unlock()
		return nil, err
	}
	if e := a.depsErrLocked(c); e != nil {
		c.busy = ""
		a.mu.Unlock()
		return nil, Errorf(CodeConflict, "%s", e.Error())
	}
	c.want, c.userStopped, c.failures = true, false, 0
	a.mu.Unlock()
	err = a.startCtr(ctx, c)
	a.mu.Lock()
	st := a.statusLocked(c, false)
	a.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return st, nil
}

// Stop stops a container; timeout 0 uses its stop timeout.
func (a *Agent) Stop(ctx context.Context, name string, timeout time.Duration) (*ContainerStatus, error) {
	a.mu.Lock()
	c, err := a.lookupLocked(name)
	if err != nil {
		a.mu.Unlock()
		return nil, err
	}
	if c.busy != "" {
		a.mu.Unlock()
		return nil, c.acquireLocked("stop")
	}
	if timeout <= 0 {
		timeout = a.stopTimeoutLocked(c)
	}
	a.mu.Unlock()
	if err := a.stopCtr(ctx, c, timeout, true); err != nil {
		return nil, err
	}
	a.saveState()
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.statusLocked(c, false), nil
}

func (a *Agent) stopTimeoutLocked(c *ctr) time.Duration {
	if c.spec != nil && c.spec.StopTimeout > 0 {
		return c.spec.StopTimeout
	}
	return a.cfg.Agent.StopTimeout
}

// Restart stops (if running) and starts a container.
func (a *Agent) Restart(ctx context.Context, name string, timeout time.Duration) (*ContainerStatus, error) {
	return a.restart(ctx, name, timeout, false)
}

// restart: supervised (health) restarts count as restarts, not as a user
// stop.
func (a *Agent) restart(ctx context.Context, name string, timeout time.Duration, supervised bool) (*ContainerStatus, error) {
	a.mu.Lock()
	c, err := a.lookupLocked(name)
	if err != nil {
		a.mu.Unlock()
		return nil, err
	}
	if timeout <= 0 {
		timeout = a.stopTimeoutLocked(c)
	}
	a.mu.Unlock()
	if err := a.stopCtr(ctx, c, timeout, false); err != nil {
		return nil, err
	}
	if supervised {
		a.mu.Lock()
		c.restarts++
		a.mu.Unlock()
		a.event(Event{Type: EvRestart, Container: name, Msg: "unhealthy"})
	}
	st, err := a.Start(ctx, name)
	if err != nil && supervised {
		// the health check asked for this restart: keep trying on the
		// backoff whatever the restart policy
		a.mu.Lock()
		if c.want && c.state != StateRestarting && c.state != StateRunning && !a.closing && a.ctx.Err() == nil {
			c.failures++
			d := backoffDelay(c.failures)
			c.nextRestart = a.clock.Now().Add(d)
			a.setStateLocked(c, StateRestarting, c.err)
			g := c.gen
			c.restartTimer = a.clock.AfterFunc(d, func() { a.goroutine(func() { a.supervisedStart(c, g) }) })
		}
		a.mu.Unlock()
	}
	return st, err
}

// Remove removes an API-defined container (force: stop it first).
// Containers defined in the UCI file are removed by editing the file.
func (a *Agent) Remove(ctx context.Context, name string, force bool) error {
	a.mu.Lock()
	c, err := a.lookupLocked(name)
	if err != nil {
		a.mu.Unlock()
		return err
	}
	if c.spec != nil && c.spec.Source == "uci" {
		a.mu.Unlock()
		return Errorf(CodeConflict, "container %s: defined in %s; remove it there and reload", name, a.opts.ConfigPath)
	}
	if c.running() && !force {
		a.mu.Unlock()
		return Errorf(CodeConflict, "container %s: is %s; stop it first or force", name, c.state)
	}
	timeout := a.stopTimeoutLocked(c)
	a.mu.Unlock()
	return a.removeCtr(ctx, c, timeout)
}

// removeCtr stops c and forgets it.
func (a *Agent) removeCtr(ctx context.Context, c *ctr, timeout time.Duration) error {
	if err := a.stopCtr(ctx, c, timeout, false); err != nil {
		return err
	}
	a.mu.Lock()
	if c.busy != "" {
		a.mu.Unlock()
		return Errorf(CodeConflict, "container %s: busy (%s in progress)", c.name, c.busy)
	}
	if a.ctrs[c.name] == c {
		delete(a.ctrs, c.name)
		delete(a.api, c.name)
	}
	c.gen++ // stale timers and watchers see a new generation
	a.dirty = true
	a.notifyLocked()
	a.mu.Unlock()
	_ = os.Remove(a.logPath(c.name))
	a.removePersistent(context.WithoutCancel(ctx), c.name)
	a.event(Event{Type: EvRemove, Container: c.name})
	a.saveState()
	return nil
}

// List returns the containers (all: also those not running), by name.
func (a *Agent) List(all bool) *ListReply {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := &ListReply{Containers: []ContainerStatus{}}
	names := make([]string, 0, len(a.ctrs))
	for n := range a.ctrs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		c := a.ctrs[n]
		if all || c.running() || c.state == StateRestarting {
			r.Containers = append(r.Containers, *a.statusLocked(c, false))
		}
	}
	return r
}

// Inspect returns one container with its desired spec.
func (a *Agent) Inspect(name string) (*ContainerStatus, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, err := a.lookupLocked(name)
	if err != nil {
		return nil, err
	}
	return a.statusLocked(c, true), nil
}

func (a *Agent) statusLocked(c *ctr, withSpec bool) *ContainerStatus {
	s := &ContainerStatus{Name: c.name, State: c.state, Health: c.health, Pid: c.proc.Pid,
		Created: c.created, Started: c.started, Finished: c.finished, Restarts: c.restarts,
		NextRestart: c.nextRestart, Exit: c.exit, Error: c.err, Adopted: c.adopted, Network: c.net}
	if c.spec != nil {
		s.Image, s.Source = c.spec.Image, c.spec.Source
	}
	if c.img != nil {
		s.Digest = c.img.Digest
	}
	if !c.running() {
		s.Pid = 0
	}
	if withSpec && c.spec != nil {
		s.Spec = c.spec.Clone()
	}
	return s
}

// Image ops: thin over the ImageStore.

func (a *Agent) images() (ImageStore, error) {
	if a.opts.Images == nil {
		return nil, Errorf(CodeUnavailable, "image store: not available in this agent")
	}
	return a.opts.Images, nil
}

// ImageImport imports a file on the device into the store.
func (a *Agent) ImageImport(ctx context.Context, r *ImageImportRequest) (*ImageInfo, error) {
	st, err := a.images()
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(r.Path, "/") {
		return nil, Errorf(CodeInvalid, "image %s: want an absolute path on the device", r.Path)
	}
	if r.MaxSize < 0 {
		return nil, Errorf(CodeInvalid, "image %s: maxSize %d: want bytes ≥ 0", r.Path, r.MaxSize)
	}
	info, err := st.Import(ctx, r)
	if err != nil {
		return nil, err
	}
	a.event(Event{Type: EvImage, Image: info.Digest, Msg: "installed " + info.Name + ":" + info.Version})
	// containers waiting for this image can start now
	a.goroutine(func() { a.retryWaiting(a.ctx) })
	return info, nil
}

// ImageList lists stored images, marking those in use.
func (a *Agent) ImageList(ctx context.Context) (*ImageListReply, error) {
	st, err := a.images()
	if err != nil {
		return nil, err
	}
	imgs, err := st.List(ctx)
	if err != nil {
		return nil, err
	}
	for i := range imgs {
		imgs[i].InUse = a.imageInUse(imgs[i].Digest)
	}
	return &ImageListReply{Images: imgs}, nil
}

func (a *Agent) imageInUse(digest string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.ctrs {
		if c.img != nil && c.img.Digest == digest && (c.running() || c.state == StateRestarting) {
			return true
		}
	}
	return false
}

// ImageRemove removes an image no running container uses.
func (a *Agent) ImageRemove(ctx context.Context, ref string) error {
	st, err := a.images()
	if err != nil {
		return err
	}
	if a.opts.Store != nil {
		if img, err := a.opts.Store.Resolve(ctx, ref); err == nil && a.imageInUse(img.Digest) {
			return Errorf(CodeConflict, "image %s: in use", ref)
		}
	}
	if err := st.Remove(ctx, ref); err != nil {
		return err
	}
	a.event(Event{Type: EvImage, Image: ref, Msg: "removed"})
	return nil
}

// ImageGC removes images no container references.
func (a *Agent) ImageGC(ctx context.Context) (*GCReply, error) {
	st, err := a.images()
	if err != nil {
		return nil, err
	}
	return st.GC(ctx, a.imageInUse)
}

// DF reports store space.
func (a *Agent) DF(ctx context.Context) (*DFReply, error) {
	st, err := a.images()
	if err != nil {
		return nil, err
	}
	return st.DF(ctx)
}
