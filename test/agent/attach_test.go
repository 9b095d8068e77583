package agentsys

import (
	"bytes"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/otok/otok/test/testenv"
)

// attacher is a running `otok attach NAME` with its stdin and output.
type attacher struct {
	t   *testing.T
	cmd *exec.Cmd
	in  io.WriteCloser
	mu  sync.Mutex
	out bytes.Buffer
	end chan error
}

func (a *attacher) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.out.Write(p)
}

func (a *attacher) output() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.out.String()
}

func attach(t *testing.T, args ...string) *attacher {
	t.Helper()
	a := &attacher{t: t, end: make(chan error, 1)}
	a.cmd = exec.Command(testenv.Otok(t), args...)
	a.cmd.Stdout, a.cmd.Stderr = a, a
	a.in, _ = a.cmd.StdinPipe()
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.end <- a.cmd.Wait() }()
	t.Cleanup(func() { a.cmd.Process.Kill() })
	return a
}

// waitOut waits until the output contains s.
func (a *attacher) waitOut(s string) {
	a.t.Helper()
	if !testenv.Poll(10*time.Second, func() bool { return strings.Contains(a.output(), s) }) {
		a.t.Fatalf("attach output never had %q:\n%s", s, a.output())
	}
}

// wait waits for the CLI to exit and returns its error.
func (a *attacher) wait() error {
	a.t.Helper()
	select {
	case err := <-a.end:
		return err
	case <-time.After(10 * time.Second):
		a.t.Fatalf("otok attach did not exit; output:\n%s", a.output())
		return nil
	}
}

// TestAttachAgentConsole: a tty container (option tty) runs a shell on
// the console the agent holds; `otok attach` types into it and sees its
// answers; Ctrl-P Ctrl-Q detaches and leaves it running; what happened
// on the console is in `otok logs`; a second attach gets the same shell,
// whose exit ends the attachment. A container without a tty refuses.
func TestAttachAgentConsole(t *testing.T) {
	w := newWorld(t)
	w.writeConfig(`config agent
	option stop_timeout 2

config container agt_tty
	option image 'IMG'
	option tty 1
	list command /bin/sh

` + loop("agt_notty"))
	w.start()
	st := w.waitState("agt_tty", "running", 15*time.Second)
	w.waitState("agt_notty", "running", 15*time.Second)
	pid := st.Pid

	a := attach(t, "--state", w.state, "attach", "agt_tty")
	a.in.Write([]byte("echo hi-$((6*7))\n"))
	a.waitOut("hi-42")
	a.in.Write([]byte("tty\n"))
	a.waitOut("/dev/console") // the shell's terminal is the container's console
	a.in.Write([]byte{0x10, 0x11})
	if err := a.wait(); err != nil {
		t.Fatalf("detach: %v\n%s", err, a.output())
	}
	if st := w.inspect("agt_tty"); st.State != "running" || st.Pid != pid {
		t.Fatalf("after detach: %+v", st)
	}
	if out, _ := w.otok("logs", "agt_tty"); !strings.Contains(out, "hi-42") {
		t.Errorf("logs miss the console output:\n%s", out)
	}

	b := attach(t, "--state", w.state, "attach", "agt_tty")
	b.in.Write([]byte("echo again-$((2+3))\n"))
	b.waitOut("again-5")
	if strings.Contains(b.output(), "hi-42") {
		t.Errorf("second attach replayed old output:\n%s", b.output())
	}
	b.in.Write([]byte("exit 3\n"))
	if err := b.wait(); err != nil {
		t.Errorf("attach after the shell exited: %v\n%s", err, b.output())
	}
	st = w.waitState("agt_tty", "exited", 10*time.Second)
	if st.Exit == nil || st.Exit.Code != 3 {
		t.Errorf("exit %+v", st.Exit)
	}

	// run -d -it with the agent running: the agent takes it (its console
	// is the container's stdin) and attach reaches it
	out, code := w.otok("run", "-d", "-it", "--name", "agt_it", image(t), "/bin/sh")
	if code != 0 {
		t.Fatalf("run -d -it: exit %d: %s", code, out)
	}
	if st := w.waitState("agt_it", "running", 10*time.Second); st.Source != "api" {
		t.Errorf("run -d -it not handed to the agent: %+v", st)
	}
	c := attach(t, "--state", w.state, "attach", "agt_it")
	c.in.Write([]byte("echo it-$((5*5))\n"))
	c.waitOut("it-25")
	c.in.Write([]byte{0x10, 0x11})
	if err := c.wait(); err != nil {
		t.Errorf("detach agt_it: %v", err)
	}
	if out, code := w.otok("rm", "-f", "agt_it"); code != 0 {
		t.Errorf("rm -f agt_it: exit %d: %s", code, out)
	}

	out, code = w.otok("attach", "agt_notty")
	if code == 0 || !strings.Contains(out, "container agt_notty: has no console") {
		t.Errorf("attach without a tty: exit %d: %s", code, out)
	}
	out, code = w.otok("attach", "agt_tty")
	if code == 0 || !strings.Contains(out, "container agt_tty: not running") {
		t.Errorf("attach to an exited container: exit %d: %s", code, out)
	}
}

