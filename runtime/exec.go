package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// execConfig travels from `otok exec` to the exec stage.
type execConfig struct {
	Name         string  `json:"name"`
	Process      Process `json:"process"`
	Caps         uint64  `json:"caps"`
	LastCap      int     `json:"lastCap"`
	Seccomp      bool    `json:"seccomp"`
	SeccompAdmin bool    `json:"seccompAdmin"`
	NoNewPrivs   bool    `json:"noNewPrivs"`
	UserNS       *UserNS `json:"userns,omitempty"`
	Hostname     string  `json:"hostname"`
	System       bool    `json:"system,omitempty"`
	// CgroupNS: fd 4 is the container's cgroup namespace, for the exec
	// stage to join (see Exec).
	CgroupNS bool `json:"cgroupNS,omitempty"`
}

// Exec starts p in a running container: it joins the container's cgroup
// and namespaces (from a dedicated locked thread), then re-execs otok as
// the exec stage, which drops to the container's privileges and execs p.
// For a user-namespace container the thread forks first (forkIntoUserNS):
// only a single-threaded process can join a user namespace. The caller
// waits on the returned command (Wait only: it is already started).
func (r *Runtime) Exec(ctx context.Context, name string, p Process, io IO) (*exec.Cmd, error) {
	s, err := r.State(name)
	if err != nil {
		return nil, err
	}
	if s.Status != StatusRunning || !s.alive() {
		return nil, fmt.Errorf("container %s: not running", name)
	}
	if len(p.Args) == 0 {
		return nil, fmt.Errorf("container %s: exec: no command", name)
	}
	caps, err := s.Spec.capabilities()
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	cfg := execConfig{
		Name: name, Process: p, Caps: caps, LastCap: lastCap(),
		Seccomp:      !s.Spec.Privileged && !s.Spec.NoSeccomp,
		SeccompAdmin: caps&(1<<unix.CAP_SYS_ADMIN) != 0,
		NoNewPrivs:   !s.Spec.Privileged,
		Hostname:     s.Spec.Hostname, System: s.Spec.System,
	}
	if cfg.Hostname == "" {
		cfg.Hostname = name
	}
	cg, err := r.cgroupFor(name)
	if err != nil {
		return nil, err
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer cfgR.Close()
	defer cfgW.Close()
	cmd := &exec.Cmd{
		Path: "/proc/self/exe", Args: r.ExecArgs, Env: initEnv(stageExec),
		Stdin: io.Stdin, Stdout: io.Stdout, Stderr: io.Stderr,
		ExtraFiles: []*os.File{cfgR},
		SysProcAttr: &syscall.SysProcAttr{
			Setsid: p.Terminal, Setctty: p.Terminal, Ctty: 0,
		},
	}
	// Join from a thread that is thrown away afterwards: its namespaces
	// and cgroup are no longer the host's.
	errc := make(chan error, 1)
	var proc *os.Process
	go func() {
		lockThread()
		fd, err := cg.joinThread()
		if err != nil {
			errc <- fmt.Errorf("container %s: %w", name, err)
			return
		}
		if fd >= 0 {
			defer unix.Close(fd)
			cmd.SysProcAttr.UseCgroupFD = true
			cmd.SysProcAttr.CgroupFD = fd
		}
		// On cgroup v2 the clone goes into the cgroup with
		// CLONE_INTO_CGROUP, which (nsdelegate, as on OpenWrt) refuses
		// with ENOENT a source cgroup outside the caller's cgroup
		// namespace: this thread stays in the host's, and the exec stage
		// joins the container's after the clone.
		if fd >= 0 {
			cfd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/cgroup", s.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				errc <- fmt.Errorf("container %s: %w", name, err)
				return
			}
			cgns := os.NewFile(uintptr(cfd), "cgroupns")
			defer cgns.Close()
			cmd.ExtraFiles = append(cmd.ExtraFiles, cgns)
			cfg.CgroupNS = true
		}
		// The user namespace is joined by a forked child (below); open
		// it while /proc is still the host's.
		ufd := -1
		if s.Spec.UserNS != nil {
			if ufd, err = unix.Open(fmt.Sprintf("/proc/%d/ns/user", s.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
				errc <- err
				return
			}
			defer unix.Close(ufd)
		}
		if err := joinNamespaces(s.Pid, cfg.CgroupNS); err != nil {
			errc <- fmt.Errorf("container %s: %w", name, err)
			return
		}
		if s.Spec.UserNS == nil {
			err := cmd.Start()
			if err == nil {
				proc = cmd.Process
			}
			errc <- err
			return
		}
		proc, err = forkIntoUserNS(ufd, fd, r.ExecArgs, append([]*os.File{io.Stdin, io.Stdout, io.Stderr}, cmd.ExtraFiles...), p.Terminal)
		cmd.Process = proc
		errc <- err
	}()
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("container %s: exec: %w", name, errIfDynamic(err))
	}
	cfgR.Close()
	if err := json.NewEncoder(cfgW).Encode(&cfg); err != nil {
		proc.Kill()
		proc.Wait()
		return nil, fmt.Errorf("container %s: exec: send config: %w", name, err)
	}
	cfgW.Close()
	return cmd, nil
}

// fdCgroupNS is the exec stage's fd of the container's cgroup namespace
// (execConfig.CgroupNS).
const fdCgroupNS = 4

// ExecMain is the exec stage: already inside the container's namespaces
// and cgroup, it drops privileges and execs the process. It returns only
// on failure; the process then exits 127 (command not found) or 126.
func ExecMain() (int, error) {
	lockThread()
	var cfg execConfig
	f := os.NewFile(fdSpec, "config")
	if err := json.NewDecoder(f).Decode(&cfg); err != nil {
		return 126, fmt.Errorf("exec: read config: %w", err)
	}
	f.Close()
	if cfg.CgroupNS {
		if err := unix.Setns(fdCgroupNS, unix.CLONE_NEWCGROUP); err != nil {
			return 126, fmt.Errorf("container %s: join cgroup namespace: %w", cfg.Name, err)
		}
		unix.Close(fdCgroupNS)
	}
	// Other processes in the container must not reach this (host) binary
	// through /proc/<pid>/exe before the exec.
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	spec := &Spec{System: cfg.System}
	env := processEnv(spec, &cfg.Process, cfg.Hostname)
	path, err := lookPath(cfg.Process.Args[0], env)
	if err != nil {
		return 127, fmt.Errorf("container %s: %w", cfg.Name, err)
	}
	if err := enterCwd(&cfg.Process); err != nil {
		return 126, fmt.Errorf("container %s: %w", cfg.Name, err)
	}
	priv := privileges{caps: cfg.Caps, lastCap: cfg.LastCap, seccomp: cfg.Seccomp,
		seccompAdmin: cfg.SeccompAdmin, noNewPrivs: cfg.NoNewPrivs, userns: cfg.UserNS}
	if err := priv.apply(&cfg.Process); err != nil {
		return 126, fmt.Errorf("container %s: %w", cfg.Name, err)
	}
	err = unix.Exec(path, cfg.Process.Args, env)
	return 126, fmt.Errorf("container %s: exec %s: %w", cfg.Name, strings.Join(cfg.Process.Args, " "), err)
}
