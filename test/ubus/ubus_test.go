// Package ubussys holds the system tests of otok on ubus: the real
// `otok agent` binary (OTOK_BIN, else built into a temp dir) connects to
// ubustest.Broker — a test double of ubusd that forwards bytes as ubusd
// does — listening on a temp socket named by `option ubus_socket`, and the
// test calls the object otok through the ubus library's client, as
// `ubus call` would, and listens to its events, as `ubus listen` would.
//
// Without root the tests that need no containers run; running a real
// busybox container through `run` needs root (namespaces, cgroups, loop
// mounts) and test/testimage (mksquashfs, busybox-static) and is skipped
// with the reason otherwise (qemu-user, CI without privileges).
package ubussys

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/otok/otok/agent"
	"github.com/otok/otok/test/testenv"
	"github.com/otok/otok/test/testimage"
	"github.com/otok/otok/ubus"
	"github.com/otok/otok/ubus/ubustest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// world is one agent on one bus.
type world struct {
	t      *testing.T
	dir    string
	state  string
	config string
	sock   string // the broker's socket
	broker *ubustest.Broker
	cmd    *exec.Cmd
	log    testenv.Log // the agent's stderr
}

func newWorld(t *testing.T) *world {
	t.Helper()
	// short: unix socket paths are limited to 108 bytes
	dir, err := os.MkdirTemp("", "otok-ubus-")
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, dir: dir, state: filepath.Join(dir, "state"), config: filepath.Join(dir, "otok"),
		sock: filepath.Join(dir, "ubus.sock")}
	t.Cleanup(w.cleanup)
	return w
}

func (w *world) startBroker() {
	w.t.Helper()
	b, err := ubustest.Start(w.sock)
	if err != nil {
		w.t.Fatal(err)
	}
	w.broker = b
}

// writeConfig writes the UCI file with `option ubus_socket` first.
func (w *world) writeConfig(rest string) {
	w.t.Helper()
	uci := "config agent\n\toption ubus_socket '" + w.sock + "'\n\toption stop_timeout 3\n\n" + rest
	if err := os.WriteFile(w.config, []byte(uci), 0o644); err != nil {
		w.t.Fatal(err)
	}
}

