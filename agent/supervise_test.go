package agent

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestBackoffDelay(t *testing.T) {
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second,
		64 * time.Second, 128 * time.Second, 256 * time.Second, 300 * time.Second, 300 * time.Second}
	for i, w := range want {
		if got := backoffDelay(i + 1); got != w {
			t.Errorf("backoffDelay(%d) = %s, want %s", i+1, got, w)
		}
	}
	if backoffDelay(1000) != BackoffMax {
		t.Error("no cap")
	}
}

func TestShouldRestart(t *testing.T) {
	ok, fail, sig, unknown := &ExitInfo{}, &ExitInfo{Code: 1}, &ExitInfo{Code: 137, Signal: "SIGKILL"}, &ExitInfo{Unknown: true}
	tests := []struct {
		policy   string
		exit     *ExitInfo
		stopped  bool
		failures int
		want     bool
	}{
		{"no", fail, false, 0, false},
		{"always", ok, false, 0, true},
		{"always", fail, false, 99, true},
		{"always", fail, true, 0, false},
		{"unless-stopped", ok, false, 0, true},
		{"unless-stopped", ok, true, 0, false},
		{"on-failure", ok, false, 0, false},
		{"on-failure", fail, false, 50, true},
		{"on-failure", sig, false, 0, true},
		{"on-failure", unknown, false, 0, true},
		{"on-failure:2", fail, false, 1, true},
		{"on-failure:2", fail, false, 2, false},
		{"on-failure:2", fail, true, 0, false},
	}
	for _, tt := range tests {
		p, _ := ParseRestart(tt.policy)
		if got := shouldRestart(p, tt.exit, tt.stopped, tt.failures); got != tt.want {
			t.Errorf("%s exit=%+v stopped=%v failures=%d: %v", tt.policy, tt.exit, tt.stopped, tt.failures, got)
		}
	}
}

func TestCrashRestartBackoff(t *testing.T) {
	rt := newFakeRT()
	e := newTestAgent(t, "config container web\n option image busybox\n option restart always\n", rt)
	e.waitState("web", StateRunning)
	for i, want := range []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300} {
		want *= time.Second
		if want > BackoffMax {
			want = BackoffMax
		}
		rt.exit("web", 1)
		st := e.waitState("web", StateRestarting)
		if p := e.clock.pending(); len(p) != 1 || p[0] != want {
			t.Fatalf("restart %d: pending timers %v, want [%s]", i+1, p, want)
		}
		if st.NextRestart.Sub(e.clock.Now()) != want {
			t.Errorf("ps shows next restart in %s", st.NextRestart.Sub(e.clock.Now()))
		}
		e.clock.Advance(want - time.Millisecond)
		if e.state("web") != StateRestarting {
			t.Fatal("restarted before the backoff ended")
		}
		e.clock.Advance(time.Millisecond)
		st = e.waitState("web", StateRunning)
		if st.Restarts != i+1 {
			t.Fatalf("restarts = %d, want %d", st.Restarts, i+1)
		}
	}
	// 10 minutes of running reset the backoff
	e.clock.Advance(BackoffReset)
	rt.exit("web", 0)
	e.waitState("web", StateRestarting)
	if p := e.clock.pending(); len(p) != 1 || p[0] != time.Second {
		t.Fatalf("after a healthy run: pending %v, want [1s]", p)
	}
	if n := len(rt.callsOf("create web")); n != 12 {
		t.Errorf("%d creates", n)
	}
}

