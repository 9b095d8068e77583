package board

import (
	"bytes"

	"golang.org/x/sys/unix"
)

type utsname = unix.Utsname

func utsField(f func(*utsname) []byte) string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	b := f(&u)
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
