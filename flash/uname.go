package flash

import "golang.org/x/sys/unix"

type unameBuf struct{ u unix.Utsname }

func (b *unameBuf) release() string {
	if unix.Uname(&b.u) != nil {
		return ""
	}
	return unix.ByteSliceToString(b.u.Release[:])
}
