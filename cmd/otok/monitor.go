package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otok/otok/runtime"
)

// Detached containers (run -d, create) get a monitor: a re-exec of otok in
// its own session that creates the container (so it is the init's parent
// and collects the exit status), keeps stdout/stderr in a RAM ring buffer
// served on <state>/containers/<name>/monitor.sock, and at exit writes the
// buffer to <state>/containers/<name>/log (tmpfs) and exits. With --rm it
// removes the container. While an agent runs, run -d and create hand the
// container to it instead; a monitor is then only for --rm and options the
// agent's spec does not carry (agentroute.go).

func init() {
	register(&command{
		name:       "monitor",
		usage:      "",
		summary:    "internal: parent of a detached container",
		hidden:     true,
		ownSignals: true,
		run:        runMonitor,
	})
}

// logRingSize caps a container's in-RAM log.
const logRingSize = 256 << 10

type monitorRequest struct {
	Spec        runtime.Spec `json:"spec"`
	Rm          bool         `json:"rm"`
	Interactive bool         `json:"interactive"`
}

// startDetached hands the container to a new monitor, attaches the
// network, and (run -d) starts it.
func startDetached(ctx context.Context, e *env, p *prepared, start bool) error {
	spec, f := p.spec, p.flags
	reqR, reqW, err := os.Pipe()
	if err != nil {
		p.release()
		return err
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		p.release()
		return err
	}
	args := []string{"otok"}
	if e.state != "" {
		args = append(args, "--state", e.state)
	}
	cmd := &exec.Cmd{
		Path: "/proc/self/exe", Args: append(args, "monitor"),
		Env:         monitorEnv(),
		ExtraFiles:  []*os.File{reqR, repW},
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		p.release()
		return fmt.Errorf("container %s: start monitor: %w", spec.Name, err)
	}
	reqR.Close()
	repW.Close()
	json.NewEncoder(reqW).Encode(&monitorRequest{Spec: *spec, Rm: f.rm, Interactive: f.interactive})
	reqW.Close()
	line, _ := bufio.NewReader(repR).ReadString('\n')
	repR.Close()
	cmd.Process.Release()
	line = strings.TrimSpace(line)
	var pid int
	if _, err := fmt.Sscanf(line, "ok %d", &pid); err != nil {
		p.release()
		if msg, ok := strings.CutPrefix(line, "error "); ok {
			return fmt.Errorf("%s", msg)
		}
		return fmt.Errorf("container %s: monitor failed", spec.Name)
	}
	r := newRuntime(e)
	if _, err := f.net.attach(ctx, e, spec.Name, pid); err != nil {
		removeContainer(context.Background(), e, r, spec.Name, true)
		return err
	}
	if start {
		if err := r.Start(ctx, spec.Name); err != nil {
			removeContainer(context.Background(), e, r, spec.Name, true)
			return err
		}
	}
	fmt.Fprintln(e.stdout, spec.Name)
	return nil
}

