package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/otok/otok/flash"
	"github.com/otok/otok/runtime"
)

func init() {
	register(&command{name: "start", usage: "NAME…", summary: "start created containers", run: runStart})
	register(&command{name: "stop", usage: "[-t SECS] NAME…", summary: "stop containers (stop signal, then SIGKILL after the timeout)", run: runStop})
	register(&command{name: "kill", usage: "[-s SIG] NAME…", summary: "send a signal to containers", run: runKill})
	register(&command{name: "rm", usage: "[-f] NAME…", summary: "remove containers (-f: kill running ones first)", run: runRm})
	register(&command{name: "ps", usage: "[-a] [--json]", summary: "list containers", run: runPs})
	register(&command{name: "inspect", usage: "NAME…", summary: "print containers' state and spec as JSON", run: runInspect})
	register(&command{name: "stats", usage: "[--json] [NAME…]", summary: "CPU, memory and process counts of running containers", run: runStats})
	register(&command{name: "gc", usage: "", summary: "remove leftovers of killed otok processes (containers, image mounts)", run: runGC})
}

// eachName runs fn for every NAME argument and joins the errors.
func eachName(e *env, names []string, fn func(string) error) error {
	if len(names) == 0 {
		return usagef("want at least one container NAME")
	}
	failed := false
	for _, n := range names {
		if err := fn(n); err != nil {
			fmt.Fprintf(e.stderr, "otok: %v\n", err)
			failed = true
		}
	}
	if failed {
		return &exitError{code: 1}
	}
	return nil
}

func runStart(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["start"])
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	r := newRuntime(e)
	return eachName(e, fs.Args(), func(n string) error {
		if err := r.Start(ctx, n); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, n)
		return nil
	})
}

func runStop(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["stop"])
	secs := fs.Int("t", 10, "`SECS` to wait after the stop signal before SIGKILL")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *secs < 0 {
		return usagef("-t %d: must not be negative", *secs)
	}
	r := newRuntime(e)
	return eachName(e, fs.Args(), func(n string) error {
		if err := r.Stop(ctx, n, time.Duration(*secs)*time.Second); err != nil {
			return err
		}
		waitRecorded(ctx, r, n)
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
	r := newRuntime(e)
	return eachName(e, fs.Args(), func(n string) error { return r.Kill(n, sig) })
}

func runRm(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["rm"])
	force := fs.Bool("f", false, "kill running containers first")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	r := newRuntime(e)
	return eachName(e, fs.Args(), func(n string) error {
		if err := removeContainer(ctx, e, r, n, *force); err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, n)
		return nil
	})
}

func runPs(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["ps"])
	all := fs.Bool("a", false, "also list stopped and created containers")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	r := newRuntime(e)
	sweepContainers(ctx, e, r)
	list, err := r.List()
	if err != nil {
		return err
	}
	var shown []*runtime.State
	for _, s := range list {
		if *all || s.Status == runtime.StatusRunning {
			shown = append(shown, s)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if shown == nil {
			shown = []*runtime.State{}
		}
		return enc.Encode(shown)
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tPID\tIMAGE\tCOMMAND\tCREATED")
	for _, s := range shown {
		status := s.Status
		if s.Status == runtime.StatusStopped {
			status = fmt.Sprintf("exited (%d)", s.ExitCode)
			if s.OOMKilled {
				status = "OOM killed"
			}
		}
		pid := "-"
		if s.Alive() {
			pid = fmt.Sprint(s.Pid)
		}
		cmd := strings.Join(s.Spec.Process.Args, " ")
		if len(cmd) > 30 {
			cmd = cmd[:27] + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Spec.Name, status, pid, s.Spec.Rootfs.Image, cmd, ago(s.Created))
	}
	return tw.Flush()
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
	r := newRuntime(e)
	var out []*runtime.State
	for _, n := range fs.Args() {
		s, err := r.State(n)
		if err != nil {
			return err
		}
		out = append(out, s)
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	if len(out) == 1 {
		return enc.Encode(out[0])
	}
	return enc.Encode(out)
}

func runStats(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["stats"])
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	r := newRuntime(e)
	names := fs.Args()
	if len(names) == 0 {
		list, _ := r.List()
		for _, s := range list {
			if s.Status == runtime.StatusRunning {
				names = append(names, s.Spec.Name)
			}
		}
	}
	// Two samples 200 ms apart give the CPU percentage.
	first := map[string]int64{}
	for _, n := range names {
		st, err := r.Stats(n)
		if err != nil {
			return err
		}
		first[n] = st.CPUNanos
	}
	const interval = 200 * time.Millisecond
	time.Sleep(interval)
	type row struct {
		Name string `json:"name"`
		runtime.CgroupStats
	}
	var rows []row
	for _, n := range names {
		st, err := r.Stats(n)
		if err != nil {
			return err
		}
		st.CPUPercent = float64(st.CPUNanos-first[n]) / float64(interval.Nanoseconds()) * 100
		rows = append(rows, row{n, *st})
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCPU %\tMEM USAGE / LIMIT\tPIDS\tOOM KILLS")
	for _, x := range rows {
		limit := "-"
		if x.MemoryLimit > 0 {
			limit = humanBytes(x.MemoryLimit)
		}
		pl := ""
		if x.PidsLimit > 0 {
			pl = fmt.Sprintf(" / %d", x.PidsLimit)
		}
		fmt.Fprintf(tw, "%s\t%.1f%%\t%s / %s\t%d%s\t%d\n", x.Name, x.CPUPercent, humanBytes(x.MemoryUsage), limit, x.Pids, pl, x.OOMKills)
	}
	return tw.Flush()
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