func TestOnFailureGivesUp(t *testing.T) {
	rt := newFakeRT()
	e := newTestAgent(t, "config container job\n option image busybox\n option restart on-failure:2\n", rt)
	e.waitState("job", StateRunning)
	rt.exit("job", 3)
	e.waitState("job", StateRestarting)
	e.clock.Advance(time.Second)
	e.waitState("job", StateRunning)
	rt.exit("job", 3)
	e.waitState("job", StateRestarting)
	e.clock.Advance(2 * time.Second)
	e.waitState("job", StateRunning)
	rt.exit("job", 3)
	st := e.waitState("job", StateExited)
	if st.Exit == nil || st.Exit.Code != 3 || st.Restarts != 2 {
		t.Errorf("status %+v", st)
	}
	if len(e.clock.pending()) != 0 {
		t.Error("a restart is still scheduled")
	}
	var types []string
	for _, ev := range e.a.events.since(0) {
		if ev.Container == "job" {
			types = append(types, ev.Type)
		}
	}
	if !slices.Contains(types, EvGiveUp) {
		t.Errorf("events %v lack giveup", types)
	}
}

func TestOnFailureCleanExit(t *testing.T) {
	rt := newFakeRT()
	e := newTestAgent(t, "config container job\n option image busybox\n option restart on-failure\n", rt)
	e.waitState("job", StateRunning)
	rt.exit("job", 0)
	e.waitState("job", StateExited)
	if len(e.clock.pending()) != 0 {
		t.Error("restart after a clean exit")
	}
}

func TestRestartNo(t *testing.T) {
	rt := newFakeRT()
	e := newTestAgent(t, "config container once\n option image busybox\n", rt)
	e.waitState("once", StateRunning)
	rt.exit("once", 1)
	st := e.waitState("once", StateExited)
	if st.Exit.Code != 1 || len(e.clock.pending()) != 0 {
		t.Errorf("%+v", st)
	}
	// deleted from the runtime after exit
	e.waitFor("delete", func() bool { return len(rt.callsOf("delete once")) >= 2 })
}

