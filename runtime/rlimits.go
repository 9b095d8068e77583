package runtime

import (
	"fmt"
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
	set := map[string]Rlimit{}
	for _, r := range defaultRlimits {
		set[r.Type] = r
	}
	for _, r := range limits {
		set[strings.ToLower(r.Type)] = r
	}
	for t, r := range set {
		res, ok := rlimitTypes[t]
		if !ok {
			return fmt.Errorf("rlimit %s: unknown", t)
		}
		// syscall.Setrlimit, not unix.Prlimit: Go restores its saved
		// RLIMIT_NOFILE on exec unless told through syscall.Setrlimit.
		if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: r.Soft, Max: r.Hard}); err != nil {
			return fmt.Errorf("rlimit %s=%d:%d: %w", t, r.Soft, r.Hard, err)
		}
	}
	return nil
}
