package agent

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func ptr[T any](v T) *T { return &v }

// A live limit update the runtime refuses is an error of the reload, not
// "updated": the container keeps running with its old limits, its error
// says why, and the next reload tries again.
func TestReloadFailedLiveUpdate(t *testing.T) {
	rt := newFakeRT()
	rt.failUpdate = map[string]error{}
	up := fakeUpdater{rt}
	e := newTestAgent(t, "config container lim\n option image busybox\n option memory 32M\n", up)
	e.waitState("lim", StateRunning)
	rt.mu.Lock()
	rt.failUpdate["lim"] = errors.New("memory.limit_in_bytes: device or resource busy")
	rt.mu.Unlock()
	os.WriteFile(e.dir+"/otok", []byte("config container lim\n option image busybox\n option memory 8M\n"), 0o644)
	r, err := e.a.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Updated) != 0 || len(r.Restart) != 0 {
		t.Errorf("failed update reported as done: %+v", r)
	}
	if !strings.Contains(r.Errors["lim"], "limits not applied live") || !strings.Contains(r.Errors["lim"], "device or resource busy") {
		t.Errorf("errors %v", r.Errors)
	}
	st, _ := e.a.Inspect("lim")
	if st.State != StateRunning || !strings.Contains(st.Error, "limits not applied live") {
		t.Errorf("status %s %q", st.State, st.Error)
	}
	// the runtime accepts it now: the next reload applies it and clears the error
	rt.mu.Lock()
	delete(rt.failUpdate, "lim")
	rt.mu.Unlock()
	r, _ = e.a.Reload(context.Background())
	if !slices.Equal(r.Updated, []string{"lim"}) || r.Errors["lim"] != "" {
		t.Errorf("retry: %+v", r)
	}
	if st, _ := e.a.Inspect("lim"); st.Error != "" {
		t.Errorf("error kept after a successful update: %q", st.Error)
	}
	if got := rt.callsOf("update"); !slices.Equal(got, []string{"update-failed lim 8388608", "update lim 8388608"}) {
		t.Errorf("calls %v", got)
	}
	// and a third reload has nothing to do
	if r, _ = e.a.Reload(context.Background()); len(r.Updated) != 0 {
		t.Errorf("third reload: %+v", r)
	}
}

func TestUpdateOp(t *testing.T) {
	rt := newFakeRT()
	rt.failUpdate = map[string]error{}
	up := fakeUpdater{rt}
	e := newTestAgent(t, "config container conf\n option image busybox\n option memory 32M\nconfig container idle\n option image busybox\n option autostart 0\n", up)
	ctx := context.Background()
	e.waitState("conf", StateRunning)
	if _, err := e.a.Run(ctx, &ContainerSpec{Name: "api", Image: "busybox", Pids: 10}, true); err != nil {
		t.Fatal(err)
	}

	// API container: live and saved; fields not given are kept
	rep, err := e.a.Update(ctx, &UpdateRequest{Name: "api", Memory: ptr(int64(64 << 20))})
	if err != nil || !rep.Live || !rep.Saved || rep.Note != "" {
		t.Fatalf("api: %+v %v", rep, err)
	}
	st, _ := e.a.Inspect("api")
	if st.Spec.Memory != 64<<20 || st.Spec.Pids != 10 {
		t.Errorf("api spec: memory %d pids %d", st.Spec.Memory, st.Spec.Pids)
	}
	// saved in the state file: a new agent on the same state dir has it
	a2 := New(Options{ConfigPath: e.dir + "/otok", StateDir: e.dir + "/state", Runtime: up, Store: fakeStore{}, Clock: e.clock, Log: newTestLogger()})
	a2.Load()
	if sf := a2.loadState(); sf == nil || sf.API["api"] == nil || sf.API["api"].Memory != 64<<20 {
		t.Errorf("state file: %+v", sf)
	}

	// config container: live, with a note that the file wins at reload
	rep, err = e.a.Update(ctx, &UpdateRequest{Name: "conf", Pids: ptr(int64(50))})
	if err != nil || !rep.Live || rep.Saved || !strings.Contains(rep.Note, "defined in") {
		t.Fatalf("conf: %+v %v", rep, err)
	}
	// a reload puts the file's limits back (the instance was updated to pids 50)
	r, _ := e.a.Reload(ctx)
	if !slices.Equal(r.Updated, []string{"conf"}) {
		t.Errorf("reload after a live update: %+v", r)
	}

	// refused: nothing changes
	calls := len(rt.callsOf("update"))
	for _, tc := range []struct {
		req  UpdateRequest
		code Code
		msg  string
	}{
		{UpdateRequest{Name: "api"}, CodeInvalid, "nothing to change"},
		{UpdateRequest{Name: "api", Memory: ptr(int64(-5))}, CodeInvalid, "memory -5"},
		{UpdateRequest{Name: "api", CPUs: ptr(-1.0)}, CodeInvalid, "cpus -1"},
		{UpdateRequest{Name: "api", Pids: ptr(int64(-1))}, CodeInvalid, "pids -1"},
		{UpdateRequest{Name: "api", Memory: ptr(int64(1 << 20))}, CodeInvalid, "at least 4M"},
		{UpdateRequest{Name: "api", Pids: ptr(int64(1))}, CodeInvalid, "want at least 2"},
		{UpdateRequest{Name: "ghost", Pids: ptr(int64(1))}, CodeNotFound, "ghost"},
		{UpdateRequest{Name: "idle", Pids: ptr(int64(1))}, CodeConflict, "edit its limits there"},
	} {
		_, err := e.a.Update(ctx, &tc.req)
		if CodeOf(err) != tc.code || err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%+v: %v (%s)", tc.req, err, CodeOf(err))
		}
	}
	if len(rt.callsOf("update")) != calls {
		t.Error("a refused update reached the runtime")
	}

	// the runtime refuses: an error, and the desired state is unchanged
	rt.mu.Lock()
	rt.failUpdate["api"] = errors.New("memory.max: device or resource busy")
	rt.mu.Unlock()
	if _, err := e.a.Update(ctx, &UpdateRequest{Name: "api", Memory: ptr(int64(8 << 20))}); CodeOf(err) != CodeInvalid ||
		!strings.Contains(err.Error(), "container api: update: memory.max") {
		t.Errorf("runtime refusal: %v", err)
	}
	if st, _ := e.a.Inspect("api"); st.Spec.Memory != 64<<20 {
		t.Errorf("refused update changed the spec: %d", st.Spec.Memory)
	}

	// a stopped API container: saved for the next start, not live
	rt.mu.Lock()
	delete(rt.failUpdate, "api")
	rt.mu.Unlock()
	if _, err := e.a.Stop(ctx, "api", 0); err != nil {
		t.Fatal(err)
	}
	calls = len(rt.callsOf("update"))
	rep, err = e.a.Update(ctx, &UpdateRequest{Name: "api", CPUs: ptr(0.5)})
	if err != nil || rep.Live || !rep.Saved {
		t.Fatalf("stopped: %+v %v", rep, err)
	}
	if st, _ := e.a.Inspect("api"); st.Spec.CPUs != 0.5 || len(rt.callsOf("update")) != calls {
		t.Errorf("stopped update: cpus %v, runtime calls %d→%d", st.Spec.CPUs, calls, len(rt.callsOf("update")))
	}
}

