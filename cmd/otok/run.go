package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/otok/otok/agent"

	goruntime "runtime"

	"github.com/otok/otok/flash"
	"github.com/otok/otok/runtime"
)

func init() {
	register(&command{
		name:       "run",
		usage:      "[--rm] [-d] [-i] [-t] [--name NAME] [options] IMAGE|SQUASHFS|DIR [CMD…]",
		summary:    "run a command in a new container",
		ownSignals: true,
		run:        runRun,
	})
	register(&command{
		name:    "create",
		usage:   "[--name NAME] [options] IMAGE|SQUASHFS|DIR [CMD…]",
		summary: "create a container (start it with 'otok start')",
		run:     runCreate,
	})
}

// stateDir is the runtime state directory: --state / OTOK_STATE, else the
// agent's default (/var/run/otok: tmpfs on OpenWrt and Debian alike), so the
// CLI and the agent share state, locks and the command socket.
func stateDir(e *env) string {
	if e.state != "" {
		return e.state
	}
	return agent.DefaultStateDir
}

// newRuntime returns the runtime over the state directory; its init and
// exec stages are this binary's hidden commands.
func newRuntime(e *env) *runtime.Runtime {
	args := []string{"otok"}
	if e.state != "" {
		args = append(args, "--state", e.state)
	}
	return &runtime.Runtime{
		// OTOK_CGROUP_ROOT overrides /sys/fs/cgroup (tests use the empty
		// v2 tree of a hybrid host to exercise the v2 code for real).
		CgroupRoot: os.Getenv("OTOK_CGROUP_ROOT"),
		Root:       stateDir(e),
		InitArgs:   append(append([]string{}, args...), "init"),
		ExecArgs:   append(append([]string{}, args...), "execstage"),
	}
}

// prepared is a container spec with (after mountImage) its image acquired.
type prepared struct {
	spec    *runtime.Spec
	flags   *containerFlags
	src     *rootfsSource
	policy  agent.RestartPolicy // --restart
	release func()              // drops the image mount hold
}

// prepareContainer parses run/create arguments and builds the spec; the
// image is not mounted yet (mountImage).
func prepareContainer(ctx context.Context, e *env, cmd *command, args []string) (*prepared, error) {
	fs := newFlags(e, cmd)
	f := addContainerFlags(fs, cmd.name == "run")
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() == 0 {
		return nil, usagef("missing IMAGE")
	}
	if v, ok := any(f.net).(interface{ validate() error }); ok {
		if err := v.validate(); err != nil {
			return nil, err
		}
	}
	runtime.Tracef("run: flags parsed")
	src, err := resolveImage(e, fs.Arg(0))
	if err != nil {
		return nil, err
	}
	spec, err := f.buildSpec(src, fs.Args()[1:])
	if err != nil {
		return nil, err
	}
	runtime.Tracef("run: spec built")
	r := newRuntime(e)
	sweepContainers(ctx, e, r)
	runtime.Tracef("run: swept")
	if _, err := r.State(spec.Name); err == nil {
		return nil, fmt.Errorf("container %s: %w", spec.Name, runtime.ErrNameInUse)
	}
	if f.rm {
		if spec.Annotations == nil {
			spec.Annotations = map[string]string{}
		}
		spec.Annotations[annotationAutoRemove] = "true"
	}
	recordRunOptions(spec, f) // for starting it again once stopped (restart.go)
	spec.Rootfs.Path = "/"    // checked for real once the image is mounted
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	policy, err := agent.ParseRestart(f.restart)
	if err != nil {
		return nil, usagef("--restart %v", err)
	}
	runtime.Tracef("run: flags parsed, swept")
	return &prepared{spec: spec, flags: f, src: src, policy: policy, release: func() {}}, nil
}

// mountImage mounts the image and resolves the user against it. On error
// nothing stays mounted.
func mountImage(ctx context.Context, e *env, p *prepared) error {
	spec, f, src := p.spec, p.flags, p.src
	if src.Squashfs != "" {
		dir, err := flash.AcquireSquashfs(ctx, stateDir(e), src.Squashfs, src.Digest, spec.Name)
		if err != nil {
			return err
		}
		digest := filepath.Base(dir)
		if abs, err := filepath.Abs(src.Squashfs); err == nil {
			src.Squashfs = abs
		}
		spec.Rootfs.Path, spec.Rootfs.File, spec.Rootfs.Digest = dir, src.Squashfs, digest
		p.release = func() { flash.ReleaseSquashfs(stateDir(e), digest, spec.Name) }
	} else {
		spec.Rootfs.Path = src.Dir
	}
	runtime.Tracef("run: image mounted")
	uid, gid, err := resolveUser(spec.Rootfs.Path, f.user)
	if err != nil {
		p.release()
		return err
	}
	spec.Process.UID, spec.Process.GID = uid, gid
	warnPrivileged(e, spec)
	return nil
}

