package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/otok/otok/agent"
	"github.com/otok/otok/runtime"
)

func init() {
	register(&command{
		name:    "logs",
		usage:   "[-f] [--tail N] NAME",
		summary: "print a detached container's output (kept in RAM)",
		run:     runLogs,
	})
}

// logRing is a size-capped in-memory log: the oldest bytes are dropped.
type logRing struct {
	mu        sync.Mutex
	buf       []byte
	max       int
	followers map[chan []byte]bool
	closed    bool
}

func newLogRing(max int) *logRing {
	return &logRing{max: max, followers: map[chan []byte]bool{}}
}

func (l *logRing) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if over := len(l.buf) - l.max; over > 0 {
		// Drop whole lines where possible.
		cut := over
		if i := bytes.IndexByte(l.buf[over:], '\n'); i >= 0 && i < 4096 {
			cut = over + i + 1
		}
		l.buf = append(l.buf[:0], l.buf[cut:]...)
	}
	for ch := range l.followers {
		select {
		case ch <- append([]byte(nil), p...):
		default: // a slow follower loses data rather than blocking the container
		}
	}
	return len(p), nil
}

func (l *logRing) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.buf...)
}

// snapshot returns the buffer and, if follow, a channel of later writes
// (closed when the container's output ends).
func (l *logRing) snapshot(follow bool) ([]byte, chan []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := append([]byte(nil), l.buf...)
	if !follow {
		return b, nil
	}
	ch := make(chan []byte, 256)
	if l.closed {
		close(ch)
	} else {
		l.followers[ch] = true
	}
	return b, ch
}

func (l *logRing) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for ch := range l.followers {
		close(ch)
	}
	l.followers = map[chan []byte]bool{}
}

// tailLines returns the last n lines of b (n < 0: all).
func tailLines(b []byte, n int) []byte {
	if n < 0 {
		return b
	}
	if n == 0 {
		return nil
	}
	end := len(b)
	if end > 0 && b[end-1] == '\n' {
		end--
	}
	i := end
	for k := 0; k < n; k++ {
		j := bytes.LastIndexByte(b[:i], '\n')
		if j < 0 {
			return b
		}
		i = j
	}
	return b[i+1:]
}

// serveLogs answers "logs <tail> <follow>\n" requests on ln.
func serveLogs(ln net.Listener, ring *logRing) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			line, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil {
				return
			}
			f := strings.Fields(line)
			if len(f) != 3 || f[0] != "logs" {
				return
			}
			tail, _ := strconv.Atoi(f[1])
			b, ch := ring.snapshot(f[2] == "1")
			if _, err := conn.Write(tailLines(b, tail)); err != nil || ch == nil {
				return
			}
			for p := range ch {
				if _, err := conn.Write(p); err != nil {
					return
				}
			}
		}()
	}
}

func runLogs(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["logs"])
	follow := fs.Bool("f", false, "follow: keep printing new output until the container exits")
	fs.BoolVar(follow, "follow", false, "same as -f")
	tail := fs.Int("tail", -1, "print only the last `N` lines")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want one container NAME")
	}
	name := fs.Arg(0)
	c, err := agentClient(ctx, e, "logs")
	if err != nil {
		return err
	}
	if c != nil {
		defer c.Close()
	}
	r := newRuntime(e)
	err = routed(c, r, name,
		func() error {
			if *tail == 0 && !*follow {
				_, err := c.Inspect(ctx, name) // nothing to print; still "not found" for an unknown name
				return err
			}
			// --tail 0 -f: only new output. The API's Tail 0 means all, so
			// count what is kept now and skip that much of the replay.
			var skip int
			if *tail == 0 {
				err := c.Logs(ctx, &agent.LogsRequest{Name: name}, func(b []byte) error { skip += len(b); return nil })
				if err != nil {
					return err
				}
			}
			return c.Logs(ctx, &agent.LogsRequest{Name: name, Tail: max(*tail, 0), Follow: *follow}, func(b []byte) error {
				if skip > 0 {
					n := min(skip, len(b))
					b, skip = b[n:], skip-n
				}
				_, err := e.stdout.Write(b)
				return err
			})
		},
		func() error { return directLogs(ctx, e, r, name, *tail, *follow) })
	return agentError(e, "logs", err)
}

// directLogs prints a container's output without the agent: from its
// monitor (run -d), the log the monitor left, or the agent's log file of
// an agent's container while the agent is down.
func directLogs(ctx context.Context, e *env, r *runtime.Runtime, name string, tail int, follow bool) error {
	if _, err := r.State(name); err != nil {
		if _, ferr := os.Stat(agentLogPath(e, name)); ferr != nil {
			return err
		}
	}
	dir := r.Dir(name)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", filepath.Join(dir, "monitor.sock"))
	if err == nil {
		defer conn.Close()
		fl := 0
		if follow {
			fl = 1
		}
		fmt.Fprintf(conn, "logs %d %d\n", tail, fl)
		go func() { <-ctx.Done(); conn.Close() }()
		io.Copy(e.stdout, conn)
		return nil
	}
	b, err := os.ReadFile(filepath.Join(dir, "log"))
	if err == nil {
		e.stdout.Write(tailLines(b, tail))
		return nil
	}
	if !os.IsNotExist(err) {
		return fmt.Errorf("container %s: logs: %w", name, err)
	}
	if f, err := os.Open(agentLogPath(e, name)); err == nil {
		defer f.Close()
		return followFile(ctx, e, r, name, f, tail, follow)
	}
	return fmt.Errorf("container %s: no logs (it ran in the foreground, or its monitor was killed)", name)
}

// agentLogPath is where the agent's containers write their output
// (agent/logs.go): it stays readable while the agent is down.
func agentLogPath(e *env, name string) string {
	return filepath.Join(stateDir(e), "logs", name+".log")
}

// followFile prints the agent's log file f (the part the agent trimmed
// reads as zeros: skipped) and, with follow, what the container appends
// while it runs.
func followFile(ctx context.Context, e *env, r *runtime.Runtime, name string, f *os.File, tail int, follow bool) error {
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Errorf("container %s: logs: %w", name, err)
	}
	if i := bytes.IndexFunc(b, func(r rune) bool { return r != 0 }); i > 0 {
		b = b[i:]
		if j := bytes.IndexByte(b, '\n'); j >= 0 {
			b = b[j+1:] // a partial first line
		}
	} else if i < 0 {
		b = nil
	}
	e.stdout.Write(tailLines(b, tail))
	for follow && ctx.Err() == nil {
		st, err := r.State(name)
		alive := err == nil && st.Alive()
		n, _ := io.Copy(e.stdout, f)
		if !alive && n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}
