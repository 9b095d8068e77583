package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/otok/otok/agent"

	"github.com/otok/otok/flash"
	"github.com/otok/otok/runtime"
)

func init() {
	register(&command{name: "start", usage: "NAME…", summary: "start created containers, or stopped ones again (fresh writable layer)", run: runStart})
	register(&command{name: "stop", usage: "[-t SECS] NAME…", summary: "stop containers (stop signal, then SIGKILL after the timeout)", run: runStop})
	register(&command{name: "restart", usage: "[-t SECS] NAME…", summary: "stop and start containers (needs the agent)", run: runRestart})
	register(&command{name: "kill", usage: "[-s SIG] NAME…", summary: "send a signal to containers", run: runKill})
	register(&command{name: "rm", usage: "[-f] NAME…", summary: "remove containers (-f: kill running ones first)", run: runRm})
	register(&command{name: "ps", usage: "[-a] [--json]", summary: "list containers", run: runPs})
	register(&command{name: "inspect", usage: "NAME…", summary: "print containers' state and spec as JSON", run: runInspect})
	register(&command{name: "stats", usage: "[--json] [NAME…]", summary: "CPU, memory and process counts of running containers", run: runStats})
	register(&command{name: "gc", usage: "", summary: "remove leftovers of killed otok processes (containers, image mounts)", run: runGC})
}

// eachName runs fn for every NAME argument and joins the errors; the
// exit status is the agent's code for an API error, else 1.
func eachName(e *env, names []string, fn func(string) error) error {
	if len(names) == 0 {
		return usagef("want at least one container NAME")
	}
	code := 0
	for _, n := range names {
		if err := fn(n); err != nil {
			fmt.Fprintf(e.stderr, "otok: %v\n", err)
			code = exitCodeOf(err)
		}
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// routed runs viaAgent when the agent runs (c != nil). A name the agent
// does not know is one of the CLI's own containers (foreground run, or a
// monitor's) if the runtime has it: direct handles it; otherwise the
// agent's not-found stands.
func routed(c *agent.Client, r *runtime.Runtime, name string, viaAgent, direct func() error) error {
	if c != nil {
		err := viaAgent()
		if !isAgentErr(err, agent.CodeNotFound) {
			return err
		}
		if _, serr := r.State(name); serr != nil {
			return err
		}
	}
	return direct()
}

// noteAgentOwned warns that a container the runtime records as the
// agent's is being changed while no agent runs: the next agent applies its
// desired state (and restart policy) again.
func noteAgentOwned(e *env, r *runtime.Runtime, name string) {
	if st, err := r.State(name); err == nil && st.Spec.Annotations["otok.agent"] == "1" {
		fmt.Fprintf(e.stderr, "otok: note: container %s belongs to the agent, which is not running; when it starts it applies the container's desired state and restart policy again\n", name)
	}
}

// agentClient dials the agent for a container command: nil when none
// runs; an error (e.g. permission) ends the command.
func agentClient(ctx context.Context, e *env, cmd string) (*agent.Client, error) {
	c, err := dialAgent(ctx, e)
	if err != nil {
		return nil, agentError(e, cmd, err)
	}
	return c, nil
}

func runStart(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["start"])
	usage := fs.Usage
	fs.Usage = func() { usage(); fmt.Fprint(e.stdout, startHelp) }
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := agentClient(ctx, e, "start")
	if err != nil {
		return err
	}
	if c != nil {
		defer c.Close()
	}
	r := newRuntime(e)
	return eachName(e, fs.Args(), func(n string) error {
		err := routed(c, r, n,
			func() error { _, err := c.Start(ctx, n); return err },
			func() error { return startContainer(ctx, e, r, n) })
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, n)
		return nil
	})
}

// flagSet reports whether the flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

func runStop(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["stop"])
	secs := fs.Int("t", 10, "`SECS` to wait after the stop signal before SIGKILL (agent: default the container's stop timeout)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *secs < 0 {
		return usagef("-t %d: must not be negative", *secs)
	}
	c, err := agentClient(ctx, e, "stop")
	if err != nil {
		return err
	}
	if c != nil {
		defer c.Close()
	}
	var agentTimeout time.Duration // 0: the agent's stop timeout for the container
	if flagSet(fs, "t") {
		agentTimeout = max(time.Duration(*secs)*time.Second, time.Millisecond)
	}
	r := newRuntime(e)
	return eachName(e, fs.Args(), func(n string) error {
		err := routed(c, r, n,
			func() error { _, err := c.Stop(ctx, n, agentTimeout); return err },
			func() error {
				if c == nil {
					noteAgentOwned(e, r, n)
				}
				if err := r.Stop(ctx, n, time.Duration(*secs)*time.Second); err != nil {
					return err
				}
				waitRecorded(ctx, r, n)
				return nil
			})
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, n)
		return nil
	})
}

