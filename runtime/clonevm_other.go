//go:build !(amd64 || arm64 || arm || mips || mipsle)

package runtime

// haveCloneVM: no rawCloneVM here; a direct start forks (rawForkProg).
const haveCloneVM = false

func rawCloneVM(trap, a1, a2 uintptr, prog *rawProg) (pid, errno uintptr) {
	panic("rawCloneVM: not on this architecture")
}
