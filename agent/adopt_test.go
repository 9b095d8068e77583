package agent

import (
	"context"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// neverStartedRT is a fakeRT that reports some containers as created but
// never started (neverStartedChecker).
type neverStartedRT struct {
	*fakeRT
	created map[string]bool
}

func (f *neverStartedRT) NeverStarted(ctx context.Context, name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.created[name]
}

func (f *neverStartedRT) Delete(ctx context.Context, name string) error {
	f.mu.Lock()
	delete(f.created, name)
	var l []RuntimeState
	for _, s := range f.list {
		if s.Name != name {
			l = append(l, s)
		}
	}
	f.list = l
	f.mu.Unlock()
	return f.fakeRT.Delete(ctx, name)
}

// recStore and recNet record image releases and network calls into the
// runtime's call log, so that their order with create/delete shows.
type recStore struct {
	fakeStore
	rt *fakeRT
}

func (s recStore) Release(ctx context.Context, img *Image, user string) error {
	s.rt.record("release " + user + " " + img.Digest)
	return nil
}

type recNet struct {
	rt *fakeRT
	mu sync.Mutex
}

func (n *recNet) Attach(ctx context.Context, s *ContainerSpec, p Proc) (*NetInfo, error) {
	n.rt.record("attach " + s.Name)
	return &NetInfo{}, nil
}

func (n *recNet) Detach(ctx context.Context, name string) error {
	n.rt.record("detach " + name)
	return nil
}

func indexOf(calls []string, c string) int {
	for i, x := range calls {
		if x == c {
			return i
		}
	}
	return -1
}

// TestAdoptCreatedNotStarted: an agent killed between Create and Start
// (during network setup) leaves an init held before exec. The next agent
// must not adopt it as running: it kills and deletes it, releases its
// image hold and network, and creates the container afresh. A container
// recorded as starting (no pid yet) is cleaned up before its new create.
func TestAdoptCreatedNotStarted(t *testing.T) {
	held := exec.Command("sleep", "30") // stands for the held init
	if err := held.Start(); err != nil {
		t.Skip("no sleep binary:", err)
	}
	defer held.Wait()
	defer held.Process.Kill()
	start, err := ProcStartTime(held.Process.Pid)
	if err != nil {
		t.Skip("no /proc:", err)
	}
	dir := t.TempDir()
	os.WriteFile(dir+"/otok", []byte("config container web\n option image busybox\n option net bridge\n"+
		"config container api\n option image busybox\n option restart always\n"), 0o644)
	os.MkdirAll(dir+"/state/agent", 0o700)
	// api was starting when the agent died: recorded running, no pid yet
	spec := &ContainerSpec{Name: "api", Image: "busybox", Restart: RestartPolicy{Mode: RestartAlways}, Autostart: true, Source: "uci"}
	st := stateFile{Version: stateVersion, Ctrs: map[string]*ctrRecord{
		"api": {Running: true, Run: spec, Want: true, Image: &Image{Name: "busybox", Digest: "d-busybox"}},
	}}
	b, _ := encMode.Marshal(st)
	os.WriteFile(dir+"/state/agent/state.cbor", b, 0o600)

	rt := &neverStartedRT{fakeRT: newFakeRT(), created: map[string]bool{"web": true, "mine": true}}
	rt.list = []RuntimeState{
		{Name: "web", Proc: Proc{Pid: held.Process.Pid, StartTime: start}, Running: true, Agent: true,
			Image: "busybox", Digest: "d-busybox"},
		// created by `otok create`, not by an agent: the user's
		{Name: "mine", Proc: Proc{Pid: held.Process.Pid, StartTime: start}, Running: true},
	}
	clock := newFakeClock()
	a := New(Options{ConfigPath: dir + "/otok", StateDir: dir + "/state", Runtime: rt,
		Store: recStore{rt: rt.fakeRT}, Network: &recNet{rt: rt.fakeRT}, Clock: clock, Log: newTestLogger()})
	a.Load()
	if _, err := a.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	e := &testEnv{t: t, a: a, rt: rt.fakeRT, clock: clock}
	s := e.waitState("web", StateRunning)
	if s.Adopted || s.Pid == held.Process.Pid {
		t.Errorf("the never-started init was adopted: %+v", s)
	}
	e.waitState("api", StateRunning)

	rt.mu.Lock()
	calls := append([]string(nil), rt.calls...)
	rt.mu.Unlock()
	order := []string{"kill web SIGKILL", "detach web", "delete web", "release web d-busybox", "create web", "attach web", "start web"}
	last := -1
	for _, c := range order {
		i := indexOf(calls, c)
		if i < 0 || i < last {
			t.Fatalf("want %q in order %v; calls %v", c, order, calls)
		}
		last = i
	}
	for _, c := range []string{"delete api", "release api d-busybox"} {
		if i := indexOf(calls, c); i < 0 || i > indexOf(calls, "create api") {
			t.Errorf("%q not before the new create: %v", c, calls)
		}
	}
	if len(rt.callsOf("kill mine")) != 0 || len(rt.callsOf("delete mine")) != 0 {
		t.Errorf("a created container not of the agent was touched: %v", calls)
	}
	if _, err := a.Inspect("mine"); err == nil {
		t.Error("a created container not of the agent was adopted")
	}
}
