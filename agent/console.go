package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
	"golang.org/x/sys/unix"

	"github.com/otok/otok/runtime"
)

// Consoles (`option tty`, `otok run -t` with the agent, `otok attach`).
//
// A tty container's stdin, stdout and stderr are the slave of a pty the
// agent opens; the agent holds the master and is its only reader: one
// goroutine per instance (the pump) appends what the container writes to
// the container's log file (so `otok logs` shows console output too) and
// copies it to every attached client. Attached clients write keystrokes
// to the master and set its window size. `otok attach` detaches on
// Ctrl-P Ctrl-Q (the CLI watches for it; the agent just sees the client
// go) — like docker and lxc-console.
//
// The master must outlive the agent: closing it hangs up the terminal
// (SIGHUP to the container's session, EIO on its reads), so an agent
// kill -9 would end a shell console. No per-container helper may hold it.
// The design: the container's PID 1 is otok's reaper (runtime
// Process.Init) and keeps a dup of the master (close-on-exec, never passed
// to the workload) at a known fd number, recorded in the agent's state
// file; a re-adopting agent gets the master back with pidfd_getfd(2)
// (Linux ≥ 5.6) from the init's pidfd (recoverConsole) and pumps it again.
// The runtime passes the master to the init (runtime.CreateOptions.
// KeepFiles, see keepConsole). A system container's /sbin/init must be
// PID 1, so it gets no reaper and no kept master. Without a kept master
// (a system container, a kernel before 5.6) the bound is: an
// agent kill -9 hangs up the console (the init survives as PID 1 of its
// namespace, which ignores the hangup unless it handles SIGHUP; a shell
// reading it exits), and a re-adopted tty container has no console to
// attach to (attach says so). While the agent is down a tty
// container's output waits in the pty's buffer (a few KiB) and then its
// writes block until the next agent reads them.

// AttachRequest asks for a container's console. Rows/Cols, when set,
// resize it first.
type AttachRequest struct {
	Name string `cbor:"name" json:"name"`
	Rows uint16 `cbor:"rows,omitempty" json:"rows,omitempty"`
	Cols uint16 `cbor:"cols,omitempty" json:"cols,omitempty"`
}

// AttachInput is what an attached client sends after its request: bytes
// for the console, and/or a new window size.
type AttachInput struct {
	Data []byte `cbor:"data,omitempty" json:"data,omitempty"`
	Rows uint16 `cbor:"rows,omitempty" json:"rows,omitempty"`
	Cols uint16 `cbor:"cols,omitempty" json:"cols,omitempty"`
}

// OpAttach is the console op: replies are LogsChunk (console output); the
// client sends AttachInput frames on the same connection.
const OpAttach = "attach"

func init() {
	Ops[OpAttach] = &Op{Name: OpAttach, Mutating: true, New: func() any { return new(AttachRequest) },
		Duplex: func(ctx context.Context, a *Agent, r any, emit func(any) error, input <-chan cbor.RawMessage) error {
			return a.Attach(ctx, r.(*AttachRequest), emit, input)
		}}
}

// console is one instance's pty master and its attached clients.
type console struct {
	master *os.File
	mu     sync.Mutex
	subs   map[chan []byte]struct{}
	done   chan struct{} // closed when the pump has ended (container gone)
}

// openPty is the runtime's: the console is the agent's only pty.
var openPty = runtime.OpenPty

