package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/otok/otok/runtime"
)

// RuntimeAdapter is the Runtime over runtime.Runtime. Containers it
// creates have this process as their parent (it Waits for their exit
// status); containers of an earlier agent are waited for through a pidfd.
type RuntimeAdapter struct {
	R *runtime.Runtime

	mu   sync.Mutex
	ctrs map[string]*runtime.Container
}

// NewRuntimeAdapter wraps r.
func NewRuntimeAdapter(r *runtime.Runtime) *RuntimeAdapter {
	return &RuntimeAdapter{R: r, ctrs: map[string]*runtime.Container{}}
}

// runtimeSpec builds the runtime's spec from the desired state and the
// resolved image (image defaults under the spec's own values).
func runtimeSpec(s *RunSpec) (*runtime.Spec, error) {
	c := s.Spec
	rs := &runtime.Spec{Name: c.Name, Hostname: c.Hostname, Privileged: c.Privileged, System: c.System,
		Annotations: map[string]string{"otok.agent": "1", "otok.image": c.Image}}
	rs.Rootfs = runtime.Rootfs{Path: s.Rootfs, TmpfsSize: c.TmpfsSize, Image: c.Image}
	rs.Rootfs.UpperDir = s.UpperDir // persistent layer (persist.go)
	if s.Image != nil {
		rs.Rootfs.Digest, rs.Rootfs.File = s.Image.Digest, s.Image.File
	}
	p := &rs.Process
	switch {
	case len(c.Command) > 0:
		p.Args = c.Command
	case c.System:
		p.Args = []string{"/sbin/init"}
	case s.Image != nil && len(s.Image.Args) > 0:
		p.Args = s.Image.Args
	default:
		p.Args = []string{"/bin/sh"}
	}
	if s.Image != nil {
		p.Env = append(p.Env, s.Image.Env...)
		p.Cwd = s.Image.Cwd
	}
	p.Env = append(p.Env, c.Env...)
	if c.Cwd != "" {
		p.Cwd = c.Cwd
	}
	user := c.User
	if user == "" && s.Image != nil {
		user = s.Image.User
	}
	if user != "" {
		uid, gid, err := resolveUser(s.Rootfs, user)
		if err != nil {
			return nil, Errorf(CodeInvalid, "container %s: %v", c.Name, err)
		}
		p.UID, p.GID = uid, gid
	}
	for _, m := range c.Mounts {
		f := strings.Split(m, ":")
		rs.Mounts = append(rs.Mounts, runtime.Mount{Source: f[0], Target: f[1], ReadOnly: len(f) == 3 && f[2] == "ro"})
	}
	if c.Net == "host" {
		rs.Net.Mode = runtime.NetHost
	}
	rs.Resources = runtime.Resources{Memory: c.Memory, CPUs: c.CPUs, PidsLimit: c.Pids}
	return rs, nil
}

func (r *RuntimeAdapter) Create(ctx context.Context, s *RunSpec) (Proc, error) {
	rs, err := runtimeSpec(s)
	if err != nil {
		return Proc{}, err
	}
	var cio runtime.IO
	var opts runtime.CreateOptions
	if s.Console != nil {
		rs.Process.Terminal = true
		cio = runtime.IO{Stdin: s.Console, Stdout: s.Console, Stderr: s.Console}
		if s.ConsoleMaster != nil {
			s.ConsoleKeptFd = keepConsole(&opts, rs, s.ConsoleMaster)
		}
	} else {
		logf, err := os.OpenFile(s.LogPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return Proc{}, fmt.Errorf("log file: %w", err)
		}
		defer logf.Close() // the init has its own descriptors
		cio = runtime.IO{Stdout: logf, Stderr: logf}
	}
	opts.IO = cio
	c, err := r.R.Create(ctx, rs, opts)
	if err != nil {
		if errors.Is(err, runtime.ErrNameInUse) {
			return Proc{}, &Error{Code: CodeConflict, Msg: err.Error()}
		}
		return Proc{}, err
	}
	r.mu.Lock()
	r.ctrs[rs.Name] = c
	r.mu.Unlock()
	return Proc{Pid: c.Pid(), StartTime: c.State().PidStart}, nil
}

func (r *RuntimeAdapter) Start(ctx context.Context, name string) error { return r.R.Start(ctx, name) }

func (r *RuntimeAdapter) Kill(ctx context.Context, name string, sig syscall.Signal) error {
	return r.R.Kill(name, sig)
}

