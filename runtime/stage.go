package runtime

import (
	"fmt"
	"os"
	goruntime "runtime"
)

// stageEnv names, in the environment of a re-exec of /proc/self/exe, the
// stage it runs (stageInit or stageExec). The stage starts from this
// package's init function: before the packages that import runtime are
// initialized and before the program's main, whose work (the CLI's
// command table, other packages' tables, flag parsing) a container start
// would otherwise pay once more. Runtime.InitArgs and ExecArgs still name
// the stage in argv, for ps and for programs that dispatch it themselves.
const stageEnv = "_OTOK_STAGE"

const (
	stageInit = "init"
	stageExec = "exec"
)

func init() {
	switch os.Getenv(stageEnv) {
	case stageInit:
		InitMain() // returns only on failure, reported to the parent
		os.Exit(127)
	case stageExec:
		code, err := ExecMain()
		fmt.Fprintf(os.Stderr, "otok exec: %v\n", err)
		os.Exit(code)
	}
}

// sigsetSize is the kernel's sigset_t size for rt_sig* calls (_NSIG/8).
var sigsetSize = func() uintptr {
	switch goruntime.GOARCH {
	case "mips", "mipsle", "mips64", "mips64le":
		return 16
	}
	return 8
}()