// pump reads the master until the container side is gone (EIO), appending
// to the log file and copying to attached clients.
func (a *Agent) pump(name string, cons *console) {
	defer close(cons.done)
	defer cons.master.Close()
	logf, err := os.OpenFile(a.logPath(name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		a.log.Printf("container %s: console log: %v", name, err)
	} else {
		defer logf.Close()
	}
	// the agent's end (Close) ends the pump: the master closes with the
	// agent, as it would if the agent were killed
	stop := context.AfterFunc(a.ctx, func() { _ = cons.master.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 16<<10)
	for {
		n, err := cons.master.Read(buf)
		if n > 0 {
			if logf != nil {
				_, _ = logf.Write(buf[:n])
			}
			cons.mu.Lock()
			for ch := range cons.subs {
				select {
				case ch <- append([]byte(nil), buf[:n]...):
				default: // a client that does not keep up loses output, never the container
				}
			}
			cons.mu.Unlock()
		}
		if err != nil {
			break
		}
	}
	cons.mu.Lock()
	for ch := range cons.subs {
		close(ch)
	}
	cons.subs = nil
	cons.mu.Unlock()
}

// Attach connects a client to a running tty container's console until the
// client goes, the container exits, or the agent stops.
func (a *Agent) Attach(ctx context.Context, r *AttachRequest, emit func(any) error, input <-chan cbor.RawMessage) error {
	a.mu.Lock()
	c, err := a.lookupLocked(r.Name)
	var cons *console
	if err == nil {
		switch {
		case !c.running():
			err = Errorf(CodeConflict, "container %s: not running (%s)", r.Name, c.state)
		case c.run == nil || !c.run.Terminal:
			err = Errorf(CodeConflict, "container %s: has no console (not started with a tty: option tty / run -t); use otok logs", r.Name)
		case c.console == nil:
			err = Errorf(CodeUnavailable, "container %s: its console was held by the previous agent and is lost (re-adopted after an agent restart; see agent/console.go); restart the container to get one", r.Name)
		default:
			cons = c.console
		}
	}
	a.mu.Unlock()
	if err != nil {
		return err
	}
	resize := func(rows, cols uint16) {
		if rows > 0 && cols > 0 {
			_ = unix.IoctlSetWinsize(int(cons.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols})
		}
	}
	ch := make(chan []byte, 64)
	cons.mu.Lock()
	if cons.subs == nil {
		cons.mu.Unlock()
		return Errorf(CodeConflict, "container %s: console closed (exited)", r.Name)
	}
	cons.subs[ch] = struct{}{}
	cons.mu.Unlock()
	defer func() {
		cons.mu.Lock()
		if cons.subs != nil {
			delete(cons.subs, ch)
		}
		cons.mu.Unlock()
	}()
	resize(r.Rows, r.Cols)
	a.event(Event{Type: EvAttach, Container: r.Name})
	// the console's current screen is not kept: a redraw (Ctrl-L) or the
	// next prompt shows it; the log has the history
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.ctx.Done():
			return nil
		case b, ok := <-ch:
			if !ok {
				return nil // the container exited
			}
			if err := emit(LogsChunk{Data: b}); err != nil {
				return nil
			}
		case raw, ok := <-input:
			if !ok {
				return nil // detached
			}
			var in AttachInput
			if err := decodeBody(OpAttach, raw, &in); err != nil {
				return err
			}
			resize(in.Rows, in.Cols)
			if len(in.Data) > 0 {
				if _, err := cons.master.Write(in.Data); err != nil && !errors.Is(err, os.ErrClosed) {
					return nil
				}
			}
		}
	}
}

// recoverConsole gets a pty master back from the process that keeps a dup
// of it (the container's init, at fd number fd) through its pidfd, as a
// re-adopting agent does. It checks that what it got is a pty master.
func recoverConsole(p Proc, fd int) (*os.File, error) {
	if err := checkProc(p); err != nil {
		return nil, err
	}
	pidfd, err := unix.PidfdOpen(p.Pid, 0)
	if err != nil {
		return nil, fmt.Errorf("console: pidfd_open %d: %w", p.Pid, err)
	}
	defer unix.Close(pidfd)
	// the pid may have been reused between checkProc and pidfd_open
	if err := checkProc(p); err != nil {
		return nil, err
	}
	nfd, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return nil, fmt.Errorf("console: pidfd_getfd %d:%d (Linux ≥ 5.6): %w", p.Pid, fd, err)
	}
	unix.CloseOnExec(nfd)
	f := os.NewFile(uintptr(nfd), "pty-master")
	if _, err := unix.IoctlGetInt(nfd, unix.TIOCGPTN); err != nil {
		f.Close()
		return nil, fmt.Errorf("console: fd %d of pid %d is not a pty master: %w", fd, p.Pid, err)
	}
	return f, nil
}

// keptConsoleFd is where the init keeps the first of CreateOptions.KeepFiles
// (after its spec pipe, fd 3, and status pipe, fd 4).
const keptConsoleFd = 5

// keepConsole asks the runtime to make the container's init keep a dup of
// master (CreateOptions.KeepFiles). The init must then be otok's reaper,
// which keeps it; a system container's /sbin/init must be PID 1, so it
// gets none. It returns the fd number in the init, or 0.
func keepConsole(opts *runtime.CreateOptions, rs *runtime.Spec, master *os.File) int {
	if rs.System {
		return 0
	}
	rs.Process.Init = true
	opts.KeepFiles = []*os.File{master}
	return keptConsoleFd
}
