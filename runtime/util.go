package runtime

import (
	"syscall"
	"unsafe"
)

func ptr[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }

// allThreads runs a syscall on every thread of the process; where Go
// cannot (binaries built with cgo) it runs it on the calling thread, which
// is locked and is the one that execs — enough, since execve keeps only
// the calling thread.
func allThreads(trap, a1, a2, a3 uintptr) syscall.Errno {
	_, _, e := syscall.AllThreadsSyscall(trap, a1, a2, a3)
	if e == syscall.ENOTSUP {
		_, _, e = syscall.RawSyscall(trap, a1, a2, a3)
	}
	return e
}
