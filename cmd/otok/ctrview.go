package main

// One view of a container, whoever manages it. `otok ps`, `inspect` and
// `stats` print what the agent answers when it runs, and what the runtime
// records when it does not; both are first turned into the types here, and
// one printer per output (printPs, printInspect, printStats) writes them,
// so the table columns and the JSON keys are the same either way.

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/otok/otok/agent"
	"github.com/otok/otok/netcfg"
	"github.com/otok/otok/runtime"
)

// ctrInfo is a container as ps --json and inspect print it. The keys of
// the agent's ContainerStatus, plus the runtime's status/exitCode/oomKilled
// that scripts already read, plus the limits.
type ctrInfo struct {
	Name string `json:"name"`
	// State in the agent's words: created, starting, running, stopping,
	// stopped, exited, restarting, waiting, error.
	State string `json:"state"`
	// Status in the runtime's words (created, running, stopped), kept for
	// scripts written against earlier versions.
	Status      string          `json:"status"`
	Health      string          `json:"health,omitempty"`
	Pid         int             `json:"pid"`
	Image       string          `json:"image"`
	Digest      string          `json:"digest,omitempty"`
	Created     time.Time       `json:"created,omitzero"`
	Started     time.Time       `json:"started,omitzero"`
	Finished    time.Time       `json:"finished,omitzero"`
	ExitCode    int             `json:"exitCode"`
	OOMKilled   bool            `json:"oomKilled,omitempty"`
	Exit        *agent.ExitInfo `json:"exit,omitempty"`
	Supervised  bool            `json:"supervised"` // by the agent (restart policy, health, logs)
	Source      string          `json:"source"`     // uci, api (agent) or cli (otok run -d / create without the agent)
	Restart     string          `json:"restart"`    // policy; "no" for cli containers
	Restarts    int             `json:"restarts"`
	NextRestart time.Time       `json:"nextRestart,omitzero"`
	Error       string          `json:"error,omitempty"`
	// Runtime details, present while the runtime records the container
	// (agent or not): why the init ended, and its parent (the agent, a
	// monitor, or a foreground otok run).
	ExitReason string               `json:"exitReason,omitempty"`
	ParentPid  int                  `json:"parentPid,omitempty"`
	Network    *agent.NetInfo       `json:"network,omitempty"`
	Limits     ctrLimits            `json:"limits"`
	Spec       *agent.ContainerSpec `json:"spec"`
}

type ctrLimits struct {
	Memory int64   `json:"memory,omitempty"` // bytes
	CPUs   float64 `json:"cpus,omitempty"`
	Pids   int64   `json:"pids,omitempty"`
}

// running reports whether ps without -a shows c.
func (c *ctrInfo) running() bool {
	switch c.State {
	case agent.StateRunning, agent.StateStarting, agent.StateStopping, agent.StateRestarting:
		return true
	}
	return false
}

// infoFromAgent is the view of an agent's container (s from Inspect).
func infoFromAgent(s *agent.ContainerStatus) *ctrInfo {
	c := &ctrInfo{Name: s.Name, State: s.State, Health: s.Health, Pid: s.Pid, Image: s.Image, Digest: s.Digest,
		Created: s.Created, Started: s.Started, Finished: s.Finished, Exit: s.Exit, Supervised: true,
		Source: s.Source, Restart: agent.RestartNo, Restarts: s.Restarts, NextRestart: s.NextRestart,
		Error: s.Error, Network: s.Network, Spec: s.Spec}
	switch s.State {
	case agent.StateRunning, agent.StateStopping:
		c.Status = runtime.StatusRunning
	case agent.StateCreated, agent.StateStarting, agent.StateWaiting:
		c.Status = runtime.StatusCreated
	default:
		c.Status = runtime.StatusStopped
	}
	if s.Exit != nil {
		c.ExitCode, c.OOMKilled = s.Exit.Code, s.Exit.OOM
	}
	if s.Spec == nil {
		c.Spec = &agent.ContainerSpec{Name: s.Name, Image: s.Image}
	} else {
		c.Restart = s.Spec.Restart.String()
		c.Limits = ctrLimits{Memory: s.Spec.Memory, CPUs: s.Spec.CPUs, Pids: s.Spec.Pids}
	}
	return c
}