// TestAttachMonitorConsole: without an agent, `otok run -d -t` gives the
// container a monitor that holds its console; attach and detach work the
// same way.
func TestAttachMonitorConsole(t *testing.T) {
	w := newWorld(t)
	img := image(t)
	store := []string{"--state", w.state, "--store", filepath.Join(w.dir, "store"), "--keys", filepath.Join(w.dir, "keys")}
	if b, err := w.cmdOtok("run", "-d", "-t", "--name", "mon_tty", img, "/bin/sh").CombinedOutput(); err != nil {
		t.Fatalf("run -d -t: %v: %s", err, b)
	}
	defer func() {
		w.cmdOtok("rm", "-f", "mon_tty").Run()
		w.waitFor("the container's monitor to exit", 10*time.Second, func() bool { return !monitorRuns(w.state) })
	}()
	a := attach(t, append(store, "attach", "mon_tty")...)
	a.in.Write([]byte("echo mon-$((7*6))\n"))
	a.waitOut("mon-42")
	a.in.Write([]byte{0x10, 0x11})
	if err := a.wait(); err != nil {
		t.Fatalf("detach: %v\n%s", err, a.output())
	}
	if out, _ := w.otok("ps"); !strings.Contains(out, "mon_tty") {
		t.Errorf("not running after detach:\n%s", out)
	}
	if b, err := w.cmdOtok("logs", "mon_tty").CombinedOutput(); err != nil || !strings.Contains(string(b), "mon-42") {
		t.Errorf("logs: %v\n%s", err, b)
	}
}

// TestConsoleAcrossAgentKill9: the console of a tty container outlives a
// kill -9 of the agent: the container's init (otok's reaper) keeps a dup
// of the pty master, the restarted agent takes it back (pidfd_getfd) and
// attach reaches the same shell; what the shell printed while no agent
// ran reaches the log.
func TestConsoleAcrossAgentKill9(t *testing.T) {
	w := newWorld(t)
	w.writeConfig(`config agent
	option stop_timeout 2

config container agt_con
	option image 'IMG'
	option tty 1
	list command /bin/sh
`)
	w.start()
	st := w.waitState("agt_con", "running", 15*time.Second)
	pid := st.Pid
	a := attach(t, "--state", w.state, "attach", "agt_con")
	a.in.Write([]byte("(sleep 2; echo while-away-$((40+2))) &\n"))
	a.waitOut("echo while-away") // the shell has the line (the console echoed it)
	w.signal(syscall.SIGKILL)
	a.wait()                            // the attachment ends with its agent
	time.Sleep(2500 * time.Millisecond) // the background echo runs while no agent does
	w.start()
	st = w.waitState("agt_con", "running", 10*time.Second)
	if st.Pid != pid || !st.Adopted {
		t.Fatalf("after the agent's restart: %+v (pid was %d)", st, pid)
	}
	b := attach(t, "--state", w.state, "attach", "agt_con")
	b.in.Write([]byte("echo back-$((2*21))\n"))
	b.waitOut("back-42")
	b.in.Write([]byte{0x10, 0x11})
	if err := b.wait(); err != nil {
		t.Errorf("detach: %v", err)
	}
	if out, _ := w.otok("logs", "agt_con"); !strings.Contains(out, "while-away-42") || !strings.Contains(out, "back-42") {
		t.Errorf("logs:\n%s", out)
	}
	if st := w.inspect("agt_con"); st.State != "running" || st.Pid != pid {
		t.Errorf("after detach: %+v", st)
	}
}
