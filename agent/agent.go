package agent

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"
)

// Options configure an Agent. Zero parts are "unavailable": the agent runs
// and answers, and containers that need the part report why they cannot
// start.
type Options struct {
	ConfigPath string // UCI file (DefaultConfigPath)
	// StateDir and Socket override the config's (tests, --state).
	StateDir string
	Socket   string
	Version  string

	Runtime Runtime
	Store   Store
	Images  ImageStore
	Network Network
	Clock   Clock
	Log     *log.Logger
}

// Agent is the daemon: desired state, supervision, the command API.
type Agent struct {
	opts    Options
	clock   Clock
	log     *log.Logger
	events  *eventRing
	started time.Time

	ctx    context.Context // lifetime of the agent's goroutines
	cancel context.CancelFunc
	wg     sync.WaitGroup

	reloadMu sync.Mutex // one reconcile at a time

	stateMu   sync.Mutex // serialises state file writes
	lastState []byte     // bytes last written (write only on change)

	mu      sync.Mutex
	cfg     *Config // last good config
	cfgErr  error   // last load error (config kept)
	api     map[string]*ContainerSpec
	ctrs    map[string]*ctr
	changed chan struct{} // closed and replaced on every state change
	dirty   bool          // state file needs writing
	closing bool          // shutting down: no restarts

	// persistent layers (persist.go): the store's reserve and the layers'
	// root as last seen at a persistent start, and whether the free space
	// is below the reserve (reported once per crossing)
	persistReserve int64
	persistRoot    string
	persistLow     bool
}

// New makes an agent; Run starts it.
func New(o Options) *Agent {
	if o.ConfigPath == "" {
		o.ConfigPath = DefaultConfigPath
	}
	if o.Clock == nil {
		o.Clock = realClock{}
	}
	if o.Log == nil {
		o.Log = log.New(os.Stderr, "otok agent: ", 0)
	}
	a := &Agent{opts: o, clock: o.Clock, log: o.Log, api: map[string]*ContainerSpec{},
		ctrs: map[string]*ctr{}, changed: make(chan struct{})}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.events = newEventRing(DefaultEvents)
	a.started = o.Clock.Now()
	return a
}

// goroutine runs f as a goroutine owned by the agent (Close waits for it).
func (a *Agent) goroutine(f func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		f()
	}()
}

// notifyLocked wakes everyone waiting for a state change; a.mu held.
func (a *Agent) notifyLocked() {
	close(a.changed)
	a.changed = make(chan struct{})
}

// Load reads the config (a missing or broken file leaves an agent with no
// UCI containers that reports the error in status and events) and settles
// the state dir and socket path. Call it before Listen and Init.
func (a *Agent) Load() *Config {
	cfg, err := LoadConfig(a.opts.ConfigPath)
	if err != nil {
		a.log.Printf("%v", err)
		a.cfgErr = err
		cfg = &Config{Path: a.opts.ConfigPath, Agent: DefaultAgentConfig(), Containers: map[string]*ContainerSpec{}, Errors: map[string]error{}}
	}
	for _, w := range cfg.Warnings {
		a.log.Printf("warning: %s", w)
	}
	for n, err := range cfg.Errors {
		a.log.Printf("container %s not run: %v", n, err)
	}
	if a.opts.StateDir != "" {
		cfg.Agent.State = a.opts.StateDir
	}
	cfg.Agent.Socket = SocketFor(a.opts.Socket, a.opts.StateDir, cfg.Agent.Socket)
	a.events = newEventRing(cfg.Agent.Events)
	a.mu.Lock()
	a.cfg = cfg
	a.mu.Unlock()
	return cfg
}

// SocketFor picks the socket path: an explicit one, else <state>/otok.sock
// when the state dir is overridden (tests, --state), else the config's.
func SocketFor(explicit, stateDir, configured string) string {
	switch {
	case explicit != "":
		return explicit
	case stateDir != "" && (configured == "" || configured == DefaultSocket):
		return filepath.Join(stateDir, "otok.sock")
	case configured != "":
		return configured
	}
	return DefaultSocket
}

