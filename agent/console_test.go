package agent

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A pty master kept by another process (as the container's init would
// keep it) is got back with pidfd_getfd after the opener closed its own:
// the same pty (same number), and still connected to the slave.
func TestRecoverConsole(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("pidfd_getfd of another process needs root (ptrace access)")
	}
	m, s, err := openPty()
	if err != nil {
		t.Skip("no ptys here:", err)
	}
	defer s.Close()
	n, _ := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	keeper := exec.Command("sleep", "30")
	keeper.ExtraFiles = []*os.File{m} // fd 3 in the keeper
	if err := keeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { keeper.Process.Kill(); keeper.Wait() }()
	m.Close() // only the keeper holds the master now
	st, err := ProcStartTime(keeper.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	p := Proc{Pid: keeper.Process.Pid, StartTime: st}
	got, err := recoverConsole(p, 3)
	if err != nil {
		if strings.Contains(err.Error(), "function not implemented") {
			t.Skip("kernel without pidfd_getfd:", err)
		}
		t.Fatal(err)
	}
	defer got.Close()
	if n2, _ := unix.IoctlGetInt(int(got.Fd()), unix.TIOCGPTN); n2 != n {
		t.Errorf("recovered pty %d, want %d", n2, n)
	}
	// the slave still talks to it: what is written on the slave is read
	// on the recovered master
	s.Write([]byte("ping\n"))
	got.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	k, err := got.Read(buf)
	if err != nil || !strings.Contains(string(buf[:k]), "ping") {
		t.Errorf("read %q %v", buf[:k], err)
	}
	// not a master: refused
	if _, err := recoverConsole(p, 0); err == nil || !strings.Contains(err.Error(), "not a pty master") {
		t.Errorf("fd 0 (not a master): %v", err)
	}
	// a reused pid (other start time): refused before any fd is taken
	if _, err := recoverConsole(Proc{Pid: p.Pid, StartTime: p.StartTime + 1}, 3); err == nil {
		t.Error("wrong start time accepted")
	}
}