func TestKillOp(t *testing.T) {
	rt := newFakeRT()
	e := newTestAgent(t, "config container web\n option image busybox\n option restart always\n", rt)
	ctx := context.Background()
	e.waitState("web", StateRunning)

	if _, err := e.a.Kill(ctx, "web", "NOPE"); CodeOf(err) != CodeInvalid || !strings.Contains(err.Error(), "unknown signal name") {
		t.Errorf("bad signal: %v", err)
	}
	if _, err := e.a.Kill(ctx, "ghost", ""); CodeOf(err) != CodeNotFound {
		t.Errorf("ghost: %v", err)
	}

	// a signal that does not end the container: it keeps running
	rt.mu.Lock()
	rt.ignoreTerm["web"] = true
	rt.mu.Unlock()
	if _, err := e.a.Kill(ctx, "web", "hup"); err != nil {
		t.Fatal(err)
	}
	if got := rt.callsOf("kill web"); !slices.Equal(got, []string{"kill web SIGHUP"}) {
		t.Errorf("calls %v", got)
	}
	// a crash after it is still a crash: restart policy always applies
	rt.exit("web", 1)
	e.waitState("web", StateRestarting)
	e.clock.Advance(BackoffMax)
	e.waitState("web", StateRunning)

	// a stop signal is a manual stop, as docker kill: no restart
	rt.mu.Lock()
	rt.ignoreTerm["web"] = false
	rt.mu.Unlock()
	if _, err := e.a.Kill(ctx, "web", "15"); err != nil {
		t.Fatal(err)
	}
	st := e.waitState("web", StateStopped)
	if st.Exit == nil || st.Exit.Signal != "SIGTERM" {
		t.Errorf("exit %+v", st.Exit)
	}
	if p := e.clock.pending(); len(p) != 0 {
		t.Errorf("restart scheduled after kill: %v", p)
	}
	if _, err := e.a.Kill(ctx, "web", "KILL"); CodeOf(err) != CodeConflict {
		t.Errorf("kill of a stopped container: %v", err)
	}
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"": syscall.SIGKILL, "TERM": syscall.SIGTERM, "sigusr1": syscall.SIGUSR1,
		"SIGHUP": syscall.SIGHUP, "9": syscall.SIGKILL} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	for _, in := range []string{"0", "65", "-1", "FOO", "SIG"} {
		if _, err := ParseSignal(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
