package agent

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Recorded fakes behind the agent's interfaces: they keep a log of calls
// and let the test decide when a container exits.

type fakeRT struct {
	mu         sync.Mutex
	calls      []string
	procs      map[string]chan *ExitInfo
	nextPid    int
	failCreate map[string]error
	ignoreTerm map[string]bool
	execCode   int
	execs      int
	list       []RuntimeState // what List reports
	failUpdate map[string]error
	uppers     map[string]string // RunSpec.UpperDir of the last Create, by name
}

func newFakeRT() *fakeRT {
	return &fakeRT{procs: map[string]chan *ExitInfo{}, nextPid: 1000, failCreate: map[string]error{}, ignoreTerm: map[string]bool{}}
}

func (f *fakeRT) record(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

// callsOf returns the recorded calls starting with prefix, in order.
func (f *fakeRT) callsOf(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeRT) Create(ctx context.Context, s *RunSpec) (Proc, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failCreate[s.Spec.Name]; err != nil {
		return Proc{}, err
	}
	f.nextPid++
	f.procs[s.Spec.Name] = make(chan *ExitInfo, 1)
	f.calls = append(f.calls, "create "+s.Spec.Name)
	if f.uppers == nil {
		f.uppers = map[string]string{}
	}
	f.uppers[s.Spec.Name] = s.UpperDir
	return Proc{Pid: f.nextPid, StartTime: 1}, nil
}

func (f *fakeRT) Start(ctx context.Context, name string) error { f.record("start " + name); return nil }

func (f *fakeRT) Kill(ctx context.Context, name string, sig syscall.Signal) error {
	f.record(fmt.Sprintf("kill %s %s", name, sigName(sig)))
	f.mu.Lock()
	ch := f.procs[name]
	ign := f.ignoreTerm[name] && sig != syscall.SIGKILL
	f.mu.Unlock()
	if ch != nil && !ign {
		select {
		case ch <- &ExitInfo{Code: 128 + int(sig), Signal: sigName(sig)}:
		default:
		}
	}
	return nil
}

// exit makes the container's init exit with code.
func (f *fakeRT) exit(name string, code int) {
	f.mu.Lock()
	ch := f.procs[name]
	f.mu.Unlock()
	ch <- &ExitInfo{Code: code}
}

func (f *fakeRT) Wait(ctx context.Context, name string, p Proc) (*ExitInfo, error) {
	f.mu.Lock()
	ch := f.procs[name]
	f.mu.Unlock()
	if ch == nil { // not created by this fake: a re-adopted process
		return WaitProc(ctx, p)
	}
	select {
	case e := <-ch:
		return e, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (f *fakeRT) Delete(ctx context.Context, name string) error {
	f.record("delete " + name)
	return nil
}
func (f *fakeRT) List(ctx context.Context) ([]RuntimeState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.list, nil
}
func (f *fakeRT) Exec(ctx context.Context, name string, args []string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.execs++
	return f.execCode, nil
}
func (f *fakeRT) Stats(ctx context.Context, name string) (Stats, error) {
	return Stats{Name: name, CPUNanos: 42, Memory: 1 << 20, Pids: 1}, nil
}

type fakeUpdater struct{ *fakeRT }

func (f fakeUpdater) Update(ctx context.Context, name string, l Limits) error {
	f.mu.Lock()
	err := f.failUpdate[name]
	f.mu.Unlock()
	if err != nil {
		f.record(fmt.Sprintf("update-failed %s %d", name, l.Memory))
		return err
	}
	f.record(fmt.Sprintf("update %s %d", name, l.Memory))
	return nil
}

type fakeStore struct{}

func (fakeStore) Resolve(ctx context.Context, ref string) (*Image, error) {
	if ref == "missing" {
		return nil, Errorf(CodeNotFound, "not in the store")
	}
	return &Image{Name: ref, Digest: "d-" + ref}, nil
}
func (fakeStore) Mount(ctx context.Context, img *Image, user string) (string, error) { return "/", nil }
func (fakeStore) Release(ctx context.Context, img *Image, user string) error         { return nil }

// fakeClock fires timers when the test advances it.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *fakeClock
	at      time.Time
	f       func()
	stopped bool
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

// Advance moves time on and runs the timers that became due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		if t.stopped {
			continue
		}
		if !t.at.After(c.now) {
			t.stopped = true
			due = append(due, t)
		} else {
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		t.f()
	}
}

// pending returns the delays of pending timers from now.
func (c *fakeClock) pending() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Duration
	for _, t := range c.timers {
		if !t.stopped {
			out = append(out, t.at.Sub(c.now))
		}
	}
	return out
}

type testEnv struct {
	t     *testing.T
	a     *Agent
	rt    *fakeRT
	clock *fakeClock
	dir   string
}

func newTestAgent(t *testing.T, uci string, rt Runtime) *testEnv {
	t.Helper()
	return newTestAgentWith(t, uci, rt, nil)
}

// newTestAgentWith is newTestAgent with an image store behind the image
// ops (and persistent layers).
func newTestAgentWith(t *testing.T, uci string, rt Runtime, images ImageStore) *testEnv {
	t.Helper()
	dir := t.TempDir()
	cfgPath := dir + "/otok"
	if err := os.WriteFile(cfgPath, []byte(uci), 0o644); err != nil {
		t.Fatal(err)
	}
	frt, _ := rt.(*fakeRT)
	if u, ok := rt.(fakeUpdater); ok {
		frt = u.fakeRT
	}
	clock := newFakeClock()
	var logger *log.Logger
	if testing.Verbose() {
		logger = log.New(os.Stderr, "agent: ", 0)
	} else {
		logger = log.New(io.Discard, "", 0)
	}
	a := New(Options{ConfigPath: cfgPath, StateDir: dir + "/state", Runtime: rt, Store: fakeStore{}, Images: images, Clock: clock, Log: logger})
	a.Load()
	if _, err := a.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return &testEnv{t: t, a: a, rt: frt, clock: clock, dir: dir}
}

// waitFor polls until cond holds (real time: supervision runs in
// goroutines even with the fake clock).
func (e *testEnv) waitFor(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s; containers: %+v", what, e.a.List(true).Containers)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (e *testEnv) state(name string) string {
	st, err := e.a.Inspect(name)
	if err != nil {
		return "absent"
	}
	return st.State
}

func (e *testEnv) waitState(name, state string) *ContainerStatus {
	e.t.Helper()
	e.waitFor(name+" "+state, func() bool { return e.state(name) == state })
	st, _ := e.a.Inspect(name)
	return st
}

func newTestLogger() *log.Logger {
	if testing.Verbose() {
		return log.New(os.Stderr, "agent: ", 0)
	}
	return log.New(io.Discard, "", 0)
}