func TestUnlessStoppedSurvivesAgentRestart(t *testing.T) {
	rt := newFakeRT()
	uci := "config container web\n option image busybox\n option restart unless-stopped\n"
	e := newTestAgent(t, uci, rt)
	e.waitState("web", StateRunning)
	if _, err := e.a.Stop(context.Background(), "web", time.Second); err != nil {
		t.Fatal(err)
	}
	e.waitState("web", StateStopped)
	if len(e.clock.pending()) != 0 {
		t.Fatal("restart scheduled after a stop")
	}
	e.a.Close()
	// a new agent on the same state dir keeps it stopped
	a2 := New(Options{ConfigPath: e.dir + "/otok", StateDir: e.dir + "/state", Runtime: rt, Store: fakeStore{}, Clock: e.clock, Log: e.a.log})
	a2.Load()
	if _, err := a2.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	time.Sleep(50 * time.Millisecond)
	if st, _ := a2.Inspect("web"); st.State == StateRunning || st.State == StateStarting {
		t.Fatalf("unless-stopped container started again: %+v", st)
	}
	if _, err := a2.Start(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
}

func TestHealthCheckRestarts(t *testing.T) {
	rt := newFakeRT()
	e := newTestAgent(t, `config container web
 option image busybox
 option healthcheck 'exec /bin/check'
 option health_interval 5
 option health_retries 2
 option health_restart 1
 option stop_timeout 1
`, rt)
	st := e.waitState("web", StateRunning)
	if st.Health != HealthStarting {
		t.Errorf("health %q", st.Health)
	}
	e.clock.Advance(5 * time.Second)
	e.waitFor("healthy", func() bool { s, _ := e.a.Inspect("web"); return s.Health == HealthHealthy })
	rt.mu.Lock()
	rt.execCode = 1
	rt.mu.Unlock()
	e.waitFor("next check scheduled", func() bool { return len(e.clock.pending()) == 1 })
	e.clock.Advance(5 * time.Second)
	e.waitFor("one failure", func() bool {
		e.a.mu.Lock()
		defer e.a.mu.Unlock()
		return e.a.ctrs["web"].healthFails == 1
	})
	if s, _ := e.a.Inspect("web"); s.Health != HealthHealthy {
		t.Fatalf("unhealthy after one failure: %s", s.Health)
	}
	e.waitFor("next check scheduled", func() bool { return len(e.clock.pending()) == 1 })
	e.clock.Advance(5 * time.Second)
	e.waitFor("restart", func() bool { s, _ := e.a.Inspect("web"); return s.Restarts == 1 && s.State == StateRunning })
	if len(rt.callsOf("kill web SIGTERM")) != 1 || len(rt.callsOf("create web")) != 2 {
		t.Errorf("calls %v", rt.calls)
	}
	var saw bool
	for _, ev := range e.a.events.since(0) {
		saw = saw || ev.Type == EvHealth && ev.Health == HealthUnhealthy
	}
	if !saw {
		t.Error("no unhealthy event")
	}
}

func TestDependsOrder(t *testing.T) {
	rt := newFakeRT()
	e := newTestAgent(t, `config agent
 option stop_timeout 1
config container app
 option image busybox
 list depends db
 list depends cache
config container cache
 option image busybox
 list depends db
config container db
 option image busybox
`, rt)
	for _, n := range []string{"db", "cache", "app"} {
		e.waitState(n, StateRunning)
	}
	if got := rt.callsOf("start "); !slices.Equal(got, []string{"start db", "start cache", "start app"}) {
		t.Errorf("start order %v", got)
	}
	e.a.Shutdown(context.Background())
	if got := rt.callsOf("kill "); !slices.Equal(got, []string{"kill app SIGTERM", "kill cache SIGTERM", "kill db SIGTERM"}) {
		t.Errorf("stop order %v", got)
	}
	for _, n := range []string{"db", "cache", "app"} {
		if s := e.state(n); s != StateStopped {
			t.Errorf("%s: %s", n, s)
		}
	}
	// a graceful agent stop is not a user stop: the next agent starts them
	a2 := New(Options{ConfigPath: e.dir + "/otok", StateDir: e.dir + "/state", Runtime: rt, Store: fakeStore{}, Clock: e.clock, Log: e.a.log})
	a2.Load()
	if _, err := a2.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	e2 := &testEnv{t: t, a: a2, rt: rt, clock: e.clock}
	for _, n := range []string{"db", "cache", "app"} {
		e2.waitState(n, StateRunning)
	}
}

func TestStopTimeoutKills(t *testing.T) {
	rt := newFakeRT()
	rt.ignoreTerm["stubborn"] = true
	e := newTestAgent(t, "config container stubborn\n option image busybox\n option restart always\n", rt)
	e.waitState("stubborn", StateRunning)
	t0 := time.Now()
	if _, err := e.a.Stop(context.Background(), "stubborn", 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < 100*time.Millisecond || d > 3*time.Second {
		t.Errorf("stop took %s", d)
	}
	if got := rt.callsOf("kill "); !slices.Equal(got, []string{"kill stubborn SIGTERM", "kill stubborn SIGKILL"}) {
		t.Errorf("kills %v", got)
	}
	if e.state("stubborn") != StateStopped || len(e.clock.pending()) != 0 {
		t.Error("restarted after stop")
	}
}

func TestDependencyCycleAndMissing(t *testing.T) {
	rt := newFakeRT()
	e := newTestAgent(t, `config container a
 option image busybox
 list depends b
config container b
 option image busybox
 list depends a
config container c
 option image busybox
 list depends ghost
config container d
 option image missing
config container ok
 option image busybox
`, rt)
	e.waitState("ok", StateRunning)
	for _, n := range []string{"a", "b"} {
		st := e.waitState(n, StateError)
		if !strings.Contains(st.Error, "dependency cycle") {
			t.Errorf("%s: %q", n, st.Error)
		}
	}
	if st := e.waitState("c", StateWaiting); !strings.Contains(st.Error, "depends on ghost, which does not exist") {
		t.Errorf("c: %q", st.Error)
	}
	if st := e.waitState("d", StateWaiting); !strings.Contains(st.Error, "container d: image missing: not in the store") {
		t.Errorf("d: %q", st.Error)
	}
}

func TestReconcileConverges(t *testing.T) {
	rt := newFakeRT()
	up := fakeUpdater{rt}
	uci1 := `config container same
 option image busybox
config container limits
 option image busybox
 option memory 32M
config container changed
 option image busybox
 list command /bin/a
config container gone
 option image busybox
config container idle
 option image busybox
 option autostart 0
config container broken
 option image busybox
`
	e := newTestAgent(t, uci1, up)
	for _, n := range []string{"same", "limits", "changed", "gone", "broken"} {
		e.waitState(n, StateRunning)
	}
	if e.state("idle") != StateCreated {
		t.Fatalf("idle: %s", e.state("idle"))
	}
	// an API container is desired state too and survives a reload
	if _, err := e.a.Run(context.Background(), &ContainerSpec{Name: "apiweb", Image: "busybox"}, true); err != nil {
		t.Fatal(err)
	}
	uci2 := `config container same
 option image busybox
 option restart always
config container limits
 option image busybox
 option memory 64M
config container changed
 option image busybox
 list command /bin/b
config container idle
 option image busybox
 option autostart 0
config container broken
 option image busybox
 option memory lots
config container new
 option image busybox
`
	if err := os.WriteFile(e.dir+"/otok", []byte(uci2), 0o644); err != nil {
		t.Fatal(err)
	}
	creates := len(rt.callsOf("create same"))
	r, err := e.a.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Updated, []string{"limits"}) || !slices.Equal(r.Restart, []string{"changed"}) ||
		!slices.Equal(r.Removed, []string{"gone"}) || !slices.Equal(r.Started, []string{"new"}) {
		t.Errorf("reload reply %+v", r)
	}
	if !strings.Contains(r.Errors["broken"], "option memory") {
		t.Errorf("errors %v", r.Errors)
	}
	e.waitState("new", StateRunning)
	e.waitState("changed", StateRunning)
	if e.state("gone") != "absent" || e.state("same") != StateRunning || e.state("broken") != StateRunning ||
		e.state("apiweb") != StateRunning || e.state("idle") != StateCreated {
		t.Errorf("states: %+v", e.a.List(true).Containers)
	}
	if len(rt.callsOf("create same")) != creates {
		t.Error("unchanged container was recreated (restart policy edits apply live)")
	}
	if got := rt.callsOf("update "); !slices.Equal(got, []string{"update limits 67108864"}) {
		t.Errorf("updates %v", got)
	}
	// reload again: nothing to do
	r, _ = e.a.Reload(context.Background())
	if len(r.Restart)+len(r.Updated)+len(r.Removed)+len(r.Started) != 0 {
		t.Errorf("second reload not idempotent: %+v", r)
	}
	// a malformed file changes nothing
	os.WriteFile(e.dir+"/otok", []byte("config container 'x\n"), 0o644)
	if _, err := e.a.Reload(context.Background()); err == nil || !strings.Contains(err.Error(), "otok:1: unterminated single quote") {
		t.Errorf("malformed reload: %v", err)
	}
	if e.state("new") != StateRunning || e.a.Status().ConfigErr == "" {
		t.Error("malformed file changed state or was not reported")
	}
}

func TestRunConflictAndErrors(t *testing.T) {
	rt := newFakeRT()
	e := newTestAgent(t, "", rt)
	ctx := context.Background()
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := e.a.Run(ctx, &ContainerSpec{Name: "web", Image: "busybox"}, true)
			errs <- err
		}()
	}
	e1, e2 := <-errs, <-errs
	if (e1 == nil) == (e2 == nil) {
		t.Fatalf("racing runs: %v / %v", e1, e2)
	}
	bad := e1
	if bad == nil {
		bad = e2
	}
	if CodeOf(bad) != CodeConflict || bad.Error() != "container web: already exists" {
		t.Errorf("conflict: %v (%s)", bad, CodeOf(bad))
	}
	if _, err := e.a.Run(ctx, &ContainerSpec{Name: "x", Image: "missing"}, true); CodeOf(err) != CodeNotFound {
		t.Errorf("missing image: %v", err)
	}
	if _, err := e.a.Inspect("x"); CodeOf(err) != CodeNotFound {
		t.Error("failed run left a container behind")
	}
	if _, err := e.a.Run(ctx, &ContainerSpec{Name: "-bad", Image: "busybox"}, true); CodeOf(err) != CodeInvalid {
		t.Errorf("bad name: %v", err)
	}
	if _, err := e.a.Start(ctx, "web"); CodeOf(err) != CodeConflict {
		t.Errorf("start running: %v", err)
	}
	if err := e.a.Remove(ctx, "web", false); CodeOf(err) != CodeConflict {
		t.Errorf("remove running: %v", err)
	}
	if err := e.a.Remove(ctx, "web", true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Stop(ctx, "web", 0); CodeOf(err) != CodeNotFound {
		t.Errorf("stop removed: %v", err)
	}
}

