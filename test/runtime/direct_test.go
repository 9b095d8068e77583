package runtime_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/otok/otok/runtime"
	"github.com/otok/otok/test/testenv"
)

// probeScript prints what a container sees of its isolation, one fact a
// line, in an order that does not depend on how it was set up.
const probeScript = `
hostname; id; ulimit -n; cat /proc/self/cgroup
grep -E '^(Cap|Seccomp|NoNewPrivs)' /proc/self/status
ls -A /dev | sort | tr '\n' ' '; echo
awk '{print $2, $3, $4}' /proc/self/mounts | sort
ls /sys/fs/cgroup | sort | tr '\n' ' '; echo
echo pid $$
`

// TestDirectMatchesInitStage runs the same probe in a container started
// directly (forked from this process's thread: the default) and in one
// started by the init stage (OTOK_INIT_STAGE=1): what the workload sees
// must be the same, line for line.
func TestDirectMatchesInitStage(t *testing.T) {
	testenv.NeedRoot(t)
	_, root := testenv.Image(t)
	r := &runtime.Runtime{Root: testenv.StateDir(t, false), InitArgs: []string{"otok-test", "init"}, ExecArgs: []string{"otok-test", "execstage"}}
	cases := []struct {
		name string
		spec func(*runtime.Spec)
	}{
		{"default", func(*runtime.Spec) {}},
		{"user", func(s *runtime.Spec) { s.Process.UID, s.Process.GID, s.Process.Groups = 1000, 1000, []int{20, 30} }},
		{"readonly-system", func(s *runtime.Spec) {
			s.Rootfs.ReadOnly, s.System, s.Hostname = true, true, "sys"
			s.Rlimits = []runtime.Rlimit{{Type: "nofile", Soft: 77, Hard: 88}}
		}},
		{"privileged", func(s *runtime.Spec) { s.Privileged = true }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var outs [2]string
			for i, mode := range []string{"", "1"} {
				t.Setenv("OTOK_INIT_STAGE", mode)
				spec := &runtime.Spec{Name: "probe-" + c.name, Rootfs: runtime.Rootfs{Path: root},
					Process: runtime.Process{Args: []string{"/bin/sh", "-c", probeScript}}}
				c.spec(spec)
				outs[i] = runProbe(t, r, spec)
			}
			if outs[0] != outs[1] {
				t.Errorf("direct start:\n%s\ninit stage:\n%s\ndiff (direct -, init stage +):\n%s", outs[0], outs[1], lineDiff(outs[0], outs[1]))
			}
			if !strings.Contains(outs[0], "pid 1\n") {
				t.Errorf("the workload is not PID 1:\n%s", outs[0])
			}
		})
	}
}

// TestDirectStartChildError: a failure in the forked child before it is
// ready (here prlimit above the kernel's nr_open) is one error naming the
// step and the reason, and leaves nothing behind.
func TestDirectStartChildError(t *testing.T) {
	testenv.NeedRoot(t)
	_, root := testenv.Image(t)
	state := testenv.StateDir(t, false)
	r := &runtime.Runtime{Root: state, InitArgs: []string{"otok-test", "init"}, ExecArgs: []string{"otok-test", "execstage"}}
	spec := &runtime.Spec{Name: "badlimit", Rootfs: runtime.Rootfs{Path: root},
		Process: runtime.Process{Args: []string{"true"}},
		Rlimits: []runtime.Rlimit{{Type: "nofile", Soft: 1 << 40, Hard: 1 << 40}}}
	_, err := r.Create(context.Background(), spec, runtime.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "container badlimit: rlimit nofile=") || !strings.Contains(err.Error(), "operation not permitted") {
		t.Fatalf("err %v, want the rlimit step and EPERM", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(state, "containers")); len(ents) != 0 {
		t.Errorf("state left: %v", ents)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), state) {
		t.Errorf("mounts left under %s", state)
	}
}

func runProbe(t *testing.T, r *runtime.Runtime, spec *runtime.Spec) string {
	t.Helper()
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := r.Create(ctx, spec, runtime.CreateOptions{IO: runtime.IO{Stdout: f, Stderr: f}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := c.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	st, err := c.WaitRemove(ctx)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	b, _ := os.ReadFile(out)
	if st.ExitCode != 0 {
		t.Fatalf("exit %d: %s", st.ExitCode, b)
	}
	// The mount namespace's own names differ (state dir scope): keep the
	// shape, not the temp paths.
	return strings.ReplaceAll(string(b), r.Root, "STATE")
}

// lineDiff lists the lines only in a (-) or only in b (+).
func lineDiff(a, b string) string {
	count := map[string]int{}
	for _, l := range strings.Split(a, "\n") {
		count[l]++
	}
	for _, l := range strings.Split(b, "\n") {
		count[l]--
	}
	var out []string
	for l, n := range count {
		for ; n > 0; n-- {
			out = append(out, "- "+l)
		}
		for ; n < 0; n++ {
			out = append(out, "+ "+l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TestRelativeStateDir: a foreground run goes on, after Create, on the
// thread that built the container; relative paths (here --state) must
// still name what they named in the caller's working directory.
func TestRelativeStateDir(t *testing.T) {
	testenv.NeedRoot(t)
	bin := testenv.Otok(t)
	_, root := testenv.Image(t)
	dir := testenv.StateDir(t, false)
	cmd := exec.Command(bin, "--state", "./state", "run", "--rm", root, "sh", "-c", "exit 4")
	cmd.Dir = dir
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, errOut, code := testenv.RunCmd(t, cmd); code != 4 {
			t.Errorf("exit %d, want 4; stderr %q", code, errOut)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("run --rm with a relative --state hung")
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "state", "containers")); len(ents) != 0 {
		t.Errorf("state left: %v", ents)
	}
}
