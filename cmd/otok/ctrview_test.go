package main

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/otok/otok/agent"
	"github.com/otok/otok/runtime"
)

// The same container seen by the runtime (no agent) and by the agent
// prints the same columns and the same JSON keys.
func TestCtrViewSameShape(t *testing.T) {
	e := &env{state: t.TempDir()}
	created := time.Now().Add(-time.Minute)
	rs := &runtime.State{Status: runtime.StatusRunning, Pid: os.Getpid(), Created: created, Started: created,
		Spec: runtime.Spec{Name: "web", Rootfs: runtime.Rootfs{Image: "busybox", Digest: "ab12"},
			Process:   runtime.Process{Args: []string{"httpd", "-f"}},
			Resources: runtime.Resources{Memory: 32 << 20}}}
	spec := agent.SpecFromRuntime(&rs.Spec, "busybox")
	as := &agent.ContainerStatus{Name: "web", State: agent.StateRunning, Pid: os.Getpid(), Image: "busybox", Digest: "ab12",
		Created: created, Started: created, Source: "api", Spec: spec}
	direct, viaAgent := infoFromRuntime(e, rs), infoFromAgent(as)

	var pd, pa bytes.Buffer
	if err := printPs(&pd, []*ctrInfo{direct}, false); err != nil {
		t.Fatal(err)
	}
	printPs(&pa, []*ctrInfo{viaAgent}, false)
	ld, la := strings.Split(pd.String(), "\n"), strings.Split(pa.String(), "\n")
	if ld[0] != la[0] {
		t.Errorf("headers differ:\n%s\n%s", ld[0], la[0])
	}
	fd, fa := strings.Fields(ld[1]), strings.Fields(la[1])
	if len(fd) != len(fa) {
		t.Fatalf("rows differ in columns:\n%s\n%s", ld[1], la[1])
	}
	for i := range fd {
		if fd[i] != fa[i] && i != 5 { // RESTART: "-" (not supervised) vs the policy
			t.Errorf("column %d: %q vs %q", i, fd[i], fa[i])
		}
	}
	keysOf := func(c *ctrInfo) []string {
		var b bytes.Buffer
		printInspect(&b, []*ctrInfo{c})
		var m map[string]any
		json.Unmarshal(b.Bytes(), &m)
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		return ks
	}
	if kd, ka := keysOf(direct), keysOf(viaAgent); !slices.Equal(kd, ka) {
		t.Errorf("inspect keys differ:\n direct %v\n agent  %v", kd, ka)
	}
	if direct.Status != viaAgent.Status || direct.State != viaAgent.State || direct.Limits != viaAgent.Limits {
		t.Errorf("direct %+v\nagent %+v", direct, viaAgent)
	}
}

func TestStateText(t *testing.T) {
	for _, c := range []struct {
		in   ctrInfo
		want string
	}{
		{ctrInfo{State: agent.StateExited, ExitCode: 3}, "exited (3)"},
		{ctrInfo{State: agent.StateExited, ExitCode: 137, OOMKilled: true}, "OOM killed"},
		{ctrInfo{State: agent.StateExited, Exit: &agent.ExitInfo{Unknown: true}}, "exited (?)"},
		{ctrInfo{State: agent.StateRestarting, NextRestart: time.Now().Add(4 * time.Second)}, "restarting in 4s"},
		{ctrInfo{State: agent.StateWaiting}, "waiting"},
	} {
		if got := stateText(&c.in); got != c.want {
			t.Errorf("%+v: %q, want %q", c.in, got, c.want)
		}
	}
}

func TestStatsRows(t *testing.T) {
	first := []agent.Stats{{Name: "a", CPUNanos: 1e9}}
	second := []agent.Stats{{Name: "a", CPUNanos: 1e9 + 1e8, Memory: 1 << 20, MemoryMax: 32 << 20, NetRx: 2048,
		Pids: 3, PidsMax: 64, OOMKills: 2}, {Name: "b", Pids: 1}}
	rows := statsRows(first, second, 200*time.Millisecond)
	if len(rows) != 2 || rows[0].CPUPercent != 50 || rows[1].CPUPercent != 0 {
		t.Fatalf("%+v", rows)
	}
	var b bytes.Buffer
	printStats(&b, rows, false)
	if !strings.Contains(b.String(), "50.0%") || !strings.Contains(b.String(), "32.0MiB") || !strings.Contains(b.String(), "2.0KiB / 0B") ||
		!strings.Contains(b.String(), "  2    3 / 64") || !strings.Contains(b.String(), "  0    1 / -") {
		t.Errorf("%s", b.String())
	}
}

func TestAgentUnsupported(t *testing.T) {
	f := &containerFlags{}
	if u := f.agentUnsupported(); len(u) != 0 {
		t.Errorf("defaults: %v", u)
	}
	f.capAdd, f.rm, f.userns = ctrList{"NET_ADMIN"}, true, true
	if u := f.agentUnsupported(); strings.Join(u, " ") != "--cap-add --userns --rm" {
		t.Errorf("got %v", u)
	}
}