func warnPrivileged(e *env, spec *runtime.Spec) {
	if spec.Privileged {
		fmt.Fprintf(e.stderr, "otok: WARNING: container %s is --privileged: every capability, no seccomp, writable /sys; it can take over this device\n", spec.Name)
	}
}

// releaseImage drops a container's hold on its squashfs mount.
func releaseImage(e *env, s *runtime.Spec) {
	if s.Rootfs.Digest != "" {
		flash.ReleaseSquashfs(stateDir(e), s.Rootfs.Digest, s.Name)
	}
}

// annotationAutoRemove marks a `run --rm` container, so that if the otok
// process that should remove it is killed, the next sweep does.
const annotationAutoRemove = "otok.autoremove"

// containerRemoveHooks run when a container is removed (network state in
// its annotations is torn down there). Hooks must be idempotent.
var containerRemoveHooks []func(ctx context.Context, e *env, st *runtime.State)

// removeContainer deletes a container and everything otok attached to it.
func removeContainer(ctx context.Context, e *env, r *runtime.Runtime, name string, force bool) error {
	st, err := r.Delete(ctx, name, force)
	runtime.Tracef("rm: deleted")
	if st != nil {
		releaseRemoved(ctx, e, st)
	}
	return err
}

// releaseRemoved releases what otok attached to a deleted container.
func releaseRemoved(ctx context.Context, e *env, st *runtime.State) {
	for _, h := range containerRemoveHooks {
		h(ctx, e, st)
	}
	runtime.Tracef("rm: hooks run")
	releaseImage(e, &st.Spec)
}

// sweepContainers records containers whose otok parent was killed and
// releases what they held.
func sweepContainers(ctx context.Context, e *env, r *runtime.Runtime) {
	names, _ := r.Sweep(ctx)
	for _, n := range names {
		st, err := r.State(n)
		if err != nil {
			continue
		}
		if st.Spec.Annotations[annotationAutoRemove] == "true" {
			removeContainer(ctx, e, r, n, true) // its `run --rm` was killed
		} else {
			releaseImage(e, &st.Spec)
		}
	}
}

func runCreate(ctx context.Context, e *env, args []string) error {
	p, err := prepareContainer(ctx, e, commands["create"], args)
	if err != nil {
		return err
	}
	return runDetached(ctx, e, "create", p, false)
}

// runDetached creates (start: and starts) a container that outlives the
// command: through the agent when it runs, else under its own monitor.
func runDetached(ctx context.Context, e *env, cmd string, p *prepared, start bool) error {
	c, err := agentClient(ctx, e, cmd)
	if err != nil {
		return err
	}
	restart := p.policy.Mode != agent.RestartNo
	if c != nil {
		defer c.Close()
		un := p.flags.agentUnsupported()
		if len(un) == 0 {
			return runViaAgent(ctx, e, c, cmd, p, start)
		}
		if restart {
			return usagef("%s: not carried by the agent's container spec, so --restart %s cannot apply; drop them or use --restart no", strings.Join(un, ", "), p.policy)
		}
		fmt.Fprintf(e.stderr, "otok: note: %s not carried by the agent: container %s gets its own monitor and is not supervised\n",
			strings.Join(un, ", "), p.spec.Name)
	} else if restart {
		return needsAgentMsg(p.policy.String())
	}
	if err := mountImage(ctx, e, p); err != nil {
		return err
	}
	return startDetached(ctx, e, p, start)
}

// runViaAgent hands the container to the agent (run or create op).
func runViaAgent(ctx context.Context, e *env, c *agent.Client, cmd string, p *prepared, start bool) error {
	f := p.flags
	// The agent resolves the image itself: a store reference as given, a
	// file or directory by absolute path.
	image := p.src.Ref
	if _, err := os.Stat(image); err == nil {
		if abs, err := filepath.Abs(image); err == nil {
			image = abs
		}
	}
	spec := agent.SpecFromRuntime(p.spec, image)
	spec.User = f.user // resolved by the agent against the image's /etc/passwd
	spec.Net, spec.MAC = f.net.net, f.net.mac
	spec.IP = append([]string(nil), f.net.ips...)
	spec.DNS = append([]string(nil), f.net.dns...)
	spec.Publish = append([]string(nil), f.net.publish...)
	spec.Restart = p.policy
	warnPrivileged(e, p.spec)
	var err error
	if start {
		_, err = c.Run(ctx, spec)
	} else {
		_, err = c.Create(ctx, spec)
	}
	if err != nil {
		return agentError(e, cmd, err)
	}
	fmt.Fprintln(e.stdout, spec.Name)
	return nil
}

