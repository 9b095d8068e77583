package main

import (
	"context"
	"io"
	"os"
	"strconv"
	"syscall"

	"github.com/otok/otok/runtime"
)

func init() {
	register(&command{
		name:       "exec",
		usage:      "[-i] [-t] [-e K=V] [-w DIR] [-u UID[:GID]] NAME CMD…",
		summary:    "run a command in a running container",
		ownSignals: true,
		run:        runExec,
	})
}

func runExec(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["exec"])
	var envs ctrList
	fs.Var(&envs, "e", "set environment `K=V` (repeatable)")
	interactive := fs.Bool("i", false, "keep stdin open")
	tty := fs.Bool("t", false, "allocate a terminal")
	it := fs.Bool("it", false, "same as -i -t")
	workdir := fs.String("w", "", "working `DIR`")
	user := fs.String("u", "", "run as `UID[:GID]` or user name")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *it {
		*interactive, *tty = true, true
	}
	if fs.NArg() < 2 {
		return usagef("want NAME and CMD")
	}
	name := fs.Arg(0)
	r := newRuntime(e)
	st, err := r.State(name)
	if err != nil {
		return err
	}
	p := runtime.Process{Args: fs.Args()[1:], Env: append(append([]string{}, st.Spec.Process.Env...), envs...), Cwd: *workdir, Terminal: *tty}
	if *user != "" {
		// Resolve against the container's own /etc/passwd.
		uid, gid, err := resolveUser("/proc/"+itoa(st.Pid)+"/root", *user)
		if err != nil {
			return err
		}
		p.UID, p.GID = uid, gid
	} else {
		p.UID, p.GID = st.Spec.Process.UID, st.Spec.Process.GID
	}
	var cio runtime.IO
	var master *os.File
	stdin := fileOf(e.stdin)
	if *tty {
		m, s, err := runtime.OpenPty()
		if err != nil {
			return err
		}
		defer m.Close()
		master = m
		cio = runtime.IO{Stdin: s, Stdout: s, Stderr: s}
		defer s.Close()
	} else {
		cio = runtime.IO{Stdout: fileOf(e.stdout), Stderr: fileOf(e.stderr)}
		if *interactive {
			cio.Stdin = stdin
		}
	}
	cmd, err := r.Exec(ctx, name, p, cio)
	if err != nil {
		return err
	}
	var done chan struct{}
	var term *terminal
	if master != nil {
		cio.Stdin.Close()
		var in io.Reader
		if *interactive {
			in = e.stdin
		}
		term = setupTerminal(stdin, master)
		done = copyPty(master, in, e.stdout)
	}
	werr := cmd.Wait()
	ps := cmd.ProcessState
	if ps != nil {
		werr = nil // a non-zero exit is reported through the code
	}
	if done != nil {
		<-done
	}
	if term != nil {
		term.restore()
	}
	if werr != nil {
		return werr
	}
	if code := runtime.ExitCode(ps.Sys().(syscall.WaitStatus)); code != 0 {
		return &exitError{code: code}
	}
	return nil
}

func itoa(n int) string { return strconv.Itoa(n) }
