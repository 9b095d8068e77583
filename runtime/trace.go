package runtime

import (
	"fmt"
	"os"
	"time"
)

// Tracef prints a timestamped line to stderr when OTOK_TRACE is set (for
// profiling the start path).
func Tracef(format string, a ...any) {
	if traceOn {
		fmt.Fprintf(os.Stderr, "[%7.2fms pid %d] %s\n", float64(time.Since(traceStart).Microseconds())/1000, os.Getpid(), fmt.Sprintf(format, a...))
	}
}

var (
	traceOn    = os.Getenv("OTOK_TRACE") != ""
	traceStart = time.Now()
)