func runRun(ctx context.Context, e *env, args []string) error {
	// `run` is a sequence of waits on the kernel and the init stage; one
	// P avoids waking idle threads on every handoff (measurably faster
	// starts on a loaded 2-core router).
	goruntime.GOMAXPROCS(1)
	p, err := prepareContainer(ctx, e, commands["run"], args)
	if err != nil {
		return err
	}
	if p.flags.detach {
		return runDetached(ctx, e, "run", p, true)
	}
	if p.policy.Mode != agent.RestartNo {
		return usagef("--restart %s: only for containers the agent supervises (run -d, create); a foreground run ends with this command", p.policy)
	}
	// The foreground container stays this process's child, agent or not
	// (agentroute.go).
	if err := mountImage(ctx, e, p); err != nil {
		return err
	}
	return runForeground(ctx, e, p)
}

func fileOf(x any) *os.File {
	if f, ok := x.(*os.File); ok {
		return f
	}
	return nil
}

// runForeground runs the container as a child of this process, with the
// caller's terminal or streams, forwarding signals; it returns the
// container's exit code as an exitError.
func runForeground(ctx context.Context, e *env, p *prepared) (err error) {
	spec, f := p.spec, p.flags
	r := newRuntime(e)
	var cio runtime.IO
	var master *os.File
	stdin, stdout := fileOf(e.stdin), fileOf(e.stdout)
	if spec.Process.Terminal {
		m, s, err := runtime.OpenPty()
		if err != nil {
			p.release()
			return err
		}
		master = m
		defer master.Close()
		defer s.Close()
		cio = runtime.IO{Stdin: s, Stdout: s, Stderr: s}
	} else {
		cio = runtime.IO{Stdout: stdout, Stderr: fileOf(e.stderr)}
		if f.interactive {
			cio.Stdin = stdin
		}
	}
	// Signals are caught from here on and forwarded once the container
	// runs. Catching hands each signal over to Go's signal thread and
	// back: done while Create waits on the kernel and the init stage.
	sigs := make(chan os.Signal, 8)
	notified := make(chan struct{})
	go func() {
		signal.Notify(sigs, forwardedSignals...)
		close(notified)
	}()
	defer func() {
		<-notified
		signal.Stop(sigs)
	}()
	runtime.Tracef("run: creating")
	c, err := r.Create(ctx, spec, runtime.CreateOptions{IO: cio, KillOnParentExit: true})
	if err != nil {
		p.release()
		return err
	}
	for _, w := range c.State().Warnings {
		fmt.Fprintf(e.stderr, "otok: warning: container %s: %s\n", spec.Name, w)
	}
	cleanup := func() {
		if f.rm {
			removeContainer(context.Background(), e, r, spec.Name, true)
			runtime.Tracef("run: removed")
		} else {
			p.release()
		}
	}
	detach, err := f.net.attach(ctx, e, spec.Name, c.Pid())
	runtime.Tracef("run: network attached")
	if err != nil {
		r.Kill(spec.Name, syscall.SIGKILL)
		c.Wait(context.Background())
		removeContainer(context.Background(), e, r, spec.Name, true)
		return err
	}
	var done chan struct{}
	var term *terminal
	if master != nil {
		cio.Stdin.Close() // the container holds its own copy
		var in io.Reader
		if f.interactive {
			in = e.stdin
		}
		term = setupTerminal(stdin, master)
		done = copyPty(master, in, e.stdout)
	}
	if err := c.Start(ctx); err != nil {
		if term != nil {
			term.restore()
		}
		r.Kill(spec.Name, syscall.SIGKILL)
		c.Wait(context.Background())
		detach(context.Background())
		cleanup()
		return err
	}
	<-notified
	go func() {
		for s := range sigs {
			sig, ok := s.(syscall.Signal)
			if !ok {
				continue
			}
			syscall.Kill(c.Pid(), sig)
		}
	}()
	var st *runtime.State
	var werr error
	if f.rm {
		st, werr = c.WaitRemove(context.Background()) // no stopped state recorded first
	} else {
		st, werr = c.Wait(context.Background())
	}
	if done != nil {
		<-done
	}
	if term != nil {
		term.restore()
	}
	detach(context.Background())
	if f.rm {
		if st != nil {
			releaseRemoved(context.Background(), e, st)
		}
	} else {
		p.release()
	}
	runtime.Tracef("run: cleaned up")
	if werr != nil && st == nil {
		return werr
	}
	if st.OOMKilled {
		fmt.Fprintf(e.stderr, "otok: container %s: killed by the OOM killer (memory limit)\n", spec.Name)
	}
	if st.ExitCode != 0 {
		return &exitError{code: st.ExitCode}
	}
	return nil
}

// forwardedSignals are passed on from `otok run` to the container's init
// (SIGWINCH is handled by the terminal code; SIGKILL/SIGSTOP cannot be
// caught).
var forwardedSignals = []os.Signal{
	syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGPWR, syscall.SIGALRM,
	syscall.SIGCONT, syscall.SIGTSTP,
}
