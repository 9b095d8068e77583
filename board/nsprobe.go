package board

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// saveNamespace opens the calling thread's namespace of kind ("net",
// "mnt") and returns a function that puts the thread back into it. The
// probes call it on a locked thread before they unshare, so that a thread
// Go cannot discard (the main thread) does not stay in a scratch namespace.
func saveNamespace(kind string) (back func(), err error) {
	flags := map[string]int{"net": unix.CLONE_NEWNET, "mnt": unix.CLONE_NEWNS}[kind]
	f, err := os.Open(fmt.Sprintf("/proc/thread-self/ns/%s", kind))
	if err != nil {
		return nil, fmt.Errorf("open %s namespace: %w", kind, err)
	}
	return func() {
		unix.Setns(int(f.Fd()), flags)
		f.Close()
	}, nil
}
