package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RemoveLeftovers undoes what a test that failed half-way may have left
// of an otok installation: it kills the container processes recorded in
// state (by the pid in containers/*/state.json), lets `otok gc` remove
// their runtime state, and detaches every mount below dir (image mounts
// under the state dir). For a t.Cleanup after the agent has stopped.
func RemoveLeftovers(t testing.TB, state, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(state, "containers"))
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(state, "containers", e.Name(), "state.json"))
		var pid int
		if i := strings.Index(string(b), `"pid":`); i >= 0 {
			fmt.Sscanf(string(b[i+6:]), "%d", &pid)
		}
		if pid > 1 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if len(ents) > 0 {
		time.Sleep(200 * time.Millisecond)
		exec.Command(Otok(t), "--state", state, "gc").Run()
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) > 4 && strings.HasPrefix(f[4], dir) {
				syscall.Unmount(f[4], syscall.MNT_DETACH)
			}
		}
	}
}
