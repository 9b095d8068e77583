package runtime

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

var rlimitTypes = map[string]int{
	"as": unix.RLIMIT_AS, "core": unix.RLIMIT_CORE, "cpu": unix.RLIMIT_CPU,
	"data": unix.RLIMIT_DATA, "fsize": unix.RLIMIT_FSIZE, "locks": unix.RLIMIT_LOCKS,
	"memlock": unix.RLIMIT_MEMLOCK, "msgqueue": unix.RLIMIT_MSGQUEUE,
	"nice": unix.RLIMIT_NICE, "nofile": unix.RLIMIT_NOFILE, "nproc": unix.RLIMIT_NPROC,
	"rss": unix.RLIMIT_RSS, "rtprio": unix.RLIMIT_RTPRIO, "rttime": unix.RLIMIT_RTTIME,
	"sigpending": unix.RLIMIT_SIGPENDING, "stack": unix.RLIMIT_STACK,
}

// defaultRlimits apply unless the spec overrides them: a sane open files
// limit (Go raises its own soft limit to the hard one at start).
var defaultRlimits = []Rlimit{{Type: "nofile", Soft: 1024, Hard: 4096}}

// applyRlimits sets the process's resource limits (inherited over execve).
func applyRlimits(limits []Rlimit) error {
	set, err := rlimitSet(limits)
	if err != nil {
		return err
	}
	for _, r := range set {
		// syscall.Setrlimit, not unix.Prlimit: Go restores its saved
		// RLIMIT_NOFILE on exec unless told through syscall.Setrlimit.
		if err := syscall.Setrlimit(r.res, &syscall.Rlimit{Cur: r.soft, Max: r.hard}); err != nil {
			return fmt.Errorf("rlimit %s=%d:%d: %w", r.name, r.soft, r.hard, err)
		}
	}
	return nil
}

type rlimitValue struct {
	name       string
	res        int
	soft, hard uint64
}

// rlimitSet is the defaults overridden by the spec's limits, checked,
// in a stable order.
func rlimitSet(limits []Rlimit) ([]rlimitValue, error) {
	set := map[string]Rlimit{}
	for _, r := range defaultRlimits {
		set[r.Type] = r
	}
	for _, r := range limits {
		set[strings.ToLower(r.Type)] = r
	}
	out := make([]rlimitValue, 0, len(set))
	for _, t := range slices.Sorted(maps.Keys(set)) {
		res, ok := rlimitTypes[t]
		if !ok {
			return nil, fmt.Errorf("rlimit %s: unknown", t)
		}
		out = append(out, rlimitValue{t, res, set[t].Soft, set[t].Hard})
	}
	return out, nil
}
