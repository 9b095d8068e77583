package fleet

import (
	"context"
	"io"
	"log"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/otok/otok/agent"
)

// The adapter against the real agent with no runtime, store or network
// (they are "unavailable"): commands map onto the API with its error
// codes, desired containers are created and tracked, local containers are
// left alone, and the status document is filled.
func TestAgentAdapter(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "otok")
	if err := os.WriteFile(conf, []byte("config agent\n\toption state '"+dir+"/state'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "state", "agent"), 0o700)
	a := agent.New(agent.Options{ConfigPath: conf, StateDir: filepath.Join(dir, "state"), Socket: filepath.Join(dir, "sock"), Version: "test",
		Log: log.New(io.Discard, "", 0)})
	defer a.Close()
	a.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ad := &AgentAdapter{A: a, Board: Board{Model: "x", Arch: "y"}, ManagedFile: filepath.Join(dir, "fleet.cbor")}
	events := ad.Events(ctx)

	st, err := ad.Status(ctx)
	if err != nil || st.Agent.Version != "test" || st.Board.Model != "x" {
		t.Fatalf("status %v %+v", err, st)
	}
	if _, err := ad.Do(ctx, &Command{Op: "stop", Args: Args{Name: "nope"}}, nil); CodeOf(err) != CodeNotFound {
		t.Fatalf("stop missing: %v (%s)", err, CodeOf(err))
	}
	if _, err := ad.Do(ctx, &Command{Op: "import", Args: Args{URL: "http://x", Digest: make([]byte, 32)}}, nil); CodeOf(err) != CodeUnavailable {
		t.Fatalf("import: %v", err)
	}
	if _, err := ad.Do(ctx, &Command{Op: "run", Args: Args{Spec: &ContainerSpec{Name: "local", Image: "busybox", Restart: "bogus"}}}, nil); CodeOf(err) != CodeInvalid {
		t.Fatalf("bad restart: %v", err)
	}
	// A container made locally (through the API, like the CLI does).
	if _, err := a.Run(ctx, &agent.ContainerSpec{Name: "local", Image: "busybox"}, false); err != nil && agent.CodeOf(err) != agent.CodeUnavailable {
		t.Fatalf("local run: %v", err)
	}
	errs := ad.Apply(ctx, nil, []ContainerSpec{{Name: "web", Image: "busybox", Stopped: true}, {Name: "local", Image: "busybox"}})
	var sawConflict bool
	for _, e := range errs {
		if e.Item == "container/local" && e.Code == CodeConflict {
			sawConflict = true
		}
		if e.Item == "container/web" && e.Code != CodeUnavailable {
			t.Errorf("web: %+v", e)
		}
	}
	if !sawConflict {
		t.Fatalf("no conflict for the local container: %+v", errs)
	}
	if _, err := a.Inspect("web"); err != nil {
		t.Fatalf("web not created: %v", err)
	}
	// A new adapter (agent restart) still knows web is the fleet's.
	ad2 := &AgentAdapter{A: a, ManagedFile: ad.ManagedFile}
	ad2.Apply(ctx, nil, nil)
	if _, err := a.Inspect("web"); agent.CodeOf(err) != agent.CodeNotFound {
		t.Fatalf("web not removed when no longer desired: %v", err)
	}
	if _, err := a.Inspect("local"); err != nil {
		t.Fatalf("local container touched: %v", err)
	}
	ps, err := ad.Do(ctx, &Command{Op: "ps"}, nil)
	if err != nil || len(ps.([]Container)) != 1 {
		t.Fatalf("ps: %v %+v", err, ps)
	}
	select {
	case e := <-events:
		t.Logf("event: %+v", e)
	case <-time.After(5 * time.Second):
		t.Fatal("no agent event")
	}
}

func TestForAgent(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "otok")
	os.WriteFile(conf, []byte("config agent\n"), 0o600)
	a := agent.New(agent.Options{ConfigPath: conf, StateDir: filepath.Join(dir, "state"), Socket: filepath.Join(dir, "sock"), Version: "v9", Log: log.New(io.Discard, "", 0)})
	a.Load()
	defer a.Close()
	opts := map[string]string{"broker": "tcp://127.0.0.1:1883", "group": "lab"}
	get := func(n string) (string, bool) { v, ok := opts[n]; return v, ok }
	list := func(n string) []string {
		if v, ok := opts[n]; ok {
			return []string{v}
		}
		return nil
	}
	s, on, err := ForAgent(a, get, list, AgentOptions{DefaultID: DeviceIDFromMAC("94:83:3C:1A:2B:3C"), StateDir: filepath.Join(dir, "fleet"), Board: Board{Model: "m"}})
	if err != nil || !on || s.ID() != "94833c1a2b3c" {
		t.Fatalf("%v %v %+v", err, on, s)
	}
	opts["enabled"] = "0"
	if s, on, err := ForAgent(a, get, list, AgentOptions{DefaultID: "x"}); s != nil || on || err != nil {
		t.Fatalf("disabled: %v %v %v", s, on, err)
	}
}
