package agentsys

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otok/otok/test/testenv"
)

// cgroupFile is a cgroup control file of pid's cgroup for controller
// ctrl, found from /proc/PID/cgroup: v1 (/sys/fs/cgroup/CTRL/PATH/v1file,
// the hybrid layout here) or, without a v1 hierarchy for ctrl, v2
// (/sys/fs/cgroup/PATH/v2file).
func cgroupFile(t *testing.T, pid int, ctrl, v1file, v2file string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	v2 := ""
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			v2 = f[2]
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == ctrl {
				return filepath.Join("/sys/fs/cgroup", ctrl, f[2], v1file)
			}
		}
	}
	return filepath.Join("/sys/fs/cgroup", v2, v2file)
}

func readCg(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// limits reads pid's memory limit, pids limit and CPU quota (µs per
// 100 ms period; "max"/-1 as "max").
func limits(t *testing.T, pid int) (mem, pids, quota string) {
	t.Helper()
	mem = readCg(t, cgroupFile(t, pid, "memory", "memory.limit_in_bytes", "memory.max"))
	pids = readCg(t, cgroupFile(t, pid, "pids", "pids.max", "pids.max"))
	quota = readCg(t, cgroupFile(t, pid, "cpu", "cpu.cfs_quota_us", "cpu.max"))
	quota = strings.TrimSuffix(quota, " 100000")
	if quota == "-1" {
		quota = "max"
	}
	return
}

const limitsConfig = `config agent
	option stop_timeout 2

config profile small
	option memory '%MEM%'
	option pids '%PIDS%'
	option cpus '%CPUS%'

config container agt_lim
	option image 'IMG'
	list profile small
	list command /bin/sh
	list command -c
	list command 'trap "exit 0" TERM; while true; do sleep 0.1; done'
`

func limitsUCI(mem, pids, cpus string) string {
	return strings.NewReplacer("%MEM%", mem, "%PIDS%", pids, "%CPUS%", cpus).Replace(limitsConfig)
}

// TestProfileLimitsLive: editing a profile's limits and reloading
// (`otok agent reload`, then SIGHUP) changes the container's cgroup in
// place: same init pid, new values in the cgroup files. `otok update`
// changes them too, through the agent's update op (with a note that the
// config's limits come back at the next reload), and the next reload
// puts the file's limits back.
func TestProfileLimitsLive(t *testing.T) {
	w := newWorld(t)
	w.writeConfig(limitsUCI("32M", "50", "0.5"))
	w.start()
	st := w.waitState("agt_lim", "running", 15*time.Second)
	pid := st.Pid
	if mem, pids, quota := limits(t, pid); mem != "33554432" || pids != "50" || quota != "50000" {
		t.Fatalf("initial limits: memory %s pids %s quota %s", mem, pids, quota)
	}

	// otok agent reload
	w.writeConfig(limitsUCI("48M", "60", "1"))
	out, code := w.otok("agent", "reload")
	if code != 0 || !strings.Contains(out, "limits updated live: agt_lim") || strings.Contains(out, "restarted") {
		t.Fatalf("reload: exit %d: %s\nagent log:\n%s", code, out, w.agentLog())
	}
	if mem, pids, quota := limits(t, pid); mem != "50331648" || pids != "60" || quota != "100000" {
		t.Errorf("after reload: memory %s pids %s quota %s\nagent log:\n%s", mem, pids, quota, w.agentLog())
	}
	if st := w.inspect("agt_lim"); st == nil || st.Pid != pid || st.State != "running" || st.Restarts != 0 {
		t.Fatalf("after reload: %+v (pid was %d)", st, pid)
	}

	// SIGHUP, and lowering
	w.writeConfig(limitsUCI("40M", "40", "0.25"))
	w.signal(syscall.SIGHUP)
	w.waitFor("memory limit 40M", 10*time.Second, func() bool {
		mem, pids, quota := limits(t, pid)
		return mem == "41943040" && pids == "40" && quota == "25000"
	})
	w.waitFor("the agent's log of the live update", 5*time.Second, func() bool {
		return strings.Contains(w.agentLog(), "reloaded: limits updated live: agt_lim")
	})
	if st := w.inspect("agt_lim"); st == nil || st.Pid != pid || st.State != "running" {
		t.Fatalf("after SIGHUP: %+v (pid was %d)", st, pid)
	}

	// otok update with the agent running: through its update op, with a
	// note that the config file's limits come back at the next reload.
	cmd := w.cmdOtok("update", "--memory", "24M", "--pids-limit", "30", "agt_lim")
	b, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "whose limits apply again at the next reload or restart") {
		t.Fatalf("otok update: %v: %s", err, b)
	}
	if mem, pids, quota := limits(t, pid); mem != "25165824" || pids != "30" || quota != "25000" {
		t.Errorf("after otok update: memory %s pids %s quota %s", mem, pids, quota)
	}
	w.waitFor("the update event", 5*time.Second, func() bool {
		out, _ := w.otok("events")
		return strings.Contains(out, "memory 25165824, cpus 0.25, pids 30 (live)")
	})
	// Impossible limits: refused by the agent, nothing changed, the container runs on.
	out, code = w.otok("update", "--memory", "1M", "agt_lim")
	if code == 0 || !strings.Contains(out, "container agt_lim: memory: 1048576 bytes: at least 4M") {
		t.Errorf("--memory 1M: exit %d: %s", code, out)
	}
	if mem, _, _ := limits(t, pid); mem != "25165824" {
		t.Errorf("after a refused update: memory %s", mem)
	}
	// the next reload applies the file's limits again
	out, code = w.otok("agent", "reload")
	if code != 0 || !strings.Contains(out, "limits updated live: agt_lim") {
		t.Fatalf("reload after update: exit %d: %s", code, out)
	}
	if mem, pids, quota := limits(t, pid); mem != "41943040" || pids != "40" || quota != "25000" {
		t.Errorf("after reload: memory %s pids %s quota %s", mem, pids, quota)
	}
	if st := w.inspect("agt_lim"); st == nil || st.Pid != pid || st.State != "running" {
		t.Fatalf("after otok update: %+v (pid was %d)", st, pid)
	}
}

