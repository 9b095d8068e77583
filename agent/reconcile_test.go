package agent

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestReconcileMatrix: reconcile converges from every mix of actual state
// (none, running, exited, restart pending, stopped by the user) and
// desired state (gone, same, changed, limits changed, bad definition,
// autostart off) of one container, next to an unrelated one that must
// never be touched.
func TestReconcileMatrix(t *testing.T) {
	actuals := []string{"none", "running", "exited", "restarting", "stopped"}
	desireds := []string{"gone", "same", "changed", "limits", "bad", "noautostart"}
	section := func(restart, extra string) string {
		return fmt.Sprintf("config container x\n option image busybox\n option restart %s\n list command /bin/a\n%s", restart, extra)
	}
	other := "config container other\n option image busybox\n"
	for _, act := range actuals {
		for _, des := range desireds {
			t.Run(act+"/"+des, func(t *testing.T) {
				restart := "no"
				if act == "restarting" {
					restart = "always"
				}
				v1 := other
				if act != "none" {
					v1 += section(restart, "")
				}
				rt := newFakeRT()
				e := newTestAgent(t, v1, rt)
				e.waitState("other", StateRunning)
				ctx := context.Background()
				switch act {
				case "running":
					e.waitState("x", StateRunning)
				case "exited":
					e.waitState("x", StateRunning)
					rt.exit("x", 1)
					e.waitState("x", StateExited)
				case "restarting":
					e.waitState("x", StateRunning)
					rt.exit("x", 1)
					e.waitState("x", StateRestarting)
				case "stopped":
					e.waitState("x", StateRunning)
					if _, err := e.a.Stop(ctx, "x", time.Second); err != nil {
						t.Fatal(err)
					}
				}
				var x0 *ContainerStatus
				if act != "none" {
					x0, _ = e.a.Inspect("x")
				}
				v2 := other
				switch des {
				case "same":
					v2 += section(restart, "")
				case "changed":
					v2 += strings.Replace(section(restart, ""), "/bin/a", "/bin/b", 1)
				case "limits":
					v2 += section(restart, " option memory 64M\n")
				case "bad":
					v2 += section(restart, " option memory 3x\n")
				case "noautostart":
					v2 += section(restart, " option autostart 0\n")
				}
				os.WriteFile(e.dir+"/otok", []byte(v2), 0o644)
				creates := len(rt.callsOf("create x"))
				r, err := e.a.Reload(ctx)
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond) // starts run in the background
				want := expectReconcile(act, des)
				e.waitFor("x "+want, func() bool { return e.state("x") == want })
				if want == StateRunning && (act == "running" || act == "none") {
					newInstance := des == "changed" || des == "limits" || act == "none"
					if got := len(rt.callsOf("create x")) > creates; got != newInstance {
						t.Errorf("new instance %v, want %v (reply %+v)", got, newInstance, r)
					}
				}
				if des == "bad" && !strings.Contains(r.Errors["x"], "option memory") {
					t.Errorf("errors %v", r.Errors)
				}
				if st, _ := e.a.Inspect("x"); st != nil && x0 != nil && des == "same" && st.Pid != x0.Pid {
					t.Errorf("same definition, new pid")
				}
				if n := len(rt.callsOf("create other")); n != 1 || e.state("other") != StateRunning {
					t.Errorf("unrelated container touched: %d creates, %s", n, e.state("other"))
				}
				// converged: a second reload changes nothing
				r2, _ := e.a.Reload(ctx)
				if des != "bad" && len(r2.Restart)+len(r2.Updated)+len(r2.Removed)+len(r2.Started) != 0 {
					t.Errorf("second reload did something: %+v", r2)
				}
			})
		}
	}
}

// expectReconcile is the state x ends in.
func expectReconcile(act, des string) string {
	switch {
	case des == "gone":
		return "absent"
	case act == "none" && des == "bad":
		return "absent"
	case act == "none" && des == "noautostart":
		return StateCreated
	case act == "none":
		return StateRunning
	case act == "running":
		return StateRunning // kept, or recreated with the new definition
	case act == "exited":
		return StateExited // not wanted until started again
	case act == "restarting":
		return StateRestarting // the pending restart applies the new definition
	case act == "stopped":
		return StateStopped
	}
	return "?"
}

// countingStore counts resolves of each image.
type countingStore struct {
	fakeStore
	mu sync.Mutex
	n  map[string]int
}

func (s *countingStore) Resolve(ctx context.Context, ref string) (*Image, error) {
	s.mu.Lock()
	s.n[ref]++
	s.mu.Unlock()
	return s.fakeStore.Resolve(ctx, ref)
}

// A container whose image is missing waits; its failed start does not
// trigger another try at once (it did: a tight retry loop, which kept it
// "starting" most of the time on a slow router). It is tried again when
// another container starts, at RetryInterval, or at an image import.
func TestMissingImageWaitsWithoutLoop(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/otok", []byte("config container ghost\n option image missing\nconfig container good\n option image busybox\n"), 0o644)
	st := &countingStore{n: map[string]int{}}
	a := New(Options{ConfigPath: dir + "/otok", StateDir: dir + "/state", Runtime: newFakeRT(), Store: st, Clock: newFakeClock(), Log: newTestLogger()})
	a.Load()
	if _, err := a.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	e := &testEnv{t: t, a: a}
	e.waitState("good", StateRunning)
	e.waitState("ghost", StateWaiting)
	time.Sleep(300 * time.Millisecond)
	st.mu.Lock()
	n := st.n["missing"]
	st.mu.Unlock()
	if n > 3 {
		t.Errorf("missing image resolved %d times in 300 ms: a retry loop", n)
	}
	if s := e.state("ghost"); s != StateWaiting {
		t.Errorf("ghost %s", s)
	}
}
