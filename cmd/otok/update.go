package main

import (
	"context"
	"fmt"
	"strconv"
)

// otok update: change a running container's cgroup limits in place (the
// container keeps its processes). Flags not given keep their value; 0
// removes a limit.
//
// A container the running agent manages is updated through its command
// API (agentops.go): the agent applies the limits live and keeps them as
// the desired state of a container created through it; for one defined in
// its config file the file's limits come back at the next reload or
// restart (it says so) — edit the config and `otok agent reload`, which
// applies limit edits live too. Other containers, and all of them when no
// agent runs, are updated through the runtime on the same state directory.

func init() {
	register(&command{name: "update", usage: "[--memory SIZE] [--memory-swap SIZE] [--cpus N] [--pids-limit N] NAME…",
		summary: "change running containers' memory, CPU and pids limits live", run: runUpdate})
}

func runUpdate(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["update"])
	memory := fs.String("memory", "", "memory limit `SIZE` (e.g. 64M; 0 = none)")
	memorySwap := fs.String("memory-swap", "", "memory+swap limit `SIZE` (-1 = unlimited swap, 0 = the default: as much swap as memory)")
	cpus := fs.String("cpus", "", "CPU quota in `CPUS` (e.g. 0.5; 0 = none)")
	pids := fs.Int64("pids-limit", 0, "maximum number of processes `N` (0 = none)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(fs.Args()) == 0 {
		return usagef("want at least one container NAME")
	}
	set := func(name string) bool { return flagSet(fs, name) }
	if !set("memory") && !set("memory-swap") && !set("cpus") && !set("pids-limit") {
		return usagef("nothing to change: give --memory, --memory-swap, --cpus or --pids-limit")
	}
	var mem, swap int64
	var cpu float64
	var err error
	if set("memory") {
		if *memory != "0" {
			if mem, err = parseSize("memory", *memory); err != nil {
				return err
			}
			if mem < 0 {
				mem = 0 // -1: no limit, as 0
			}
		}
	}
	if set("memory-swap") && *memorySwap != "0" {
		if swap, err = parseSize("memory-swap", *memorySwap); err != nil {
			return err
		}
	}
	if set("cpus") {
		if cpu, err = strconv.ParseFloat(*cpus, 64); err != nil || cpu < 0 {
			return usagef("--cpus %s: not a number ≥ 0", *cpus)
		}
	}
	if set("pids-limit") && *pids < 0 {
		return usagef("--pids-limit %d: not a number ≥ 0", *pids)
	}
	ag, err := dialAgentOps(ctx, e, "update") // agent's containers: through its API (agentops.go)
	if err != nil {
		return err
	}
	defer ag.Close()
	agentRuns := ag.running()
	r := newRuntime(e)
	return eachName(e, fs.Args(), func(n string) error {
		if ok, err := ag.update(ctx, e, n, agentUpdateRequest(set, mem, swap, cpu, *pids)); ok {
			return err
		}
		st, err := r.State(n)
		if err != nil {
			return err
		}
		res := st.Spec.Resources
		if set("memory") {
			res.Memory = mem
			if !set("memory-swap") && res.MemorySwap > 0 && res.MemorySwap < mem {
				res.MemorySwap = 0 // an old memory-swap below the new memory: the default
			}
			if mem == 0 && !set("memory-swap") {
				res.MemorySwap = 0
			}
		}
		if set("memory-swap") {
			res.MemorySwap = swap
		}
		if set("cpus") {
			res.CPUs = cpu
		}
		if set("pids-limit") {
			res.PidsLimit = *pids
		}
		if err := r.Update(ctx, n, res); err != nil {
			return err
		}
		if st.Spec.Annotations["otok.agent"] == "1" {
			how := "is not running"
			if agentRuns {
				how = "does not know it (yet)"
			}
			fmt.Fprintf(e.stderr, "otok: note: container %s belongs to the agent, which %s: its cgroup has the new limits now, but the agent's desired limits are unchanged and apply again at the next restart (edit the config and run 'otok agent reload' to keep them)\n", n, how)
		}
		fmt.Fprintln(e.stdout, n)
		return nil
	})
}
