package agent

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
)

// Stats is the stats op: CPU time, memory and pids from the runtime
// (cgroup counters), network bytes from the container's own
// /proc/PID/net/dev (all interfaces but lo).
func (a *Agent) Stats(ctx context.Context, names []string) (*StatsReply, error) {
	type target struct {
		name string
		pid  int
	}
	var ts []target
	a.mu.Lock()
	if len(names) == 0 {
		for n, c := range a.ctrs {
			if c.state == StateRunning {
				ts = append(ts, target{n, c.proc.Pid})
			}
		}
	} else {
		for _, n := range names {
			c, err := a.lookupLocked(n)
			if err != nil {
				a.mu.Unlock()
				return nil, err
			}
			if c.state != StateRunning {
				a.mu.Unlock()
				return nil, Errorf(CodeConflict, "container %s: not running (%s)", n, c.state)
			}
			ts = append(ts, target{n, c.proc.Pid})
		}
	}
	a.mu.Unlock()
	r := &StatsReply{Stats: []Stats{}}
	for _, t := range ts {
		s := Stats{Name: t.name}
		if a.opts.Runtime != nil {
			if rs, err := a.opts.Runtime.Stats(ctx, t.name); err == nil {
				s = rs
				s.Name = t.name
			}
		}
		s.NetRx, s.NetTx = netDev(t.pid)
		r.Stats = append(r.Stats, s)
	}
	sortStats(r.Stats)
	return r, nil
}

func sortStats(s []Stats) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].Name < s[j-1].Name; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// netDev sums rx/tx bytes of every interface but lo in pid's network
// namespace.
func netDev(pid int) (rx, tx uint64) {
	if pid <= 0 {
		return 0, 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/net/dev")
	if err != nil {
		return 0, 0
	}
	return parseNetDev(b)
}

func parseNetDev(b []byte) (rx, tx uint64) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 9 {
			continue
		}
		r, _ := strconv.ParseUint(f[0], 10, 64)
		t, _ := strconv.ParseUint(f[8], 10, 64)
		rx += r
		tx += t
	}
	return rx, tx
}

// selfRSS is the agent's resident set in bytes.
func selfRSS() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseUint(f[0], 10, 64)
				return n << 10
			}
		}
	}
	return 0
}
