//go:build amd64 || arm64 || arm || mips || mipsle

package runtime

// haveCloneVM: this architecture has rawCloneVM (clonevm_*.s).
const haveCloneVM = true

// rawCloneVM makes the system call trap(a1, a2) — clone with a new stack,
// or clone3 — for a child that shares this address space (CLONE_VM, no
// copy of the page tables, no copy-on-write faults afterwards) and starts
// on its own stack, where it calls runRawProg(prog) and never returns. In
// the parent it returns the child's pid, or the errno.
//
//go:noescape
func rawCloneVM(trap, a1, a2 uintptr, prog *rawProg) (pid, errno uintptr)