// addRuntime adds what only the runtime's record says.
func (c *ctrInfo) addRuntime(st *runtime.State) {
	if st != nil {
		c.ExitReason, c.ParentPid = st.ExitReason, st.ParentPid
	}
}

// infoFromRuntime is the view of a container the runtime records
// (created by `otok run`/`create` without the agent, or left by one).
func infoFromRuntime(e *env, st *runtime.State) *ctrInfo {
	sp := &st.Spec
	c := &ctrInfo{Name: sp.Name, Status: st.Status, Image: sp.Rootfs.Image, Digest: sp.Rootfs.Digest,
		Created: st.Created, Started: st.Started, Finished: st.Finished, ExitCode: st.ExitCode, OOMKilled: st.OOMKilled,
		Source: "cli", Restart: agent.RestartNo,
		Limits: ctrLimits{Memory: sp.Resources.Memory, CPUs: sp.Resources.CPUs, Pids: sp.Resources.PidsLimit}}
	c.addRuntime(st)
	if sp.Annotations["otok.agent"] == "1" {
		c.Source = "agent" // an agent's container, the agent not running
	}
	switch st.Status {
	case runtime.StatusCreated, runtime.StatusRunning:
		c.State = st.Status
		if st.Alive() {
			c.Pid = st.Pid
		}
	default:
		c.State = agent.StateExited
		c.Exit = &agent.ExitInfo{Code: st.ExitCode, OOM: st.OOMKilled}
		if sig, ok := strings.CutPrefix(st.ExitReason, "killed by "); ok {
			c.Exit.Signal = sig
		}
	}
	c.Spec = agent.SpecFromRuntime(sp, sp.Rootfs.Image)
	c.Spec.Autostart = false
	c.Spec.Source = c.Source
	if rec, err := netcfg.LoadRecord(netStateDir(e), sp.Name); err == nil {
		n := &agent.NetInfo{Mode: string(rec.Spec.Mode), MAC: rec.MAC, Link: rec.Lower}
		for _, a := range rec.Addrs {
			n.Addrs = append(n.Addrs, a.String())
		}
		c.Network = n
		c.Spec.Net, c.Spec.MAC, c.Spec.DNS = rec.Spec.String(), rec.MAC, rec.DNS
		for _, a := range rec.Spec.Addrs {
			c.Spec.IP = append(c.Spec.IP, a.String())
		}
		for _, p := range rec.Spec.Publish {
			c.Spec.Publish = append(c.Spec.Publish, p.String())
		}
	} else if sp.Net.Mode == runtime.NetHost {
		c.Network = &agent.NetInfo{Mode: "host"}
	} else {
		c.Spec.Net = "none" // as the flag's default reads
	}
	return c
}