func (r *RuntimeAdapter) Wait(ctx context.Context, name string, p Proc) (*ExitInfo, error) {
	r.mu.Lock()
	c := r.ctrs[name]
	r.mu.Unlock()
	if c == nil || c.Pid() != p.Pid {
		return WaitProc(ctx, p)
	}
	// Wait for the exit in the netpoller first (no OS thread blocked in
	// wait4 per container); the runtime's Wait then reaps at once.
	if err := waitExited(ctx, p); err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	type res struct {
		st  *runtime.State
		err error
	}
	ch := make(chan res, 1)
	// Container.Wait kills the container when its context ends: give it
	// none, the agent going away must not take containers with it.
	go func() {
		st, err := c.Wait(context.Background())
		ch <- res{st, err}
	}()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case x := <-ch:
		r.mu.Lock()
		if r.ctrs[name] == c {
			delete(r.ctrs, name)
		}
		r.mu.Unlock()
		if x.st == nil {
			return &ExitInfo{Unknown: true}, x.err
		}
		e := &ExitInfo{Code: x.st.ExitCode, OOM: x.st.OOMKilled}
		if sig, ok := strings.CutPrefix(x.st.ExitReason, "killed by "); ok {
			e.Signal = sig
		}
		return e, nil
	}
}

func (r *RuntimeAdapter) Delete(ctx context.Context, name string) error {
	_, err := r.R.Delete(ctx, name, false)
	if errors.Is(err, runtime.ErrNotFound) {
		return nil
	}
	return err
}

func (r *RuntimeAdapter) List(ctx context.Context) ([]RuntimeState, error) {
	sts, err := r.R.List()
	if err != nil {
		return nil, err
	}
	var out []RuntimeState
	for _, s := range sts {
		out = append(out, RuntimeState{Name: s.Spec.Name, Proc: Proc{Pid: s.Pid, StartTime: s.PidStart},
			Running: s.Alive(), Image: s.Spec.Rootfs.Image, Digest: s.Spec.Rootfs.Digest, Created: s.Created,
			Agent: s.Spec.Annotations["otok.agent"] == "1"})
	}
	return out, nil
}

func (r *RuntimeAdapter) Exec(ctx context.Context, name string, args []string) (int, error) {
	cmd, err := r.R.Exec(ctx, name, runtime.Process{Args: args}, runtime.IO{})
	if err != nil {
		return -1, err
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

func (r *RuntimeAdapter) Stats(ctx context.Context, name string) (Stats, error) {
	s, err := r.R.Stats(name)
	if err != nil {
		return Stats{}, err
	}
	return Stats{Name: name, CPUNanos: uint64(max(s.CPUNanos, 0)), Memory: uint64(max(s.MemoryUsage, 0)),
		MemoryMax: uint64(max(s.MemoryLimit, 0)), Pids: uint64(max(s.Pids, 0)), PidsMax: uint64(max(s.PidsLimit, 0)),
		OOMKills: uint64(max(s.OOMKills, 0))}, nil
}

// Update applies new memory, CPU and pids limits to the running
// container's cgroup (LimitUpdater): the container keeps running, with the
// same init. Limits the agent's spec does not carry (memory-swap, shares,
// weight) stay as recorded.
func (r *RuntimeAdapter) Update(ctx context.Context, name string, l Limits) error {
	st, err := r.R.State(name)
	if err != nil {
		if errors.Is(err, runtime.ErrNotFound) {
			return &Error{Code: CodeNotFound, Msg: err.Error()}
		}
		return err
	}
	res := st.Spec.Resources
	res.Memory, res.CPUs, res.PidsLimit = l.Memory, l.CPUs, l.Pids
	switch {
	case l.MemorySwap != nil:
		res.MemorySwap = *l.MemorySwap
	case l.Memory == 0 || res.MemorySwap > 0 && res.MemorySwap < l.Memory:
		res.MemorySwap = 0 // an old memory+swap below the new memory: the default
	}
	return r.R.Update(ctx, name, res)
}

var _ LimitUpdater = (*RuntimeAdapter)(nil)

// SpecFromRuntime turns a spec the CLI built for the runtime (`otok run`
// flags) into the agent's desired state, so `otok run -d` can hand the
// container to a running agent: image is the IMAGE argument as given; the
// network options (net, ip, mac, dns, publish) are strings the caller sets
// on the result. Image defaults already merged into rs stay explicit.
func SpecFromRuntime(rs *runtime.Spec, image string) *ContainerSpec {
	c := &ContainerSpec{Name: rs.Name, Image: image, Hostname: rs.Hostname,
		Command: append([]string(nil), rs.Process.Args...), Env: append([]string(nil), rs.Process.Env...),
		Cwd: rs.Process.Cwd, Terminal: rs.Process.Terminal, Privileged: rs.Privileged, System: rs.System,
		Memory: rs.Resources.Memory, CPUs: rs.Resources.CPUs, Pids: rs.Resources.PidsLimit, TmpfsSize: rs.Rootfs.TmpfsSize,
		Restart: RestartPolicy{Mode: RestartNo}, Autostart: true}
	if rs.Process.UID != 0 || rs.Process.GID != 0 {
		c.User = strconv.Itoa(rs.Process.UID) + ":" + strconv.Itoa(rs.Process.GID)
	}
	for _, m := range rs.Mounts {
		s := m.Source + ":" + m.Target
		if m.ReadOnly {
			s += ":ro"
		}
		c.Mounts = append(c.Mounts, s)
	}
	if rs.Net.Mode == runtime.NetHost {
		c.Net = "host"
	}
	return c
}
