// Package agentsys holds the agent's system tests: they run the real
// `otok agent` binary (OTOK_BIN, else built into a temp dir) as root with
// a UCI file and real busybox containers (test/testimage), and drive it
// from outside: its socket, signals, kill -9.
package agentsys

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otok/otok/agent"
	"github.com/otok/otok/test/testenv"
)

// image returns the busybox squashfs shared by all tests.
func image(t *testing.T) string {
	img, _ := testenv.Image(t)
	return img
}

// imageRoot returns the unpacked busybox tree the image was made from.
func imageRoot(t *testing.T) string {
	_, root := testenv.Image(t)
	return root
}

func TestMain(m *testing.M) { testenv.Main(m) }

func needRoot(t *testing.T) {
	t.Helper()
	testenv.NeedRoot(t)
	if _, err := os.Stat("/proc/self/ns/pid"); err != nil {
		t.Skip("no pid namespaces here:", err)
	}
}

// world is one agent installation: a state dir (tmpfs semantics, here a
// temp dir), a UCI file, the agent process.
type world struct {
	t      *testing.T
	dir    string
	state  string
	config string
	socket string
	out    string // a host dir mounted into containers at /out
	cmd    *exec.Cmd
	log    *testenv.Log // the agent's stderr, over restarts
}

func newWorld(t *testing.T) *world {
	t.Helper()
	needRoot(t)
	dir := t.TempDir()
	w := &world{t: t, dir: dir, state: filepath.Join(dir, "state"), config: filepath.Join(dir, "otok"),
		out: filepath.Join(dir, "out"), log: &testenv.Log{}}
	w.socket = filepath.Join(w.state, "otok.sock")
	os.MkdirAll(w.out, 0o777)
	t.Cleanup(w.cleanup)
	return w
}

// writeConfig writes the UCI file; IMG in it is replaced by the image path.
func (w *world) writeConfig(uci string) {
	w.t.Helper()
	uci = strings.ReplaceAll(uci, "IMG", image(w.t))
	uci = strings.ReplaceAll(uci, "OUT", w.out)
	if err := os.WriteFile(w.config, []byte(uci), 0o644); err != nil {
		w.t.Fatal(err)
	}
}

// start runs `otok agent` and waits for its socket.
func (w *world) start() {
	w.t.Helper()
	w.cmd = exec.Command(testenv.Otok(w.t), "--state", w.state, "--store", filepath.Join(w.dir, "store"), "--keys", filepath.Join(w.dir, "keys"),
		"agent", "--config", w.config)
	w.cmd.Stdout, w.cmd.Stderr = os.Stdout, w.log
	if err := w.cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.waitFor("agent socket", 10*time.Second, func() bool {
		c, err := agent.Dial(context.Background(), w.socket)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

func (w *world) agentLog() string { return w.log.String() }

// signal sends sig to the agent and (for TERM/KILL) waits for it to exit.
func (w *world) signal(sig syscall.Signal) {
	w.t.Helper()
	if w.cmd == nil {
		return
	}
	w.cmd.Process.Signal(sig)
	if sig == syscall.SIGTERM || sig == syscall.SIGKILL {
		w.cmd.Wait() // returns when all of its stderr is in the log
		w.cmd = nil
	}
}

func (w *world) client() *agent.Client {
	w.t.Helper()
	c, err := agent.Dial(context.Background(), w.socket)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { c.Close() })
	return c
}

func (w *world) inspect(name string) *agent.ContainerStatus {
	c, err := agent.Dial(context.Background(), w.socket)
	if err != nil {
		return nil
	}
	defer c.Close()
	st, err := c.Inspect(context.Background(), name)
	if err != nil {
		return nil
	}
	return st
}

func (w *world) waitFor(what string, timeout time.Duration, cond func() bool) {
	w.t.Helper()
	if !testenv.Poll(timeout, cond) {
		w.t.Fatalf("timed out after %s waiting for %s\nagent log:\n%s", timeout, what, w.agentLog())
	}
}

func (w *world) waitState(name, state string, timeout time.Duration) *agent.ContainerStatus {
	w.t.Helper()
	var st *agent.ContainerStatus
	w.waitFor(name+" "+state, timeout, func() bool {
		st = w.inspect(name)
		return st != nil && st.State == state
	})
	return st
}

// otok runs the CLI against this world.
func (w *world) otok(args ...string) (string, int) {
	w.t.Helper()
	cmd := exec.Command(testenv.Otok(w.t), append([]string{"--state", w.state}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), testenv.ExitCode(w.t, err)
}

// cleanup stops the agent (gracefully), then kills whatever container
// processes are left and removes their state, so the machine is as before.
func (w *world) cleanup() {
	if w.cmd != nil {
		w.signal(syscall.SIGTERM)
	}
	// leftovers of a test that failed half-way
	testenv.RemoveLeftovers(w.t, w.state, w.dir)
}

func pidAlive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}

func rssKB(pid int) int { return statusKB(pid, "VmRSS:") }

// statusKB reads a kB field of /proc/PID/status.
func statusKB(pid int, field string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			var n int
			fmt.Sscanf(strings.TrimSpace(v), "%d", &n)
			return n
		}
	}
	return 0
}

func netDial(path string) (net.Conn, error) { return net.Dial("unix", path) }

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// hostPid finds the host pid of the process that is inner in the pid
// namespace of init.
func hostPid(t *testing.T, init, inner int) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "NSpid:"); ok {
				f := strings.Fields(v)
				if len(f) == 2 && f[1] == strconv.Itoa(inner) && sameNS(pid, init) {
					return pid
				}
			}
		}
	}
	t.Fatalf("no host pid for %d in the namespace of %d", inner, init)
	return 0
}

func sameNS(a, b int) bool {
	x, err1 := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", a))
	y, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", b))
	return err1 == nil && err2 == nil && x == y
}

// ioField reads a counter of /proc/PID/io.
func ioField(pid int, field string) int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return -1
}

// waitTrap waits until a loop() container has written its first line: its
// SIGTERM trap is set (a PID 1 without a handler ignores SIGTERM).
func (w *world) waitTrap(name string) {
	w.t.Helper()
	w.waitFor(name+" output", 10*time.Second, func() bool {
		fi, err := os.Stat(filepath.Join(w.state, "logs", name+".log"))
		return err == nil && fi.Size() > 0
	})
}

// stateOnTmpfs moves the world's state dir (agent state, container
// output, mounts) to a tmpfs, as /var/run is on a router: what the agent
// writes there never reaches storage. Call before start.
func (w *world) stateOnTmpfs() {
	w.t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err != nil || st.Type != 0x01021994 {
		w.t.Skip("no tmpfs at /dev/shm for the state dir")
	}
	d, err := os.MkdirTemp("/dev/shm", "otok-agent-")
	if err != nil {
		w.t.Fatal(err)
	}
	w.state, w.socket = d, filepath.Join(d, "otok.sock")
	w.t.Cleanup(func() {
		w.cleanup()
		testenv.RemoveLeftovers(w.t, d, d)
		os.RemoveAll(d)
	})
}
