package runtime

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Tracef prints a timestamped line to stderr when OTOK_TRACE is set (for
// profiling the start path).
func Tracef(format string, a ...any) {
	if traceOn {
		var ts unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		ms := float64(ts.Sec%1000)*1000 + float64(ts.Nsec)/1e6
		fmt.Fprintf(os.Stderr, "[%9.2fms +%6.2f pid %d] %s\n", ms, float64(time.Since(traceStart).Microseconds())/1000, os.Getpid(), fmt.Sprintf(format, a...))
	}
}

var (
	traceOn    = os.Getenv("OTOK_TRACE") != ""
	traceStart = time.Now()
)

// initEnv is the environment of the init and exec stages: which stage
// (see stageEnv), one P (they are sequential; fewer threads to start and
// wake cut milliseconds off a start on a busy CPU) and tracing.
func initEnv(stage string) []string {
	env := []string{stageEnv + "=" + stage, "GOMAXPROCS=1"}
	if traceOn {
		env = append(env, "OTOK_TRACE=1")
	}
	return env
}
