package runtime

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The child program runs in a real child, started both ways (CLONE_VM on
// its own stack, and fork), without namespaces: no root needed.
func TestRawProg(t *testing.T) {
	starts := []struct {
		name  string
		start func(p *rawProg) (int, syscall.Errno)
	}{
		{"clone-vm", func(p *rawProg) (int, syscall.Errno) {
			if !haveCloneVM {
				return 0, unix.ENOSYS
			}
			stack := make([]byte, childStackSize)
			p.keep = append(p.keep, stack)
			return cloneVM(nil, 0, stack, p)
		}},
		{"fork", func(p *rawProg) (int, syscall.Errno) { return rawForkProg(nil, 0, p) }},
	}
	cases := []struct {
		name string
		// build adds ops; failing ops go before or after ready.
		build      func(p *rawProg)
		wantStatus string // "ready" or the parent's message
		wantStderr string
		wantCode   int
	}{
		{
			name: "ready then exit",
			build: func(p *rawProg) {
				p.add("getpid", ignoreNone, unix.SYS_GETPID)
				p.markReady()
				p.add("exit", ignoreNone, unix.SYS_EXIT_GROUP, 7)
			},
			wantStatus: "ready", wantCode: 7,
		},
		{
			name: "failure before ready goes to the parent",
			build: func(p *rawProg) {
				p.add("open /nonexistent/x", ignoreNone, unix.SYS_OPENAT, atFdcwd, p.cstr("/nonexistent/x"), unix.O_RDONLY)
				p.markReady()
			},
			wantStatus: "open /nonexistent/x: no such file or directory", wantCode: 127,
		},
		{
			name: "ignored errors go on",
			build: func(p *rawProg) {
				p.add("mask", ignoreENOENT, unix.SYS_OPENAT, atFdcwd, p.cstr("/nonexistent/x"), unix.O_RDONLY)
				p.add("bad fd", ignoreAny, unix.SYS_CLOSE, 9999)
				p.markReady()
				p.add("exit", ignoreNone, unix.SYS_EXIT_GROUP, 0)
			},
			wantStatus: "ready", wantCode: 0,
		},
		{
			name: "failure after ready goes to stderr",
			build: func(p *rawProg) {
				p.markReady()
				p.add("exec /nonexistent/cmd", ignoreNone, unix.SYS_EXECVE, p.cstr("/nonexistent/cmd"), p.cstrv([]string{"cmd"}), p.cstrv(nil))
			},
			wantStatus: "ready", wantStderr: "otok: container t: exec /nonexistent/cmd: no such file or directory\n", wantCode: 127,
		},
	}
	for _, st := range starts {
		for _, c := range cases {
			t.Run(st.name+"/"+c.name, func(t *testing.T) {
				statR, statW := pipe(t)
				errR, errW := pipe(t)
				p := &rawProg{prefix: []byte("otok: container t: "), errs: errnoTexts()}
				p.add("status fd", ignoreNone, unix.SYS_DUP3, statW.Fd(), childStatusFd, unix.O_CLOEXEC)
				p.add("stderr", ignoreNone, unix.SYS_DUP3, errW.Fd(), 2, 0)
				c.build(p)
				pid, errno := st.start(p)
				if errno == unix.ENOSYS || errno == unix.EINVAL {
					t.Skipf("%s: %v (not here: qemu-user emulates only thread and fork clones)", st.name, errno)
				}
				if errno != 0 {
					t.Fatalf("start: %v", errno)
				}
				statW.Close()
				errW.Close()
				var ws unix.WaitStatus
				if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
					t.Fatal(err)
				}
				rec := make([]byte, 16)
				n, _ := statR.Read(rec)
				status := "no record"
				if n == 8 {
					status = "ready"
					if err := p.result(rec[:8]); err != nil {
						status = err.Error()
					}
				}
				stderr := make([]byte, 256)
				k, _ := errR.Read(stderr)
				if status != c.wantStatus || string(stderr[:k]) != c.wantStderr || ws.ExitStatus() != c.wantCode {
					t.Errorf("status %q, stderr %q, exit %d; want %q, %q, %d", status, stderr[:k], ws.ExitStatus(), c.wantStatus, c.wantStderr, c.wantCode)
				}
			})
		}
	}
}

func pipe(t *testing.T) (r, w *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func TestRlimitSet(t *testing.T) {
	got, err := rlimitSet([]Rlimit{{Type: "NOFILE", Soft: 10, Hard: 20}, {Type: "core", Soft: 0, Hard: 0}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range got {
		names = append(names, r.name)
	}
	// Sorted, the spec's nofile over the default.
	if strings.Join(names, ",") != "core,nofile" || got[1].soft != 10 || got[1].hard != 20 {
		t.Errorf("got %+v", got)
	}
	if _, err := rlimitSet([]Rlimit{{Type: "wizardry"}}); err == nil || !strings.Contains(err.Error(), "rlimit wizardry") {
		t.Errorf("unknown type: err %v", err)
	}
}

var fdcwd = unix.AT_FDCWD
var atFdcwd = uintptr(fdcwd) // AT_FDCWD as a raw argument