// TestAdoptLiveProcess: a container recorded in the state file whose init
// still runs is re-adopted without being touched, and its exit is seen
// through the pidfd.
func TestAdoptLiveProcess(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep binary:", err)
	}
	defer cmd.Process.Kill()
	start, err := ProcStartTime(cmd.Process.Pid)
	if err != nil {
		t.Skip("no /proc:", err)
	}
	dir := t.TempDir()
	os.WriteFile(dir+"/otok", []byte("config container web\n option image busybox\n option restart always\n"+
		"config container unrecorded\n option image busybox\nconfig container stale\n option image busybox\n"), 0o644)
	os.MkdirAll(dir+"/state/agent", 0o700)
	spec := &ContainerSpec{Name: "web", Image: "busybox", Restart: RestartPolicy{Mode: RestartAlways}, Autostart: true, Source: "uci"}
	st := stateFile{Version: stateVersion, Ctrs: map[string]*ctrRecord{
		"web":  {Proc: Proc{Pid: cmd.Process.Pid, StartTime: start}, Running: true, Run: spec, Restarts: 4},
		"dead": {Proc: Proc{Pid: cmd.Process.Pid, StartTime: start + 1}, Running: true, Run: spec},
		// recorded before its start: the record says not running
		"stale": {Want: true, Restarts: 1},
	}}
	b, _ := encMode.Marshal(st)
	os.WriteFile(dir+"/state/agent/state.cbor", b, 0o600)

	// another container the agent created but did not record (killed
	// between create and its state write): the runtime lists it
	cmd2 := exec.Command("sleep", "30")
	if err := cmd2.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd2.Process.Kill()
	start2, _ := ProcStartTime(cmd2.Process.Pid)
	// the stale record's live instance: a process of its own (two
	// containers watching one pid race to reap it, and the loser sees an
	// unknown exit: armhf guest)
	cmd3 := exec.Command("sleep", "30")
	if err := cmd3.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd3.Process.Kill()
	start3, _ := ProcStartTime(cmd3.Process.Pid)
	rt := newFakeRT()
	rt.list = []RuntimeState{
		{Name: "unrecorded", Proc: Proc{Pid: cmd2.Process.Pid, StartTime: start2}, Running: true, Agent: true},
		{Name: "stale", Proc: Proc{Pid: cmd3.Process.Pid, StartTime: start3}, Running: true, Agent: true},
		{Name: "monitored", Proc: Proc{Pid: cmd2.Process.Pid, StartTime: start2}, Running: true}, // otok run -d: not ours
	}
	clock := newFakeClock()
	a := New(Options{ConfigPath: dir + "/otok", StateDir: dir + "/state", Runtime: rt, Store: fakeStore{}, Clock: clock, Log: newTestLogger()})
	a.Load()
	if _, err := a.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	e := &testEnv{t: t, a: a, rt: rt, clock: clock}
	s := e.waitState("web", StateRunning)
	if !s.Adopted || s.Pid != cmd.Process.Pid || s.Restarts != 4 {
		t.Errorf("adopted status %+v", s)
	}
	if len(rt.callsOf("create web")) != 0 || len(rt.callsOf("kill")) != 0 {
		t.Errorf("adoption touched the workload: %v", rt.calls)
	}
	// the pid-reused record is not adopted
	if s := e.state("dead"); s == StateRunning {
		t.Error("a reused pid was adopted")
	}
	if s, _ := a.Inspect("unrecorded"); s == nil || s.State != StateRunning || !s.Adopted || s.Pid != cmd2.Process.Pid {
		t.Errorf("unrecorded agent container: %+v", s)
	}
	// a record older than its live instance: adopted, not created afresh
	if s, _ := a.Inspect("stale"); s == nil || s.State != StateRunning || !s.Adopted || s.Pid != cmd3.Process.Pid {
		t.Errorf("stale record of a live instance: %+v", s)
	}
	if len(rt.callsOf("create stale")) != 0 {
		t.Errorf("stale: created afresh: %v", rt.calls)
	}
	if _, err := a.Inspect("monitored"); err == nil {
		t.Error("a container with its own monitor was adopted")
	}
	// its exit is seen (restart policy no: it stays down)
	cmd2.Process.Kill()
	e.waitState("unrecorded", StateExited)
	cmd.Process.Kill()
	e.waitState("web", StateRestarting)
	s, _ = a.Inspect("web")
	if s.Exit == nil || s.Exit.Signal != "SIGKILL" {
		t.Errorf("exit of a child seen through pidfd: %+v", s.Exit)
	}
}