// stateText is the STATE column of ps.
func stateText(c *ctrInfo) string {
	switch c.State {
	case agent.StateExited:
		switch {
		case c.OOMKilled:
			return "OOM killed"
		case c.Exit != nil && c.Exit.Unknown:
			return "exited (?)"
		}
		return fmt.Sprintf("exited (%d)", c.ExitCode)
	case agent.StateRestarting:
		if !c.NextRestart.IsZero() {
			d := time.Until(c.NextRestart).Round(time.Second)
			return fmt.Sprintf("restarting in %s", max(d, 0))
		}
	}
	return c.State
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printPs writes the ps table or (asJSON) the list as inspect shows it.
func printPs(w io.Writer, list []*ctrInfo, asJSON bool) error {
	if asJSON {
		if list == nil {
			list = []*ctrInfo{}
		}
		return writeIndentedJSON(w, list)
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	// PID stays the third column (scripts: awk '{print $1, $3}').
	fmt.Fprintln(tw, "NAME\tSTATE\tPID\tHEALTH\tIMAGE\tRESTART\tRESTARTS\tCREATED\tCOMMAND")
	for _, c := range list {
		pid := "-"
		if c.Pid > 0 {
			pid = strconv.Itoa(c.Pid)
		}
		restart := "-"
		if c.Supervised {
			restart = c.Restart
		}
		cmd := ""
		if c.Spec != nil {
			cmd = strings.Join(c.Spec.Command, " ")
		}
		if len(cmd) > 30 {
			cmd = cmd[:27] + "..."
		}
		created := "-"
		if !c.Created.IsZero() {
			created = ago(c.Created)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", c.Name, stateText(c), pid, dash(c.Health),
			c.Image, restart, c.Restarts, created, dash(cmd))
	}
	return tw.Flush()
}

// printInspect writes one container as an object, several as an array.
func printInspect(w io.Writer, list []*ctrInfo) error {
	if len(list) == 1 {
		return writeIndentedJSON(w, list[0])
	}
	return writeIndentedJSON(w, list)
}

func writeIndentedJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// statsRow is one line of otok stats.
type statsRow struct {
	Name       string  `json:"name"`
	CPUPercent float64 `json:"cpuPercent"`
	CPUNanos   uint64  `json:"cpuNanos"`
	Memory     uint64  `json:"memoryUsage"`
	MemoryMax  uint64  `json:"memoryLimit"` // 0 = none
	Pids       uint64  `json:"pids"`
	PidsMax    uint64  `json:"pidsLimit"` // 0 = none
	OOMKills   uint64  `json:"oomKills"`  // OOM kills in the container's cgroup
	NetRx      uint64  `json:"netRx"`
	NetTx      uint64  `json:"netTx"`
}

// statsRows pairs two samples taken interval apart (CPU %).
func statsRows(first, second []agent.Stats, interval time.Duration) []statsRow {
	prev := map[string]uint64{}
	for _, s := range first {
		prev[s.Name] = s.CPUNanos
	}
	rows := []statsRow{}
	for _, s := range second {
		r := statsRow{Name: s.Name, CPUNanos: s.CPUNanos, Memory: s.Memory, MemoryMax: s.MemoryMax, Pids: s.Pids, PidsMax: s.PidsMax,
			OOMKills: s.OOMKills, NetRx: s.NetRx, NetTx: s.NetTx}
		if p, ok := prev[s.Name]; ok && s.CPUNanos >= p {
			r.CPUPercent = float64(s.CPUNanos-p) / float64(interval.Nanoseconds()) * 100
		}
		rows = append(rows, r)
	}
	return rows
}

func printStats(w io.Writer, rows []statsRow, asJSON bool) error {
	if asJSON {
		return writeIndentedJSON(w, rows)
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCPU %\tMEM USAGE / LIMIT\tOOM\tPIDS / LIMIT\tNET RX / TX")
	for _, x := range rows {
		limit, plimit := "-", "-"
		if x.MemoryMax > 0 {
			limit = humanBytes(int64(x.MemoryMax))
		}
		if x.PidsMax > 0 {
			plimit = strconv.FormatUint(x.PidsMax, 10)
		}
		fmt.Fprintf(tw, "%s\t%.1f%%\t%s / %s\t%d\t%d / %s\t%s / %s\n", x.Name, x.CPUPercent, humanBytes(int64(x.Memory)), limit,
			x.OOMKills, x.Pids, plimit, humanBytes(int64(x.NetRx)), humanBytes(int64(x.NetTx)))
	}
	return tw.Flush()
}

// netDevBytes sums rx/tx bytes of every interface but lo in pid's network
// namespace (as the agent counts them).
func netDevBytes(pid int) (rx, tx uint64) {
	if pid <= 0 {
		return 0, 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/net/dev")
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			continue
		}
		r, err1 := strconv.ParseUint(f[0], 10, 64)
		t, err2 := strconv.ParseUint(f[8], 10, 64)
		if err1 == nil && err2 == nil {
			rx, tx = rx+r, tx+t
		}
	}
	return rx, tx
}