// start runs `otok agent` and waits for its command socket.
func (w *world) start() {
	w.t.Helper()
	w.cmd = exec.Command(testenv.Otok(w.t), "--state", w.state, "--store", filepath.Join(w.dir, "store"),
		"--keys", filepath.Join(w.dir, "keys"), "agent", "--config", w.config)
	w.cmd.Stdout, w.cmd.Stderr = os.Stdout, &w.log
	if err := w.cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.waitFor("agent socket", 10*time.Second, func() bool {
		c, err := agent.Dial(context.Background(), filepath.Join(w.state, "otok.sock"))
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

func (w *world) agentLog() string { return w.log.String() }

func (w *world) stop() {
	if w.cmd == nil {
		return
	}
	w.cmd.Process.Signal(syscall.SIGTERM)
	w.cmd.Wait() // returns when all of its stderr is in the log
	w.cmd = nil
}

func (w *world) waitFor(what string, timeout time.Duration, cond func() bool) {
	w.t.Helper()
	if !testenv.Poll(timeout, cond) {
		w.t.Fatalf("timed out after %s waiting for %s\nagent log:\n%s", timeout, what, w.agentLog())
	}
}

// client connects to the broker like `ubus` does and waits for the
// object otok.
func (w *world) client() *ubus.Client {
	w.t.Helper()
	c, err := ubus.Dial(context.Background(), ubus.Options{Path: w.sock, Timeout: 20 * time.Second})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { c.Close() })
	w.waitFor("object otok on the bus", 10*time.Second, func() bool {
		_, err := c.LookupID(context.Background(), "otok")
		return err == nil
	})
	return c
}

// cleanup stops the agent, kills container processes left by a failed
// test, removes their runtime state and mounts, then the temp dir.
func (w *world) cleanup() {
	w.stop()
	testenv.RemoveLeftovers(w.t, w.state, w.dir)
	if w.broker != nil {
		w.broker.Close()
	}
	os.RemoveAll(w.dir)
}

// call is `ubus call otok METHOD ARGS`: the last DATA reply and the status.
func call(c *ubus.Client, method string, args any) (map[string]any, error) {
	var out map[string]any
	err := c.Call(context.Background(), "otok", method, args, &out)
	return out, err
}

func mustCall(t *testing.T, c *ubus.Client, method string, args any) map[string]any {
	t.Helper()
	out, err := call(c, method, args)
	if err != nil {
		t.Fatalf("ubus call otok %s %v: %v %v", method, args, err, out)
	}
	return out
}

// recorder is `ubus listen PATTERN`.
type recorder struct {
	mu  sync.Mutex
	evs []string
	raw []map[string]any
}

func listen(t *testing.T, c *ubus.Client, pattern string) *recorder {
	t.Helper()
	r := &recorder{}
	l, err := c.Listen(context.Background(), pattern, func(e ubus.Event) {
		var m map[string]any
		e.Decode(&m)
		s := e.Type
		for _, k := range []string{"type", "container", "state"} {
			if v, _ := m[k].(string); v != "" {
				s += " " + v
			}
		}
		r.mu.Lock()
		r.evs = append(r.evs, s)
		r.raw = append(r.raw, m)
		r.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return r
}

func (r *recorder) has(prefix string) (map[string]any, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, e := range r.evs {
		if strings.HasPrefix(e, prefix) {
			return r.raw[i], true
		}
	}
	return nil, false
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.evs, "\n")
}

// The agent binary on a bus: signature, calls, error codes, events of
// containers that are created but not run (no root needed), and a ubusd
// restart while the agent runs.
func TestAgentOnUbus(t *testing.T) {
	w := newWorld(t)
	w.startBroker()
	w.writeConfig("")
	w.start()
	c := w.client()
	ev := listen(t, c, "otok.*")

	objs, err := c.Lookup(context.Background(), "otok")
	if err != nil || len(objs) != 1 {
		t.Fatalf("lookup otok: %v %v", objs, err)
	}
	if got := strings.Join(objs[0].Methods(), " "); got != "check create df images import kill list logs remove restart run start stats status stop update" {
		t.Errorf("methods: %s", got)
	}
	if s := objs[0].Signature["run"]; s["name"] != ubus.TypeString || s["command"] != ubus.TypeArray || s["cpus"] != ubus.TypeString {
		t.Errorf("run signature %v", s)
	}

	st := mustCall(t, c, "status", nil)
	if st["pid"] != int32(w.cmd.Process.Pid) || st["ubus"] != w.sock {
		t.Errorf("status %v (agent pid %d)", st, w.cmd.Process.Pid)
	}
	if b, _ := st["board"].(map[string]any); b == nil || b["kernel"] == "" {
		t.Errorf("status without board: %v", st)
	}
	if l := mustCall(t, c, "list", map[string]any{"all": true}); len(l["containers"].([]any)) != 0 {
		t.Errorf("list %v", l)
	}
	// create: desired state only (no runtime needed)
	r := mustCall(t, c, "create", map[string]any{"name": "later", "image": "busybox", "command": []string{"sleep", "1"},
		"memory": "32M", "restart": "on-failure:2"})
	if r["state"] != agent.StateCreated {
		t.Errorf("create: %v", r)
	}
	in := mustCall(t, c, "status", map[string]any{"name": "later"})
	if spec, _ := in["spec"].(map[string]any); spec == nil || spec["memory"] != int64(32<<20) {
		t.Errorf("status later: %v", in)
	}
	// the CLI sees what ubus created: one command API
	if out, err := exec.Command(testenv.Otok(t), "--state", w.state, "agent", "status").CombinedOutput(); err != nil || !strings.Contains(string(out), "containers 1") {
		t.Errorf("otok agent status: %v\n%s", err, out)
	}

	for _, bad := range []struct {
		method string
		args   map[string]any
		st     ubus.Status
	}{
		{"run", map[string]any{"image": "busybox"}, ubus.StatusInvalidArgument},
		{"run", map[string]any{"name": 1, "image": "busybox"}, ubus.StatusInvalidArgument},
		{"run", map[string]any{"name": "x", "image": "busybox", "cpu": 1}, ubus.StatusInvalidArgument},
		{"run", map[string]any{"name": "later", "image": "busybox"}, ubus.StatusInvalidCommand},
		{"stop", map[string]any{"name": "nope"}, ubus.StatusNotFound},
		{"start", map[string]any{}, ubus.StatusInvalidArgument},
		{"logs", map[string]any{"name": "nope"}, ubus.StatusNotFound},
		{"import", map[string]any{"path": filepath.Join(w.dir, "missing.otok")}, ubus.StatusNotFound},
		{"frobnicate", nil, ubus.StatusMethodNotFound},
	} {
		out, err := call(c, bad.method, bad.args)
		if !errors.Is(err, bad.st) {
			t.Errorf("%s %v: %v %v, want %v", bad.method, bad.args, err, out, bad.st)
		}
	}
	if l := mustCall(t, c, "list", map[string]any{"all": true}); len(l["containers"].([]any)) != 1 {
		t.Errorf("bad calls changed the containers: %v", l)
	}
	if r := mustCall(t, c, "df", nil); r["store"] != filepath.Join(w.dir, "store") {
		t.Errorf("df %v", r)
	}
	if r := mustCall(t, c, "images", nil); len(r["images"].([]any)) != 0 {
		t.Errorf("images %v", r)
	}
	mustCall(t, c, "remove", map[string]any{"name": "later"})
	w.waitFor("create and remove events", 5*time.Second, func() bool {
		_, ok1 := ev.has("otok.container create later created")
		_, ok2 := ev.has("otok.container remove later")
		return ok1 && ok2
	})

	// ubusd restarts: the agent reconnects and publishes otok again
	w.broker.Close()
	w.startBroker()
	c2 := w.client()
	if r := mustCall(t, c2, "status", nil); r["pid"] != int32(w.cmd.Process.Pid) {
		t.Errorf("status after ubusd restart: %v", r)
	}
	w.stop()
	if log := w.agentLog(); !strings.Contains(log, "ubus: object otok on "+w.sock) || !strings.Contains(log, "reconnected") {
		t.Errorf("agent log:\n%s", log)
	}
}

// Without ubus (no option, no ubusd: Debian) the agent runs and says
// nothing about ubus.
func TestAgentWithoutUbus(t *testing.T) {
	if p := ubus.FindSocket(); p != "" {
		t.Skipf("ubusd runs here (%s)", p)
	}
	w := newWorld(t)
	os.WriteFile(w.config, []byte("config agent\n\toption stop_timeout 3\n"), 0o644)
	w.start()
	time.Sleep(1500 * time.Millisecond) // a retry or two
	w.stop()
	if log := w.agentLog(); strings.Contains(log, "ubus:") || !strings.Contains(log, "started") {
		t.Errorf("agent log:\n%s", log)
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	testenv.NeedRoot(t) // root, and not under qemu-user
	if _, err := os.Stat("/proc/self/ns/pid"); err != nil {
		t.Skip("no pid namespaces here:", err)
	}
	// e.g. a container without privileges
	probe := exec.Command(os.Args[0], "-test.run=^$")
	probe.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC}
	if err := probe.Run(); err != nil {
		t.Skipf("cannot make namespaces here (%v)", err)
	}
}

// A real busybox container run, logged, stopped, crashed and removed
// through ubus, with its events.
func TestRunOverUbus(t *testing.T) {
	needRoot(t)
	w := newWorld(t)
	os.MkdirAll(filepath.Join(w.dir, "img"), 0o755)
	img := testimage.Build(t, filepath.Join(w.dir, "img"))
	w.startBroker()
	w.writeConfig("")
	w.start()
	c := w.client()
	ev := listen(t, c, "otok.container")

	t0 := time.Now()
	r := mustCall(t, c, "run", map[string]any{"name": "hello", "image": img, "memory": "32M", "pids": 32,
		"command": []string{"/bin/sh", "-c", `trap "echo bye; exit 0" TERM; echo hello from ubus; while true; do sleep 0.1; done`}})
	t.Logf("ubus call otok run → running: %s", time.Since(t0).Round(time.Millisecond))
	pid, _ := r["pid"].(int32)
	if r["state"] != agent.StateRunning || pid <= 1 || syscall.Kill(int(pid), 0) != nil {
		t.Fatalf("run: %v", r)
	}
	w.waitFor("output", 5*time.Second, func() bool {
		l := mustCall(t, c, "logs", map[string]any{"name": "hello"})
		return strings.Contains(l["log"].(string), "hello from ubus")
	})
	if s := mustCall(t, c, "stats", map[string]any{"name": "hello"}); len(s["stats"].([]any)) != 1 {
		t.Errorf("stats %v", s)
	}
	if r := mustCall(t, c, "stop", map[string]any{"name": "hello", "timeout": 5}); r["state"] != agent.StateStopped {
		t.Errorf("stop: %v", r)
	}
	if syscall.Kill(int(pid), 0) == nil {
		t.Errorf("pid %d alive after stop", pid)
	}
	w.waitFor("exit event", 5*time.Second, func() bool { _, ok := ev.has("otok.container exit hello"); return ok })
	if m, _ := ev.has("otok.container exit hello"); m["exit"].(map[string]any)["code"] != int32(0) {
		t.Errorf("hello did not exit by its TERM trap within the stop timeout: %v", m)
	}
	if l := mustCall(t, c, "logs", map[string]any{"name": "hello", "tail": 1}); strings.TrimSpace(l["log"].(string)) != "bye" {
		t.Errorf("logs tail 1: %q", l["log"])
	}
	// a container that fails: exit event with the code
	mustCall(t, c, "run", map[string]any{"name": "crash", "image": img, "command": []string{"/bin/sh", "-c", "exit 3"}})
	w.waitFor("exit event", 10*time.Second, func() bool {
		m, ok := ev.has("otok.container exit crash")
		if !ok {
			return false
		}
		e, _ := m["exit"].(map[string]any)
		if e["code"] != int32(3) {
			t.Errorf("exit event %v", m)
		}
		return true
	})
	mustCall(t, c, "remove", map[string]any{"name": "hello"})
	mustCall(t, c, "remove", map[string]any{"name": "crash", "force": true})
	for _, want := range []string{"otok.container create hello", "otok.container start hello running",
		"otok.container stop hello", "otok.container start crash", "otok.container remove hello", "otok.container remove crash"} {
		w.waitFor(want, 5*time.Second, func() bool { _, ok := ev.has(want); return ok })
	}
	// SIGTERM stops the agent's containers; the events of that still go
	// out before the agent leaves the bus.
	all := listen(t, c, "otok.*")
	mustCall(t, c, "run", map[string]any{"name": "last", "image": img,
		"command": []string{"/bin/sh", "-c", `trap "exit 0" TERM; while true; do sleep 0.1; done`}})
	w.stop()
	for _, want := range []string{"otok.agent agent-stop", "otok.container stop last", "otok.container exit last"} {
		w.waitFor(want, 5*time.Second, func() bool { _, ok := all.has(want); return ok })
	}
	t.Logf("events:\n%s\n%s", ev, all)
	if ents, _ := os.ReadDir(filepath.Join(w.state, "containers")); len(ents) != 0 {
		t.Errorf("runtime state left: %v", ents)
	}
}
