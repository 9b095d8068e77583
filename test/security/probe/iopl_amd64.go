package main

import "golang.org/x/sys/unix"

func ioplProbe() result {
	return denied("iopl(3)", errno(unix.Syscall(unix.SYS_IOPL, 3, 0, 0)))
}