// cmdOtok is the CLI with this world's state, store and keys.
func (w *world) cmdOtok(args ...string) *exec.Cmd {
	return exec.Command(testenv.Otok(w.t), append([]string{"--state", w.state, "--store", filepath.Join(w.dir, "store"),
		"--keys", filepath.Join(w.dir, "keys")}, args...)...)
}

// TestUpdateDirect: without an agent, `otok update` on a `run -d`
// container (created without CPU limits: on v1 it gains cpu and cpuacct
// cgroups) changes its limits in place, and inspect shows them.
func TestUpdateDirect(t *testing.T) {
	w := newWorld(t)
	img := image(t)
	run := func(args ...string) string {
		t.Helper()
		b, err := w.cmdOtok(args...).CombinedOutput()
		if err != nil {
			t.Fatalf("otok %s: %v: %s", strings.Join(args, " "), err, b)
		}
		return string(b)
	}
	run("run", "-d", "--name", "upd_direct", "--memory", "32M", img, "/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done")
	defer w.cmdOtok("rm", "-f", "upd_direct").Run()
	inspect := func() (pid int, mem int64, cpus float64, pids int64) {
		var m struct {
			Pid    int
			Limits struct {
				Memory int64
				CPUs   float64
				Pids   int64
			}
		}
		out := run("inspect", "upd_direct")
		var ms []json.RawMessage
		if json.Unmarshal([]byte(out), &ms) == nil && len(ms) == 1 {
			out = string(ms[0])
		}
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("inspect: %v: %s", err, out)
		}
		return m.Pid, m.Limits.Memory, m.Limits.CPUs, m.Limits.Pids
	}
	pid, mem, _, _ := inspect()
	if pid <= 0 || mem != 32<<20 {
		t.Fatalf("inspect before: pid %d memory %d", pid, mem)
	}
	run("update", "--memory", "64M", "--cpus", "0.5", "--pids-limit", "25", "upd_direct")
	if m, p, q := limits(t, pid); m != "67108864" || p != "25" || q != "50000" {
		t.Errorf("after update: memory %s pids %s quota %s", m, p, q)
	}
	if p2, mem, cpus, pids := inspect(); p2 != pid || mem != 64<<20 || cpus != 0.5 || pids != 25 {
		t.Errorf("inspect after update: pid %d (was %d) memory %d cpus %v pids %d", p2, pid, mem, cpus, pids)
	}
	// Below what the container holds: on v1 without swap the kernel cannot
	// reclaim tmpfs pages and refuses (EBUSY); the error names the
	// container and the limit, and nothing else changed.
	if swapless() && strings.HasSuffix(cgroupFile(t, pid, "memory", "memory.limit_in_bytes", "memory.max"), "memory.limit_in_bytes") {
		run("exec", "upd_direct", "dd", "if=/dev/zero", "of=/tmp/fill", "bs=1M", "count=12")
		b, err := w.cmdOtok("update", "--memory", "4M", "--pids-limit", "99", "upd_direct").CombinedOutput()
		if err == nil || !strings.Contains(string(b), "container upd_direct: update memory: cgroup ") || !strings.Contains(string(b), "memory.limit_in_bytes=4194304: device or resource busy") {
			t.Errorf("update below usage: %v: %s", err, b)
		}
		t.Logf("refused: %s", b)
		if m, p, _ := limits(t, pid); m != "67108864" || p != "25" {
			t.Errorf("after a refused update: memory %s pids %s", m, p)
		}
		if _, mem, _, _ := inspect(); mem != 64<<20 {
			t.Errorf("inspect after a refused update: memory %d", mem)
		}
		run("exec", "upd_direct", "rm", "/tmp/fill")
	}
	// Lowering, then removing the limits.
	run("update", "--memory", "16M", "upd_direct")
	if m, _, _ := limits(t, pid); m != "16777216" {
		t.Errorf("lowered: memory %s", m)
	}
	run("update", "--memory", "0", "--cpus", "0", "--pids-limit", "0", "upd_direct")
	if _, p, q := limits(t, pid); p != "max" || q != "max" {
		t.Errorf("unlimited: pids %s quota %s", p, q)
	}
	if p2, mem, cpus, pids := inspect(); p2 != pid || mem != 0 || cpus != 0 || pids != 0 {
		t.Errorf("inspect unlimited: pid %d memory %d cpus %v pids %d", p2, mem, cpus, pids)
	}
	if !pidAlive(pid) {
		t.Error("the container's init is gone")
	}
	run("rm", "-f", "upd_direct")
	// The container's monitor releases its image hold after rm returns:
	// wait for it to end before the state dir goes.
	w.waitFor("the container's monitor to exit", 10*time.Second, func() bool { return !monitorRuns(w.state) })
}