// TestFailedStartRetried: a start that fails (the runtime refuses, e.g. a
// transient mount error) counts as a crash for the restart policy.
func TestFailedStartRetried(t *testing.T) {
	rt := newFakeRT()
	rt.failCreate["flaky"] = fmt.Errorf("rootfs: mount overlay: no such file or directory")
	e := newTestAgent(t, "config container flaky\n option image busybox\n option restart always\nconfig container once\n option image busybox\n", rt)
	st := e.waitState("flaky", StateRestarting)
	if !strings.Contains(st.Error, "mount overlay") {
		t.Errorf("error %q", st.Error)
	}
	if p := e.clock.pending(); len(p) != 1 || p[0] != time.Second {
		t.Fatalf("pending %v", p)
	}
	e.clock.Advance(time.Second)
	e.waitFor("second failure", func() bool { p := e.clock.pending(); return len(p) == 1 && p[0] == 2*time.Second })
	rt.mu.Lock()
	delete(rt.failCreate, "flaky")
	rt.mu.Unlock()
	e.clock.Advance(2 * time.Second)
	e.waitState("flaky", StateRunning)
	// restart policy no: a failed start is an error, not retried
	rt.mu.Lock()
	rt.failCreate["once"] = fmt.Errorf("boom")
	rt.mu.Unlock()
	rt.exit("once", 1)
	e.waitState("once", StateExited)
}

// TestShutdownBounded: a dependency chain of containers that ignore
// SIGTERM does not add up its stop timeouts: everything is down within the
// longest timeout + 3 s.
func TestShutdownBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 5 s")
	}
	rt := newFakeRT()
	for _, n := range []string{"a", "b", "c"} {
		rt.ignoreTerm[n] = true
	}
	e := newTestAgent(t, `config agent
 option stop_timeout 2
config container a
 option image busybox
config container b
 option image busybox
 list depends a
config container c
 option image busybox
 list depends b
`, rt)
	for _, n := range []string{"a", "b", "c"} {
		e.waitState(n, StateRunning)
	}
	t0 := time.Now()
	e.a.Shutdown(context.Background())
	d := time.Since(t0)
	if d > 5500*time.Millisecond || d < 4500*time.Millisecond {
		t.Errorf("shutdown took %s, want about 5 s (2 s longest timeout + 3 s)", d)
	}
	if got := rt.callsOf("kill "); !slices.Equal(got, []string{"kill c SIGTERM", "kill c SIGKILL", "kill b SIGTERM", "kill b SIGKILL", "kill a SIGTERM", "kill a SIGKILL"}) {
		t.Errorf("kills %v", got)
	}
}
