package runtime_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otok/otok/runtime"
	"github.com/otok/otok/test/testenv"
)

// TestKeepFiles: CreateOptions.KeepFiles stay open in otok's reaper (fd 5
// on) for the container's life and never reach the workload; without the
// reaper they close at exec.
func TestKeepFiles(t *testing.T) {
	testenv.NeedRoot(t)
	_, root := testenv.Image(t)
	r := &runtime.Runtime{Root: testenv.StateDir(t, false), InitArgs: []string{"otok-test", "init"}, ExecArgs: []string{"otok-test", "execstage"}}
	ctx := context.Background()
	for _, reaper := range []bool{true, false} {
		name := map[bool]string{true: "keep-init", false: "keep-plain"}[reaper]
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(filepath.Join(t.TempDir(), "out"))
		if err != nil {
			t.Fatal(err)
		}
		// The workload lists its fds, then waits until told to go.
		spec := &runtime.Spec{Name: name, Rootfs: runtime.Rootfs{Path: root},
			Process: runtime.Process{Init: reaper, Args: []string{"sh", "-c", "ls /proc/self/fd | tr '\\n' ' '; echo; read x"}}}
		in, feed, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		c, err := r.Create(ctx, spec, runtime.CreateOptions{IO: runtime.IO{Stdin: in, Stdout: out, Stderr: out}, KeepFiles: []*os.File{pw}})
		if err != nil {
			t.Fatalf("%s: create: %v", name, err)
		}
		in.Close()
		pw.Close() // the init's copy is the only writer left
		if err := c.Start(ctx); err != nil {
			t.Fatalf("%s: start: %v", name, err)
		}
		var listed string
		for deadline := time.Now().Add(10 * time.Second); listed == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			b, _ := os.ReadFile(out.Name())
			listed = strings.TrimSpace(string(b))
		}
		if listed == "" || slices.Contains(strings.Fields(listed), "5") {
			t.Errorf("%s: workload fds %q: the kept fd 5 reached the workload", name, listed)
		}
		target, err := os.Readlink("/proc/" + strconv.Itoa(c.Pid()) + "/fd/5")
		if reaper {
			if want, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(pr.Fd()))); err != nil || target != want {
				t.Errorf("reaper's fd 5: %q (%v), want the kept pipe %q", target, err, want)
			}
		} else if err == nil {
			t.Errorf("without the reaper, fd 5 still open in the container's PID 1: %s", target)
		}
		feed.Write([]byte("go\n"))
		feed.Close()
		if st, err := c.WaitRemove(ctx); err != nil || st.ExitCode != 0 {
			t.Errorf("%s: wait: %v (%+v)", name, err, st)
		}
		// Every writer gone with the container: the pipe reads EOF.
		var b [1]byte
		if n, err := pr.Read(b[:]); n != 0 || err == nil {
			t.Errorf("%s: kept pipe still has a writer after the container (n %d, %v)", name, n, err)
		}
		pr.Close()
		out.Close()
	}
}
