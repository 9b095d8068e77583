package runtime

import (
	"syscall"
	"unsafe"
)

func ptr[T any](p *T) unsafe.Pointer { return unsafe.Pointer(p) }

// threadSyscall runs a credential syscall (prctl, capset) on the calling
// thread only. The init and exec stages lock their goroutine to one
// thread and exec (or fork the reaper's child) from it, and execve keeps
// only the calling thread, so that thread's credentials are the ones that
// matter; syscall.AllThreadsSyscall would stop every thread for each of
// the ~40 calls and costs milliseconds on a loaded router.
func threadSyscall(trap, a1, a2, a3 uintptr) syscall.Errno {
	_, _, e := syscall.RawSyscall(trap, a1, a2, a3)
	return e
}