// monitorEnv is a detached container monitor's environment.
func monitorEnv() []string {
	env := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	for _, k := range []string{"OTOK_CGROUP_ROOT", "OTOK_TRACE"} {
		if v := os.Getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

func runMonitor(ctx context.Context, e *env, args []string) error {
	signal.Ignore(syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGPIPE)
	reply := os.NewFile(4, "reply")
	var req monitorRequest
	if err := json.NewDecoder(os.NewFile(3, "request")).Decode(&req); err != nil {
		fmt.Fprintf(reply, "error monitor: read request: %v\n", err)
		return err
	}
	spec := &req.Spec
	r := newRuntime(e)
	var cio runtime.IO
	var out *os.File // what the monitor reads the container's output from
	var keep []*os.File
	if spec.Process.Terminal {
		m, s, err := runtime.OpenPty()
		if err != nil {
			fmt.Fprintf(reply, "error container %s: %v\n", spec.Name, err)
			return err
		}
		out = m
		cio = runtime.IO{Stdin: s, Stdout: s, Stderr: s}
		keep = append(keep, s)
	} else {
		pr, pw, err := os.Pipe()
		if err != nil {
			fmt.Fprintf(reply, "error container %s: %v\n", spec.Name, err)
			return err
		}
		out = pr
		cio = runtime.IO{Stdout: pw, Stderr: pw}
		keep = append(keep, pw)
		if req.Interactive {
			ir, iw, err := os.Pipe()
			if err == nil {
				cio.Stdin = ir
				keep = append(keep, ir)
				defer iw.Close() // stdin stays open, empty
			}
		}
	}
	c, err := r.Create(ctx, spec, runtime.CreateOptions{IO: cio})
	for _, f := range keep {
		f.Close()
	}
	if err != nil {
		fmt.Fprintf(reply, "error %v\n", err)
		return err
	}
	// Serve logs before saying ok, so `otok logs` right after `run -d`
	// finds the socket.
	ring := newLogRing(logRingSize)
	dir := r.Dir(spec.Name)
	sock := filepath.Join(dir, "monitor.sock")
	ln, lerr := net.Listen("unix", sock)
	if lerr == nil {
		go serveLogs(ln, ring)
	}
	// and the console (-t), so `otok attach` right after finds it
	var cons *monitorConsole
	if spec.Process.Terminal {
		cons = &monitorConsole{master: out, subs: map[net.Conn]struct{}{}}
		csock := filepath.Join(dir, "console.sock")
		if cln, err := listenPrivate(csock); err == nil {
			go cons.serve(cln)
			defer func() { cln.Close(); os.Remove(csock) }()
		}
	}
	fmt.Fprintf(reply, "ok %d\n", c.Pid())
	reply.Close()
	// Detach from the CLI's streams entirely. The monitor's own stderr
	// goes to the container's log file: if the monitor dies (a Go panic,
	// a fatal error), the reason is what `otok logs` shows once its
	// socket is gone. A normal exit rewrites the file with the output.
	if null, err := os.OpenFile("/dev/null", os.O_RDWR, 0); err == nil {
		for _, fd := range []int{0, 1, 2} {
			syscall.Dup3(int(null.Fd()), fd, 0)
		}
		null.Close()
	}
	logPath := filepath.Join(dir, "log")
	if f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_CLOEXEC, 0o600); err == nil {
		syscall.Dup3(int(f.Fd()), 2, 0)
		f.Close()
	}
	runtime.Tracef("monitor: detached")

	// DHCP leases (if any) are renewed while the container runs.
	nctx, ncancel := context.WithCancel(context.Background())
	go maintainNetwork(nctx, e, spec.Name)
	copied := make(chan struct{})
	go func() {
		if cons != nil {
			cons.pump(ring)
		} else {
			io.Copy(ring, out)
		}
		close(copied)
	}()
	st, werr := c.Wait(context.Background())
	runtime.Tracef("monitor: init exited: %s", st.ExitReason)
	select {
	case <-copied:
	case <-time.After(2 * time.Second): // a daemonised grandchild kept the pipe
	}
	ncancel()
	// What went wrong recording the exit (the state, the cgroup) goes to
	// the log too: the monitor has no other place to report it.
	if werr != nil {
		fmt.Fprintf(ring, "otok: monitor: %v\n", werr)
	}
	// A stopped container keeps no address (rm detaches again, idempotently).
	if err := detachNetwork(context.Background(), e, spec.Name); err != nil {
		fmt.Fprintf(ring, "otok: %v\n", err)
	}
	ring.close()
	if lerr == nil {
		ln.Close()
		os.Remove(sock)
	}
	if _, err := os.Stat(dir); err == nil {
		os.WriteFile(logPath, ring.bytes(), 0o600)
	}
	releaseImage(e, spec)
	if req.Rm {
		removeContainer(context.Background(), e, r, spec.Name, true)
	}
	runtime.Tracef("monitor: done")
	return nil
}

// monitorConsole is a detached tty container's console as its monitor
// holds it: output goes to the log ring and to attached connections
// (`otok attach` over <dir>/console.sock, mode 0600); what a connection
// sends is typed into the console; its first line "ROWS COLS" sizes it.
type monitorConsole struct {
	master *os.File
	mu     sync.Mutex
	subs   map[net.Conn]struct{}
}

// listenPrivate listens on a unix socket only root (the owner) may open.
func listenPrivate(path string) (net.Listener, error) {
	_ = os.Remove(path)
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	return ln, err
}

func (m *monitorConsole) pump(ring io.Writer) {
	buf := make([]byte, 16<<10)
	for {
		n, err := m.master.Read(buf)
		if n > 0 {
			ring.Write(buf[:n])
			m.mu.Lock()
			for c := range m.subs {
				c.SetWriteDeadline(time.Now().Add(time.Second)) // a stuck client is dropped, never the container
				if _, err := c.Write(buf[:n]); err != nil {
					c.Close()
					delete(m.subs, c)
				}
			}
			m.mu.Unlock()
		}
		if err != nil {
			break
		}
	}
	m.mu.Lock()
	for c := range m.subs {
		c.Close()
	}
	m.subs = nil
	m.mu.Unlock()
}

func (m *monitorConsole) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go m.attach(c)
	}
}

func (m *monitorConsole) attach(c net.Conn) {
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		c.Close()
		return
	}
	var rows, cols uint16
	if _, err := fmt.Sscanf(line, "%d %d", &rows, &cols); err == nil && rows > 0 && cols > 0 {
		unix.IoctlSetWinsize(int(m.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
	}
	m.mu.Lock()
	if m.subs == nil {
		m.mu.Unlock()
		c.Close()
		return
	}
	m.subs[c] = struct{}{}
	m.mu.Unlock()
	io.Copy(m.master, r)
	m.mu.Lock()
	if m.subs != nil {
		delete(m.subs, c)
	}
	m.mu.Unlock()
	c.Close()
}
