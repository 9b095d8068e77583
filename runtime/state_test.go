package runtime

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// startProc starts `sleep secs` and returns it with its start time.
func startProc(t *testing.T, secs string) (*exec.Cmd, uint64) {
	t.Helper()
	cmd := exec.Command("sleep", secs)
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep to stand in for a process: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	st, ok := procStart(cmd.Process.Pid)
	if !ok {
		t.Fatalf("no start time for pid %d", cmd.Process.Pid)
	}
	return cmd, st
}

// deadProc is the pid and start time of a process that has exited and
// been reaped.
func deadProc(t *testing.T) (int, uint64) {
	t.Helper()
	cmd, st := startProc(t, "60")
	cmd.Process.Kill()
	cmd.Wait()
	return cmd.Process.Pid, st
}

// stateWith records a running container whose init and parent are given.
func stateWith(t *testing.T, pid int, start uint64, parent int) (*Runtime, *State) {
	t.Helper()
	r := &Runtime{Root: t.TempDir()}
	if err := os.MkdirAll(r.Dir("c"), 0o711); err != nil {
		t.Fatal(err)
	}
	s := &State{Spec: Spec{Name: "c"}, Status: StatusRunning, Pid: pid, PidStart: start, ParentPid: parent, Created: time.Now().UTC()}
	if err := r.save(s); err != nil {
		t.Fatal(err)
	}
	return r, s
}

// The init exited and its parent (alive) records the exit a little later:
// State reports the recorded exit, not "init gone".
func TestStateWaitsForTheParentsRecord(t *testing.T) {
	pid, start := deadProc(t)
	parent, _ := startProc(t, "60")
	r, s := stateWith(t, pid, start, parent.Process.Pid)
	go func() {
		// as Container.wait does: record, then the parent exits
		time.Sleep(50 * time.Millisecond)
		s.Status, s.ExitCode, s.ExitReason = StatusStopped, 3, "exited with 3"
		r.save(s)
		parent.Process.Kill()
	}()
	got, err := r.State("c")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusStopped || got.ExitCode != 3 || got.ExitReason != "exited with 3" {
		t.Errorf("State: %s, exit %d (%q); want stopped, exit 3 (\"exited with 3\")", got.Status, got.ExitCode, got.ExitReason)
	}
}

// The parent records the exit and exits between State's read of the
// record and its look at the parent (a reader descheduled that long on a
// slow router: mipsel guest): State reports the record, read again.
func TestStateParentRecordedAndExitedMeanwhile(t *testing.T) {
	pid, start := deadProc(t)
	parent, _ := startProc(t, "60")
	r, s := stateWith(t, pid, start, parent.Process.Pid)
	stateLoaded = func() {
		s.Status, s.ExitCode, s.ExitReason = StatusStopped, 3, "exited with 3"
		r.save(s)
		parent.Process.Kill()
		parent.Wait()
	}
	defer func() { stateLoaded = func() {} }()
	got, err := r.State("c")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusStopped || got.ExitCode != 3 || got.ExitReason != "exited with 3" {
		t.Errorf("State: %s, exit %d (%q); want stopped, exit 3 (\"exited with 3\")", got.Status, got.ExitCode, got.ExitReason)
	}
}

// Init and parent both gone without a record: reported as such, without
// waiting.
func TestStateInitGoneUnrecorded(t *testing.T) {
	pid, start := deadProc(t)
	parent, _ := deadProc(t)
	r, _ := stateWith(t, pid, start, parent)
	t0 := time.Now()
	got, err := r.State("c")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusStopped || got.ExitCode != -1 || got.ExitReason != "init gone (exit not collected)" {
		t.Errorf("State: %s, exit %d (%q); want stopped, -1, init gone", got.Status, got.ExitCode, got.ExitReason)
	}
	if d := time.Since(t0); d > 150*time.Millisecond {
		t.Errorf("State took %v with the parent gone; want no wait", d)
	}
	// What State reports is not recorded.
	if s, _ := r.load("c"); s.Status != StatusRunning {
		t.Errorf("record changed to %s", s.Status)
	}
}

// A live init is running, whatever its parent.
func TestStateRunning(t *testing.T) {
	init, start := startProc(t, "60")
	parent, _ := deadProc(t)
	r, _ := stateWith(t, init.Process.Pid, start, parent)
	got, err := r.State("c")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != StatusRunning || !got.Alive() {
		t.Errorf("State: %s (alive %v); want running", got.Status, got.Alive())
	}
}