func runRestart(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["restart"])
	secs := fs.Int("t", 0, "`SECS` to wait after the stop signal before SIGKILL (default: the container's stop timeout)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *secs < 0 {
		return usagef("-t %d: must not be negative", *secs)
	}
	c, err := agentClient(ctx, e, "restart")
	if err != nil {
		return err
	}
	if c != nil {
		defer c.Close()
	}
	r := newRuntime(e)
	return eachName(e, fs.Args(), func(n string) error {
		err := routed(c, r, n,
			func() error { _, err := c.Restart(ctx, n, time.Duration(*secs)*time.Second); return err },
			func() error { return fmt.Errorf("container %s: %w", n, errNoAgentRestart) })
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, n)
		return nil
	})
}

// waitRecorded gives the container's parent a moment to record the exit,
// so a following `ps` or `inspect` shows it.
func waitRecorded(ctx context.Context, r *runtime.Runtime, name string) {
	for i := 0; i < 200 && ctx.Err() == nil; i++ {
		s, err := r.State(name)
		if err != nil || s.ExitReason != "" && !strings.HasPrefix(s.ExitReason, "init gone") {
			return
		}
		if s.ParentPid > 0 && syscall.Kill(s.ParentPid, 0) != nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func runKill(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["kill"])
	sigName := fs.String("s", "KILL", "`SIGNAL` to send (name or number)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	sig, err := parseSignal(*sigName)
	if err != nil {
		return usagef("-s: %v", err)
	}
	ag, err := dialAgentOps(ctx, e, "kill") // agent's containers: through its API (agentops.go)
	if err != nil {
		return err
	}
	defer ag.Close()
	r := newRuntime(e)
	return eachName(e, fs.Args(), func(n string) error {
		if ok, err := ag.kill(ctx, n, *sigName); ok {
			return err
		}
		return r.Kill(n, sig)
	})
}

func runRm(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["rm"])
	force := fs.Bool("f", false, "kill running containers first")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := agentClient(ctx, e, "rm")
	if err != nil {
		return err
	}
	if c != nil {
		defer c.Close()
	}
	r := newRuntime(e)
	return eachName(e, fs.Args(), func(n string) error {
		err := routed(c, r, n,
			func() error { return c.Remove(ctx, n, *force) },
			func() error {
				if c == nil {
					noteAgentOwned(e, r, n)
				}
				_, serr := r.State(n)
				err := removeContainer(ctx, e, r, n, *force)
				if *force && serr == nil && errors.Is(err, runtime.ErrNotFound) {
					err = nil // a run --rm container: its monitor removed it as it died
				}
				return err
			})
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, n)
		return nil
	})
}