// swapless: no swap is active (a v1 memory limit below usage is refused).
func swapless() bool {
	b, err := os.ReadFile("/proc/swaps")
	return err == nil && len(strings.Split(strings.TrimSpace(string(b)), "\n")) == 1
}

// monitorRuns reports whether an `otok --state STATE monitor` process runs.
func monitorRuns(state string) bool {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if slices.Contains(args, "monitor") && slices.Contains(args, state) {
			return true
		}
	}
	return false
}

// TestUpdateAndKillThroughAgent: for a container created through the
// agent (run -d with the agent running), `otok update` changes the live
// cgroup and the agent's desired state (inspect's spec), and `otok kill`
// goes through the agent: a stop signal is a manual stop that the
// restart policy (always) does not undo; a non-fatal signal leaves the
// container running.
func TestUpdateAndKillThroughAgent(t *testing.T) {
	w := newWorld(t)
	w.writeConfig("config agent\n\toption stop_timeout 2\n")
	w.start()
	img := image(t)
	out, code := w.otok("run", "-d", "--name", "agt_upd", "--restart", "always", "--memory", "32M", img,
		"/bin/sh", "-c", "trap '' HUP; trap 'exit 0' TERM; while :; do sleep 0.1; done")
	if code != 0 {
		t.Fatalf("run -d: exit %d: %s", code, out)
	}
	st := w.waitState("agt_upd", "running", 15*time.Second)
	pid := st.Pid
	out, code = w.otok("update", "--memory", "48M", "--pids-limit", "20", "agt_upd")
	if code != 0 || strings.Contains(out, "note") {
		t.Fatalf("update: exit %d: %s", code, out)
	}
	if mem, pids, _ := limits(t, pid); mem != "50331648" || pids != "20" {
		t.Errorf("after update: memory %s pids %s", mem, pids)
	}
	if st := w.inspect("agt_upd"); st.Spec == nil || st.Spec.Memory != 48<<20 || st.Spec.Pids != 20 || st.Pid != pid {
		t.Errorf("inspect after update: %+v", st)
	}
	// stats carries the pids limit
	out, code = w.otok("stats", "--json", "agt_upd")
	if code != 0 || !strings.Contains(out, `"pidsLimit": 20`) {
		t.Errorf("stats: exit %d: %s", code, out)
	}

	out, code = w.otok("kill", "-s", "HUP", "agt_upd")
	if code != 0 {
		t.Fatalf("kill -s HUP: exit %d: %s", code, out)
	}
	time.Sleep(300 * time.Millisecond)
	if st := w.inspect("agt_upd"); st.State != "running" || st.Pid != pid {
		t.Errorf("after HUP (ignored): %+v", st)
	}
	out, code = w.otok("kill", "-s", "NOPE", "agt_upd")
	if code == 0 {
		t.Errorf("kill -s NOPE: exit 0: %s", out)
	}
	out, code = w.otok("kill", "agt_upd")
	if code != 0 {
		t.Fatalf("kill: exit %d: %s", code, out)
	}
	st = w.waitState("agt_upd", "stopped", 10*time.Second)
	if st.Exit == nil || st.Exit.Signal != "SIGKILL" {
		t.Errorf("exit after kill: %+v", st.Exit)
	}
	time.Sleep(1500 * time.Millisecond) // a restart would be due after 1 s
	if st := w.inspect("agt_upd"); st.State != "stopped" || st.Restarts != 0 {
		t.Errorf("restart policy undid kill: %+v", st)
	}
	if pidAlive(pid) {
		t.Error("init still alive after kill")
	}
	out, code = w.otok("rm", "agt_upd")
	if code != 0 {
		t.Errorf("rm: exit %d: %s", code, out)
	}
}