// Init reads the state dir, re-adopts running containers and reconciles
// with the loaded config (starts run in the background). It returns the
// reconcile report.
func (a *Agent) Init(ctx context.Context) (*ReloadReply, error) {
	if a.cfg == nil {
		a.Load()
	}
	if err := os.MkdirAll(a.agentDir(), 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	if err := os.MkdirAll(a.logDir(), 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	a.adopt(ctx)
	return a.reconcile(ctx, a.cfg), nil
}

// SocketPath is where Serve listens.
func (a *Agent) SocketPath() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg.Agent.Socket
}

// Config returns the last good config.
func (a *Agent) Config() *Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

func (a *Agent) stateDir() string { return a.cfg.Agent.State }
func (a *Agent) agentDir() string { return filepath.Join(a.cfg.Agent.State, "agent") }
func (a *Agent) logDir() string   { return filepath.Join(a.cfg.Agent.State, "logs") }

// Reload re-reads the config and reconciles. A file that does not parse
// changes nothing: the last good config stays, and the error is returned.
func (a *Agent) Reload(ctx context.Context) (*ReloadReply, error) {
	cfg, err := LoadConfig(a.opts.ConfigPath)
	if err != nil {
		a.mu.Lock()
		a.cfgErr = err
		a.mu.Unlock()
		a.event(Event{Type: EvError, Msg: "reload: " + err.Error() + " (keeping the last good config)"})
		return nil, err
	}
	a.mu.Lock()
	cfg.Agent.State, cfg.Agent.Socket = a.cfg.Agent.State, a.cfg.Agent.Socket // need a restart
	a.cfgErr = nil
	a.mu.Unlock()
	for _, w := range cfg.Warnings {
		a.log.Printf("warning: %s", w)
	}
	r := a.reconcile(ctx, cfg)
	a.event(Event{Type: EvReload, Msg: a.opts.ConfigPath})
	return r, nil
}

// Shutdown stops every running container in reverse dependency order,
// each with its stop timeout, all within the longest stop timeout plus
// 3 s (then SIGKILL), and stops the agent's goroutines. Containers are
// left stopped, not removed from the desired state.
func (a *Agent) Shutdown(ctx context.Context) {
	a.mu.Lock()
	a.closing = true
	timeout := a.cfg.Agent.StopTimeout
	longest := timeout
	var all []*ctr
	for _, c := range a.ctrs {
		if c.restartTimer != nil {
			c.restartTimer.Stop()
			c.restartTimer = nil
		}
		if c.spec != nil && c.spec.StopTimeout > longest {
			longest = c.spec.StopTimeout
		}
		all = append(all, c)
	}
	a.mu.Unlock()
	a.event(Event{Type: EvAgentStop, Msg: fmt.Sprintf("stopping %d containers", len(all))})
	// All of it within the longest stop timeout plus a margin for SIGKILL:
	// a dependency chain does not add up its timeouts (what is still
	// running at the deadline is killed). The procd init script gives the
	// agent that longest timeout + 5 s before it kills the agent itself.
	ctx, cancel := context.WithTimeout(ctx, longest+3*time.Second)
	defer cancel()
	a.stopInOrder(ctx, all, timeout)
	a.Close()
}

// Close stops the agent's goroutines without touching containers (they
// keep running; a new agent re-adopts them).
func (a *Agent) Close() {
	a.cancel()
	a.mu.Lock()
	for _, c := range a.ctrs {
		if c.restartTimer != nil {
			c.restartTimer.Stop()
		}
	}
	a.mu.Unlock()
	a.wg.Wait()
	a.saveState()
}

// stopInOrder stops cs so that a container stops only after every
// container that depends on it has stopped.
func (a *Agent) stopInOrder(ctx context.Context, cs []*ctr, timeout time.Duration) {
	var wg sync.WaitGroup
	done := map[string]chan struct{}{}
	for _, c := range cs {
		done[c.name] = make(chan struct{})
	}
	for _, c := range cs {
		// dependents of c
		var deps []chan struct{}
		for _, d := range cs {
			if d.spec != nil && slices.Contains(d.spec.Depends, c.name) {
				deps = append(deps, done[d.name])
			}
		}
		wg.Add(1)
		go func(c *ctr) {
			defer wg.Done()
			defer close(done[c.name])
			for _, ch := range deps {
				select {
				case <-ch:
				case <-ctx.Done():
				}
			}
			t := timeout
			if c.spec != nil && c.spec.StopTimeout > 0 {
				t = c.spec.StopTimeout
			}
			if err := a.stopCtr(ctx, c, t, false); err != nil && CodeOf(err) != CodeConflict {
				a.log.Printf("container %s: stop: %v", c.name, err)
			}
		}(c)
	}
	wg.Wait()
}

// Status is the status op.
func (a *Agent) Status() *StatusReply {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := &StatusReply{Version: a.opts.Version, Pid: os.Getpid(), Started: a.started, Config: a.opts.ConfigPath,
		Containers: len(a.ctrs), Goroutines: runtime.NumGoroutine(), RSS: selfRSS(), EventSeq: a.events.lastSeq()}
	if a.cfgErr != nil {
		s.ConfigErr = a.cfgErr.Error()
	}
	for _, c := range a.ctrs {
		if c.state == StateRunning {
			s.Running++
		}
	}
	return s
}

// lookup returns the container or a not-found error; a.mu held.
func (a *Agent) lookupLocked(name string) (*ctr, error) {
	c := a.ctrs[name]
	if c == nil {
		return nil, Errorf(CodeNotFound, "container %s: not found", name)
	}
	return c, nil
}

// Loop does the agent's periodic work until ctx ends: retry containers
// waiting for something outside the agent (an image the CLI imported, a
// port that appeared) every RetryInterval, trim log files every
// TrimInterval. It writes nothing to flash.
func (a *Agent) Loop(ctx context.Context) {
	retry := time.NewTicker(RetryInterval)
	defer retry.Stop()
	trim := time.NewTicker(TrimInterval)
	defer trim.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.ctx.Done():
			return
		case <-retry.C:
			a.retryWaiting(ctx)
		case <-trim.C:
			a.trimLogs()
			a.checkPersistentSpace()
			a.mu.Lock()
			dirty := a.dirty
			a.mu.Unlock()
			if dirty {
				a.saveState()
			}
		}
	}
}
