package runtime_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otok/otok/runtime"
	"github.com/otok/otok/test/testenv"
)

// bin is testenv.Otok and img testenv.Image, set by newEnv.
var bin, img string

// TestMain removes the shared image and the binary (testenv.TempDir).
func TestMain(m *testing.M) { testenv.Main(m) }

// rootfsDir is the unpacked busybox tree the image was made from.
func rootfsDir(t *testing.T) string {
	_, root := testenv.Image(t)
	return root
}

// env is one test's otok: a private state directory, cleaned up and
// checked for leftovers at the end.
type env struct {
	t     *testing.T
	state string
	extra []string // added to otok's environment
	// lastStderr is the stderr of waitStatus's last inspect.
	lastStderr string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvFor(t, false)
}

// newEnvFor is newEnv with a state directory that a user namespace's root
// can reach when userns is set (testenv.StateDir).
func newEnvFor(t *testing.T, userns bool) *env {
	t.Helper()
	testenv.NeedRoot(t)
	bin = testenv.Otok(t)
	img, _ = testenv.Image(t)
	// made before the clean-up below is registered: removed after it
	e := &env{t: t, state: testenv.StateDir(t, userns)}
	t.Cleanup(func() {
		// Remove whatever the test left, then insist nothing remains.
		out, _, _ := e.run("ps", "-a", "--json")
		var list []struct {
			Spec struct{ Name string } `json:"spec"`
		}
		json.Unmarshal([]byte(out), &list)
		for _, c := range list {
			e.run("rm", "-f", c.Spec.Name)
		}
		e.run("gc")
		e.assertClean(list)
	})
	return e
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs otok with the test's state dir.
func (e *env) run(args ...string) (stdout, stderr string, code int) {
	return e.runIn(nil, args...)
}

func (e *env) runIn(stdin []byte, args ...string) (string, string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--state", e.state}, args...)...)
	cmd.Env = append(os.Environ(), e.extra...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	code := testenv.ExitCode(e.t, cmd.Run())
	return so.String(), se.String(), code
}

// must runs otok and fails the test on a non-zero exit.
func (e *env) must(args ...string) string {
	e.t.Helper()
	out, errOut, code := e.run(args...)
	if code != 0 {
		e.t.Fatalf("otok %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// state reads `otok inspect NAME`.
func (e *env) inspect(name string) map[string]any {
	e.t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(e.must("inspect", name)), &m); err != nil {
		e.t.Fatal(err)
	}
	return m
}

func (e *env) pid(name string) int {
	return int(e.inspect(name)["pid"].(float64))
}

// waitStatus polls until the container has the status (or fails).
func (e *env) waitStatus(name, status string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var m map[string]any
		if out, errOut, code := e.run("inspect", name); code == 0 {
			json.Unmarshal([]byte(out), &m)
			e.lastStderr = errOut
		}
		if m["status"] == status {
			return m
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("container %s: status %v, want %s", name, m["status"], status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// assertClean checks that nothing of this test's state directory is
// mounted, no loop device is backed by the test image's mount, and no
// cgroup of the listed (or any of this test's) containers remains.
func (e *env) assertClean(list any) {
	t := e.t
	deadline := time.Now().Add(5 * time.Second)
	for {
		problems := e.leftovers()
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("leftovers after test:\n  %s", strings.Join(problems, "\n  "))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) leftovers() []string {
	var p []string
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if strings.Contains(sc.Text(), e.state) {
				p = append(p, "mount: "+sc.Text())
			}
		}
		f.Close()
	}
	if out, err := exec.Command("losetup", "-j", img).Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
		// Other tests' containers may share the image: only complain
		// when no test holds a mount of it.
		if !imageMountedSomewhere() {
			p = append(p, "loop: "+strings.TrimSpace(string(out)))
		}
	}
	ents, _ := os.ReadDir(filepath.Join(e.state, "containers"))
	for _, en := range ents {
		p = append(p, "state: "+en.Name())
	}
	// Every cgroup of this state directory (otok/NAME@SCOPE), whatever
	// its container's name.
	for _, c := range []string{"memory", "pids", "cpu", "devices", "unified"} {
		ds, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", c, "otok", "*@"+runtime.CgroupScope(e.state)))
		for _, d := range ds {
			p = append(p, "cgroup: "+d)
		}
	}
	return p
}

func imageMountedSomewhere() bool {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	return bytes.Contains(b, []byte(" squashfs "))
}

// cgroupGone checks a container's cgroups were removed.
func (e *env) cgroupGone(name string) {
	t := e.t
	t.Helper()
	for _, c := range []string{"memory", "pids", "cpu", "devices"} {
		d := filepath.Join("/sys/fs/cgroup", c, "otok", runtime.CgroupName(e.state, name))
		if _, err := os.Stat(d); err == nil {
			t.Errorf("cgroup %s left behind", d)
		}
	}
}

// kv parses "key=value" lines.
func kv(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

func signalPid(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }
