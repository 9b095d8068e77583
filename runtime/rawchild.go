package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A direct start (direct.go) forks the container's init from a thread of
// the calling Go process, without exec'ing a second Go program. A forked
// child of a Go process has one thread and a runtime it must not touch:
// it may only run raw system calls, on memory prepared before the fork,
// without allocating or growing its stack. rawProg is that preparation: the
// list of system calls the child makes between its clone and the exec of
// the container's process, each with what to tell if it fails.

// Child fds while the program runs: the status pipe and the start fifo
// (close-on-exec, like every fd from 5 up, which are closed).
const (
	childStatusFd = 3
	childFifoFd   = 4
)

// Errors an op may return without failing the start (rawOp.ignore).
const (
	ignoreNone   = 0
	ignoreAny    = 1
	ignoreENOENT = 2
	ignoreEINVAL = 4
)

type rawOp struct {
	trap   uintptr
	args   [6]uintptr
	ignore uintptr
	desc   []byte // what failed, for the message
}

// rawProg is the child's program. ops[:ready] run before the child
// reports ready on the status pipe (an error there is sent to the parent
// as a status record, see result); a later error is written to the container's stderr.
type rawProg struct {
	ops    []rawOp
	ready  int
	record [8]byte // the ready record
	prefix []byte  // "otok: container NAME: "
	errs   [][]byte
	keep   []any // memory the ops point to
}

// result reads a status record, what the child writes on the status
// pipe: the op number plus one and its errno, or zeros for ready (native
// byte order: both sides are the same program). nil means ready.
func (p *rawProg) result(rec []byte) error {
	op := int(binary.NativeEndian.Uint32(rec[0:])) - 1
	errno := syscall.Errno(binary.NativeEndian.Uint32(rec[4:]))
	if op < 0 && errno == 0 {
		return nil
	}
	return errors.New(p.describe(op, errno))
}

func (p *rawProg) add(desc string, ignore uintptr, trap uintptr, args ...uintptr) {
	op := rawOp{trap: trap, ignore: ignore, desc: []byte(desc)}
	copy(op.args[:], args)
	p.ops = append(p.ops, op)
}

// cstr returns a pointer to a NUL-terminated copy of s, kept for the child.
func (p *rawProg) cstr(s string) uintptr {
	b, err := syscall.ByteSliceFromString(s)
	if err != nil {
		panic(fmt.Sprintf("direct start: %q has a NUL byte", s)) // validated specs have none
	}
	p.keep = append(p.keep, b)
	return uintptr(unsafe.Pointer(&b[0]))
}

// cstrv returns a pointer to a NULL-terminated array of C strings.
func (p *rawProg) cstrv(ss []string) uintptr {
	v := make([]uintptr, len(ss)+1)
	for i, s := range ss {
		v[i] = p.cstr(s)
	}
	p.keep = append(p.keep, v)
	return uintptr(unsafe.Pointer(&v[0]))
}

// mem keeps v for the child and returns its address.
func (p *rawProg) mem(v any, addr unsafe.Pointer) uintptr {
	p.keep = append(p.keep, v)
	return uintptr(addr)
}

// markReady ends the part of the program whose errors go to the parent.
func (p *rawProg) markReady() {
	p.ready = len(p.ops)
	p.add("report ready", ignoreNone, unix.SYS_WRITE, childStatusFd, uintptr(unsafe.Pointer(&p.record[0])), uintptr(len(p.record)))
}

// describe is the parent's message for a failed op.
func (p *rawProg) describe(op int, errno syscall.Errno) string {
	if op < 0 || op >= len(p.ops) {
		return fmt.Sprintf("init step %d: %v", op, errno)
	}
	return fmt.Sprintf("%s: %v", p.ops[op].desc, errno)
}

// errnoTexts are the errno texts a child may need after ready (rendered
// once: the child cannot).
var errnoTexts = sync.OnceValue(func() [][]byte {
	t := make([][]byte, 134)
	for i := range t {
		t[i] = []byte(syscall.Errno(i).Error())
	}
	return t
})

// rawForkProg forks and runs prog in the child. clone3 args (v2: into the
// container's cgroup) or, with args nil, clone(flags). It returns the
// child's pid in the parent.
//
//go:nosplit
//go:norace
func rawForkProg(args *cloneArgs, flags uintptr, prog *rawProg) (int, syscall.Errno) {
	var r1 uintptr
	var e syscall.Errno
	if args != nil {
		// No stack: the child runs on a copy of this one, as with fork.
		r1, _, e = syscall.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(args)), unsafe.Sizeof(*args), 0)
	} else {
		r1, _, e = syscall.RawSyscall6(unix.SYS_CLONE, flags|uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
	}
	if e != 0 {
		return 0, e
	}
	if r1 != 0 {
		return int(r1), 0 // parent
	}
	runRawProg(prog)
	return 0, 0 // not reached
}

// runRawProg is the child: it runs the ops in order and exits 127 on the
// first error that is not ignored. The last op is the exec.
//
//go:nosplit
//go:norace
func runRawProg(p *rawProg) {
	ops := p.ops
	for i := 0; i < len(ops); i++ {
		op := &ops[i]
		_, _, e := syscall.RawSyscall6(op.trap, op.args[0], op.args[1], op.args[2], op.args[3], op.args[4], op.args[5])
		if e == 0 || op.ignore&ignoreAny != 0 || e == unix.ENOENT && op.ignore&ignoreENOENT != 0 || e == unix.EINVAL && op.ignore&ignoreEINVAL != 0 {
			continue
		}
		if i < p.ready {
			var rec [2]uint32
			rec[0], rec[1] = uint32(i+1), uint32(e)
			syscall.RawSyscall(unix.SYS_WRITE, childStatusFd, uintptr(unsafe.Pointer(&rec[0])), 8)
		} else {
			rawWrite(2, p.prefix)
			rawWrite(2, op.desc)
			if int(e) < len(p.errs) {
				rawWrite(2, colon)
				rawWrite(2, p.errs[e])
			}
			rawWrite(2, newline)
		}
		break
	}
	syscall.RawSyscall(unix.SYS_EXIT_GROUP, 127, 0, 0)
}

var colon, newline = []byte(": "), []byte("\n")

//go:nosplit
//go:norace
func rawWrite(fd uintptr, b []byte) {
	if len(b) > 0 {
		syscall.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	}
}
