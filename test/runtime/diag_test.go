package runtime_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// diagnose logs what is known about a container's parent (monitor) and
// init when a test sees an unexpected state: the state record, the files
// of its state directory, its log (where a monitor's own errors go), the
// parent's and init's process status, every process, and the stderr of
// waitStatus's last inspect (run with OTOK_TRACE=1 for State's trace).
func (e *env) diagnose(name string) {
	t := e.t
	t.Helper()
	dir := filepath.Join(e.state, "containers", name)
	var b strings.Builder
	st, err := os.ReadFile(filepath.Join(dir, "state.json"))
	fmt.Fprintf(&b, "state.json (%v):\n%s\n", err, st)
	ents, _ := os.ReadDir(dir)
	for _, en := range ents {
		fmt.Fprintf(&b, "  %s\n", en.Name())
	}
	if lg, err := os.ReadFile(filepath.Join(dir, "log")); err == nil {
		fmt.Fprintf(&b, "log:\n%s\n", lg)
	}
	var s struct {
		Pid, ParentPid int
	}
	json.Unmarshal(st, &s)
	for _, pid := range []int{s.ParentPid, s.Pid} {
		if pid <= 0 {
			continue
		}
		for _, f := range []string{"status", "wchan", "stack", "stat"} {
			x, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
			fmt.Fprintf(&b, "/proc/%d/%s (%v):\n%s\n", pid, f, err, x)
		}
	}
	if out, err := exec.Command("ps", "-o", "pid,ppid,stat,args").CombinedOutput(); err == nil {
		fmt.Fprintf(&b, "ps:\n%s", out)
	} else if out, err := exec.Command("ps").CombinedOutput(); err == nil {
		fmt.Fprintf(&b, "ps:\n%s", out)
	}
	t.Logf("container %s:\n%s\nlast inspect's stderr:\n%s", name, b.String(), e.lastStderr)
}
