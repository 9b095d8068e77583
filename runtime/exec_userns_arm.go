package runtime

import "golang.org/x/sys/unix"

// 32-bit ARM: the uid calls with 32-bit ids.
const (
	sysSetgroups = unix.SYS_SETGROUPS32
	sysSetresgid = unix.SYS_SETRESGID32
	sysSetresuid = unix.SYS_SETRESUID32
)
