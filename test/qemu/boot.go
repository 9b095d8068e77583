package qemu

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MarkerPrefix starts every line the guest side prints for the host.
// Kernel messages can share the console, so lines are matched anywhere.
const MarkerPrefix = "@@OTOK-QEMU "

// Marker is one parsed marker line: "@@OTOK-QEMU <kind> <rest>".
type Marker struct {
	Kind string // init, exit, step, bench, …
	Args string
}

// ParseMarker finds a marker in a console line.
func ParseMarker(line string) (Marker, bool) {
	i := strings.Index(line, MarkerPrefix)
	if i < 0 {
		return Marker{}, false
	}
	rest := strings.TrimRight(line[i+len(MarkerPrefix):], "\r\n ")
	kind, args, _ := strings.Cut(rest, " ")
	if kind == "" {
		return Marker{}, false
	}
	return Marker{Kind: kind, Args: args}, true
}

// Job is what the guest's /init runs: argv with env and cwd, plus files
// added to the guest (guest path → host path, or "\x00"+contents).
type Job struct {
	Argv  []string
	Env   []string
	Dir   string
	Files map[string]string
	Trees map[string]string // guest dir → host dir copied recursively
}

// RunOptions control one boot.
type RunOptions struct {
	Timeout time.Duration // whole boot, default 10 min
	Memory  int           // MiB, default 256
	Console io.Writer     // every console line (nil: discard)
	// OnMarker sees each marker as it arrives.
	OnMarker func(Marker)
	Work     string // scratch dir for the job initramfs (default os.TempDir)
}

// Result is what came back.
type Result struct {
	Exit    int           // job exit code (-1 if no exit marker)
	InitAt  time.Duration // host wall time from qemu start to the init marker
	GuestUp time.Duration // guest uptime when /init started
	// GuestReady is the guest uptime when /init had mounted, switched
	// root, loaded modules and configured the network.
	GuestReady time.Duration
	Wall       time.Duration
	Markers    []Marker
	Tail       []string // last console lines
	TimedOut   bool
}

// TailString is the console tail for failure messages.
func (r *Result) TailString() string { return strings.Join(r.Tail, "\n") }

const tailLines = 40

// Run boots the guest with the job and waits for its exit marker, the
// timeout or qemu's exit. A missing exit marker is an error that carries
// the console tail.
func (g *Guest) Run(ctx context.Context, job Job, o RunOptions) (*Result, error) {
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.Memory == 0 {
		o.Memory = 256
	}
	if o.Console == nil {
		o.Console = io.Discard
	}
	tmp, err := os.MkdirTemp(o.Work, "otok-qemu-job-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	initrd := filepath.Join(tmp, "initrd")
	if err := g.writeInitrd(initrd, job); err != nil {
		return nil, err
	}
	a := g.Arch
	appendArgs := fmt.Sprintf("console=%s quiet loglevel=1 panic=-1 cgroup_no_v1=all", a.Console)
	args := append([]string{"-nodefaults"}, a.Machine...)
	args = append(args, "-m", strconv.Itoa(o.Memory), "-kernel", g.Kernel, "-initrd", initrd,
		"-append", appendArgs)
	args = append(args, netArgs(a)...)
	args = append(args, "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot")
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	cmd := exec.Command(a.QEMU, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, &InfraError{fmt.Errorf("%s: start %s: %w", a.Name, a.QEMU, err)}
	}
	res := &Result{Exit: -1}
	var mu sync.Mutex
	exited := make(chan struct{})
	sawExit := make(chan struct{}, 1)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			mu.Lock()
			res.Tail = append(res.Tail, line)
			if len(res.Tail) > tailLines {
				res.Tail = res.Tail[len(res.Tail)-tailLines:]
			}
			mu.Unlock()
			m, ok := ParseMarker(line)
			if !ok {
				fmt.Fprintln(o.Console, line)
				continue
			}
			mu.Lock()
			res.Markers = append(res.Markers, m)
			switch m.Kind {
			case "init":
				res.InitAt = time.Since(start)
				f := strings.Fields(m.Args)
				if len(f) > 0 {
					if ms, err := strconv.Atoi(f[0]); err == nil {
						res.GuestUp = time.Duration(ms) * time.Millisecond
					}
				}
				if len(f) > 1 {
					if ms, err := strconv.Atoi(f[1]); err == nil {
						res.GuestReady = time.Duration(ms) * time.Millisecond
					}
				}
			case "exit":
				if c, err := strconv.Atoi(m.Args); err == nil {
					res.Exit = c
				}
				select {
				case sawExit <- struct{}{}:
				default:
				}
			}
			mu.Unlock()
			if o.OnMarker != nil {
				o.OnMarker(m)
			}
		}
	}()
	kill := func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	select {
	case <-exited:
	case <-sawExit:
		// The guest powers off by itself; don't wait long for it.
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			kill()
		}
	case <-ctx.Done():
		res.TimedOut = true
		kill()
	}
	<-exited
	_ = cmd.Wait()
	res.Wall = time.Since(start)
	mu.Lock()
	defer mu.Unlock()
	switch {
	case res.TimedOut:
		return res, fmt.Errorf("%s: guest timed out after %v (killed); console tail:\n%s", a.Name, o.Timeout, res.TailString())
	case res.Exit < 0:
		return res, fmt.Errorf("%s: guest stopped without an exit marker; console tail:\n%s", a.Name, res.TailString())
	}
	return res, nil
}

// writeInitrd writes the base initramfs followed by the job's archive.
func (g *Guest) writeInitrd(path string, job Job) error {
	var ar Archive
	var argv, env []byte
	for _, s := range job.Argv {
		argv = append(append(argv, s...), 0)
	}
	for _, s := range job.Env {
		env = append(append(env, s...), 0)
	}
	ar.File("/job/argv", 0o644, argv)
	ar.File("/job/env", 0o644, env)
	ar.File("/job/cwd", 0o644, []byte(job.Dir))
	for dst, src := range job.Files {
		if strings.HasPrefix(src, "\x00") {
			ar.File(dst, 0o755, []byte(src[1:]))
			continue
		}
		if err := ar.Copy(dst, src, 0); err != nil {
			return err
		}
	}
	for dst, src := range job.Trees {
		if err := ar.CopyTree(dst, src); err != nil {
			return err
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	base, err := os.Open(g.Base)
	if err != nil {
		f.Close()
		return err
	}
	_, err = io.Copy(f, base)
	base.Close()
	if err == nil {
		err = ar.WriteGzip(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// netArgs is the guest's NIC on qemu's user network, with romfile= (no
// option ROM): the kernel boots directly, and the ROM files are in a package
// (ipxe-qemu) CI need not install.
func netArgs(a *Arch) []string {
	return []string{"-netdev", "user,id=n0", "-device", a.NIC + ",netdev=n0,romfile="}
}