// containers returns the view of every container (all: also those not
// running), by name: the agent's, then the runtime's that the agent does
// not know (or all the runtime's when no agent runs).
func containers(ctx context.Context, e *env, c *agent.Client, all bool) ([]*ctrInfo, error) {
	r := newRuntime(e)
	sweepContainers(ctx, e, r)
	rl, err := r.List()
	if err != nil {
		return nil, err
	}
	byName := map[string]*runtime.State{}
	for _, st := range rl {
		byName[st.Spec.Name] = st
	}
	var list []*ctrInfo
	known := map[string]bool{}
	if c != nil {
		sts, err := c.List(ctx, true)
		if err != nil {
			return nil, err
		}
		for _, s := range sts {
			known[s.Name] = true
			full, err := c.Inspect(ctx, s.Name)
			if isAgentErr(err, agent.CodeNotFound) {
				continue // removed meanwhile
			}
			if err != nil {
				return nil, err
			}
			if ci := infoFromAgent(full); all || ci.running() {
				ci.addRuntime(byName[s.Name])
				list = append(list, ci)
			}
		}
	}
	for _, st := range rl {
		if known[st.Spec.Name] {
			continue
		}
		if ci := infoFromRuntime(e, st); all || ci.running() {
			list = append(list, ci)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return list, nil
}

func runPs(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["ps"])
	all := fs.Bool("a", false, "also list stopped and created containers")
	asJSON := fs.Bool("json", false, "print JSON (each container as inspect prints it)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := agentClient(ctx, e, "ps")
	if err != nil {
		return err
	}
	if c != nil {
		defer c.Close()
	}
	list, err := containers(ctx, e, c, *all)
	if err != nil {
		return agentError(e, "ps", err)
	}
	return printPs(e.stdout, list, *asJSON)
}

func ago(t time.Time) string {
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func runInspect(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["inspect"])
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("want at least one container NAME")
	}
	c, err := agentClient(ctx, e, "inspect")
	if err != nil {
		return err
	}
	if c != nil {
		defer c.Close()
	}
	r := newRuntime(e)
	var out []*ctrInfo
	for _, n := range fs.Args() {
		var ci *ctrInfo
		err := routed(c, r, n,
			func() error {
				s, err := c.Inspect(ctx, n)
				if err == nil {
					ci = infoFromAgent(s)
					if st, err := r.State(n); err == nil {
						ci.addRuntime(st)
					}
				}
				return err
			},
			func() error {
				st, err := r.State(n)
				if err == nil {
					ci = infoFromRuntime(e, st)
				}
				return err
			})
		if err != nil {
			return agentError(e, "inspect", err)
		}
		out = append(out, ci)
	}
	return printInspect(e.stdout, out)
}

func runStats(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["stats"])
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := agentClient(ctx, e, "stats")
	if err != nil {
		return err
	}
	if c != nil {
		defer c.Close()
	}
	r := newRuntime(e)
	// Which names the agent answers for, which the runtime.
	known := map[string]bool{}
	if c != nil {
		sts, err := c.List(ctx, true)
		if err != nil {
			return agentError(e, "stats", err)
		}
		for _, s := range sts {
			known[s.Name] = true
		}
	}
	var viaAgent, direct []string
	allAgent := c != nil && fs.NArg() == 0
	if fs.NArg() == 0 {
		list, _ := r.List()
		for _, s := range list {
			if s.Status == runtime.StatusRunning && !known[s.Spec.Name] {
				direct = append(direct, s.Spec.Name)
			}
		}
	}
	for _, n := range fs.Args() {
		if known[n] {
			viaAgent = append(viaAgent, n)
		} else if _, err := r.State(n); err == nil || c == nil {
			direct = append(direct, n)
		} else {
			return agentError(e, "stats", agent.Errorf(agent.CodeNotFound, "container %s: not found", n))
		}
	}
	sample := func() ([]agent.Stats, error) {
		var out []agent.Stats
		if allAgent || len(viaAgent) > 0 {
			s, err := c.Stats(ctx, viaAgent...)
			if err != nil {
				return nil, err
			}
			out = append(out, s...)
		}
		for _, n := range direct {
			st, err := r.State(n)
			if err != nil {
				return nil, err
			}
			cs, err := r.Stats(n)
			if err != nil {
				return nil, err
			}
			s := agent.Stats{Name: n, CPUNanos: uint64(max(cs.CPUNanos, 0)), Memory: uint64(max(cs.MemoryUsage, 0)),
				MemoryMax: uint64(max(cs.MemoryLimit, 0)), Pids: uint64(max(cs.Pids, 0)), PidsMax: uint64(max(cs.PidsLimit, 0)),
				OOMKills: uint64(max(cs.OOMKills, 0))}
			s.NetRx, s.NetTx = netDevBytes(st.Pid)
			out = append(out, s)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return out, nil
	}
	// Two samples 200 ms apart give the CPU percentage.
	first, err := sample()
	if err != nil {
		return agentError(e, "stats", err)
	}
	const interval = 200 * time.Millisecond
	time.Sleep(interval)
	second, err := sample()
	if err != nil {
		return agentError(e, "stats", err)
	}
	return printStats(e.stdout, statsRows(first, second, interval), *asJSON)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

func runGC(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["gc"])
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	r := newRuntime(e)
	names, err := r.Sweep(ctx)
	for _, n := range names {
		st, serr := r.State(n)
		if serr != nil {
			fmt.Fprintf(e.stdout, "container %s: removed a half-created container\n", n)
			continue
		}
		if st.Spec.Annotations[annotationAutoRemove] == "true" {
			removeContainer(ctx, e, r, n, true)
			fmt.Fprintf(e.stdout, "container %s: removed (run --rm, its otok process was killed)\n", n)
			continue
		}
		fmt.Fprintf(e.stdout, "container %s: recorded as stopped (its otok parent was killed)\n", n)
		releaseImage(e, &st.Spec)
	}
	// Image mounts held by containers that are gone or stopped.
	serr := flash.SweepSquashfs(stateDir(e), func(user string) bool {
		s, err := r.State(user)
		if errors.Is(err, runtime.ErrNotFound) {
			// Being created right now (directory, no state yet) counts
			// as alive; no directory at all does not.
			_, derr := os.Stat(r.Dir(user))
			return derr == nil
		}
		return err == nil && s.Alive()
	})
	// Links, addresses, VLANs, NAT tables and leases of containers that are
	// gone (netcfg records under <state>/net).
	nerr := netPrune(ctx, e)
	return errors.Join(err, serr, nerr)
}
