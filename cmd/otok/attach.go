package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/otok/otok/agent"
)

// otok attach NAME: the console of a container started with a terminal
// (-t, option tty; a system container's console too). The agent holds the
// console of its containers (agent/console.go); a detached container's
// monitor holds its own (<state>/containers/NAME/console.sock). Keys go to
// the container; Ctrl-P Ctrl-Q detaches and leaves it running, as docker
// and lxc-console do (Ctrl-P followed by any other key sends both). Output
// is shown from the moment of attaching: Ctrl-L or the next prompt
// redraws the screen, `otok logs` has the history.

func init() {
	register(&command{name: "attach", usage: "NAME", summary: "attach to a container's console (detach: Ctrl-P Ctrl-Q)",
		run: runAttach})
}

// Detach sequence.
const (
	keyCtrlP = 0x10
	keyCtrlQ = 0x11
)

// detachFilter passes keystrokes through until Ctrl-P Ctrl-Q. A Ctrl-P is
// held back until the next key says what it was.
type detachFilter struct{ held bool }

// feed returns the bytes to send and whether the detach sequence ended
// the input.
func (d *detachFilter) feed(b []byte) (out []byte, detach bool) {
	for _, c := range b {
		switch {
		case d.held && c == keyCtrlQ:
			return out, true
		case d.held:
			d.held = false
			out = append(out, keyCtrlP)
			if c == keyCtrlP {
				d.held = true
				continue
			}
			out = append(out, c)
		case c == keyCtrlP:
			d.held = true
		default:
			out = append(out, c)
		}
	}
	return out, false
}

func runAttach(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["attach"])
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want exactly one container NAME")
	}
	name := fs.Arg(0)
	c, err := agentClient(ctx, e, "attach")
	if err != nil {
		return err
	}
	if c != nil {
		defer c.Close()
		if _, err := c.Inspect(ctx, name); err == nil {
			return attachAgent(ctx, e, c, name)
		} else if !isAgentErr(err, agent.CodeNotFound) {
			return agentError(e, "attach", err)
		}
	}
	return attachMonitor(ctx, e, name)
}

// attachSession is the caller's side of an attachment: raw terminal,
// window size, stdin through the detach filter.
type attachSession struct {
	e      *env
	in     chan agent.AttachInput
	term   *terminal
	stdin  *os.File
	winchs chan os.Signal
}

func newAttachSession(e *env) *attachSession {
	s := &attachSession{e: e, in: make(chan agent.AttachInput, 16)}
	if f, ok := e.stdin.(*os.File); ok && isTerminal(f) {
		s.stdin = f
	}
	return s
}

// size is the caller's terminal size (0, 0 when not a terminal).
func (s *attachSession) size() (rows, cols uint16) {
	if s.stdin == nil {
		return 0, 0
	}
	ws, err := unix.IoctlGetWinsize(int(s.stdin.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return 0, 0
	}
	return ws.Row, ws.Col
}

// start puts the terminal in raw mode and feeds s.in from stdin and
// SIGWINCH; s.in is closed at the detach keys only. At the end of stdin
// the attachment stays (output until the container exits), as docker's.
func (s *attachSession) start() {
	if s.stdin != nil {
		s.term = setupRawTerminal(s.stdin)
		s.winchs = make(chan os.Signal, 1)
		signal.Notify(s.winchs, syscall.SIGWINCH)
		go func() {
			for range s.winchs {
				r, c := s.size()
				select {
				case s.in <- agent.AttachInput{Rows: r, Cols: c}:
				default:
				}
			}
		}()
	}
	go func() {
		if s.e.stdin == nil {
			return
		}
		var d detachFilter
		buf := make([]byte, 4096)
		for {
			n, err := s.e.stdin.Read(buf)
			if n > 0 {
				out, detach := d.feed(buf[:n])
				if len(out) > 0 {
					s.in <- agent.AttachInput{Data: out}
				}
				if detach {
					close(s.in)
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
}

func (s *attachSession) stop() {
	if s.winchs != nil {
		signal.Stop(s.winchs)
		close(s.winchs)
	}
	if s.term != nil {
		s.term.restore()
	}
}

// setupRawTerminal is setupTerminal without a pty to size (the window size
// travels as AttachInput).
func setupRawTerminal(in *os.File) *terminal {
	return &terminal{in: in, saved: makeRaw(in)}
}

func attachAgent(ctx context.Context, e *env, c *agent.Client, name string) error {
	s := newAttachSession(e)
	rows, cols := s.size()
	s.start()
	err := c.Attach(ctx, &agent.AttachRequest{Name: name, Rows: rows, Cols: cols},
		func(b []byte) error { _, err := e.stdout.Write(b); return err }, s.in)
	s.stop()
	if err != nil {
		return agentError(e, "attach", err)
	}
	return nil
}

// consoleSocket is where a detached container's monitor serves its console.
func consoleSocket(e *env, name string) string {
	return filepath.Join(newRuntime(e).Dir(name), "console.sock")
}

// attachMonitor attaches to a console a monitor holds: raw bytes both
// ways over its console socket; a window size goes first as the line
// "ROWS COLS\n".
func attachMonitor(ctx context.Context, e *env, name string) error {
	r := newRuntime(e)
	st, err := r.State(name)
	if err != nil {
		return err
	}
	if !st.Spec.Process.Terminal {
		return fmt.Errorf("container %s: has no console (not started with -t); use otok logs", name)
	}
	conn, err := net.Dial("unix", consoleSocket(e, name))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("container %s: no console to attach to (a foreground run -t owns its terminal; or it is not running)", name)
		}
		return fmt.Errorf("container %s: console: %w", name, err)
	}
	defer conn.Close()
	s := newAttachSession(e)
	rows, cols := s.size()
	fmt.Fprintf(conn, "%d %d\n", rows, cols)
	s.start()
	defer s.stop()
	outDone := make(chan struct{})
	go func() {
		io.Copy(e.stdout, conn)
		close(outDone)
	}()
	for {
		select {
		case <-outDone: // the container exited
			return nil
		case <-ctx.Done():
			return nil
		case x, ok := <-s.in:
			if !ok {
				return nil // detached
			}
			if x.Rows > 0 {
				// no resize channel on the raw socket: an escape the
				// monitor understands would be ambiguous; sizes are set
				// at attach only
				continue
			}
			if _, err := conn.Write(x.Data); err != nil {
				return nil
			}
		}
	}
}
