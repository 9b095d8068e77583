package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Container output. The runtime points a container's stdout and stderr at
// <state>/logs/NAME.log on tmpfs (opened O_APPEND by the runtime, not a
// pipe held by the agent), so output is neither lost nor blocked while the
// agent is down: the container keeps writing to the file. The agent keeps
// each file to about log_size (default 64 KiB) by punching a hole over the
// oldest part every TrimInterval (fallocate PUNCH_HOLE frees the tmpfs
// pages; writers are unaffected and nothing is copied). The hole is a
// whole number of pages (4 KiB on most routers, 16 KiB on some MIPS
// kernels), so a file keeps between log_size and log_size + one page. While no agent
// runs, a file grows without trimming: the bound is the output of those
// seconds, and the tmpfs size.

// TrimInterval is how often log files are trimmed.
const TrimInterval = 10 * time.Second

func (a *Agent) logPath(name string) string { return filepath.Join(a.logDir(), name+".log") }

// trimLogs punches out all but the last keep bytes of every container's
// log file. It stats the files of the containers it knows (no directory
// reads, which would update the directory's atime on a disk-backed state
// dir).
func (a *Agent) trimLogs() {
	a.mu.Lock()
	keep := a.cfg.Agent.LogSize
	paths := make([]string, 0, len(a.ctrs))
	for n := range a.ctrs {
		paths = append(paths, a.logPath(n))
	}
	a.mu.Unlock()
	for _, p := range paths {
		trimFile(p, keep)
	}
}

func trimFile(path string, keep int64) {
	// look before opening: an idle agent must not even open files for
	// writing (on some filesystems closing one starts a flush)
	page := int64(os.Getpagesize())
	if fi, err := os.Stat(path); err != nil || fi.Size()-keep < page {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return
	}
	// whole pages only: a partial page would be zeroed, not freed, and
	// SEEK_DATA would still report it as data
	cut := (fi.Size() - keep) &^ (page - 1)
	if cut <= 0 {
		return
	}
	_ = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, cut)
}

// logStart returns the offset of the first byte kept in f: after the
// punched hole, at a line start. SEEK_DATA reports holes at the
// filesystem's granularity (a page; tmpfs pages are 16 KiB on some MIPS
// kernels), and a hole punched by another tool or with another page size
// may end inside a block that reads as zeros: skip those NULs, then the
// partial line after them.
func logStart(f *os.File) int64 {
	off, err := unix.Seek(int(f.Fd()), 0, unix.SEEK_DATA)
	if err != nil || off <= 0 {
		return 0
	}
	buf := make([]byte, 4096)
	zeros := true
	for {
		n, _ := f.ReadAt(buf, off)
		if n == 0 {
			return off
		}
		b := buf[:n]
		if zeros {
			i := 0
			for i < len(b) && b[i] == 0 {
				i++
			}
			off += int64(i)
			b = b[i:]
			if len(b) == 0 {
				continue
			}
			zeros = false
		}
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			return off + int64(i) + 1
		}
		off += int64(len(b))
	}
}

// Logs is the logs op: the kept output (last Tail lines), then (Follow)
// new output until the peer goes away or the container is removed.
func (a *Agent) Logs(ctx context.Context, r *LogsRequest, emit func(any) error) error {
	a.mu.Lock()
	_, err := a.lookupLocked(r.Name)
	path := ""
	if err == nil {
		path = a.logPath(r.Name)
	}
	a.mu.Unlock()
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		if !r.Follow {
			return nil
		}
		for errors.Is(err, os.ErrNotExist) {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(250 * time.Millisecond):
			}
			f, err = os.Open(path)
		}
	}
	if err != nil {
		return Errorf(CodeInternal, "container %s: logs: %v", r.Name, err)
	}
	defer f.Close()
	off := logStart(f)
	fi, _ := f.Stat()
	end := fi.Size()
	if r.Tail > 0 {
		off = tailOffset(f, off, end, r.Tail)
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := f.ReadAt(buf, off)
		if n > 0 {
			if e := emit(LogsChunk{Data: bytes.Clone(buf[:n])}); e != nil {
				return e
			}
			off += int64(n)
			continue
		}
		if err != nil && err != io.EOF {
			return Errorf(CodeInternal, "container %s: logs: %v", r.Name, err)
		}
		if !r.Follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
		if fi, err := f.Stat(); err == nil && fi.Size() < off {
			off = fi.Size() // truncated
		}
		if start := logStart(f); start > off {
			off = start // trimmed under us
		}
	}
}

// tailOffset finds where the last n lines of f[start:end] begin.
func tailOffset(f *os.File, start, end int64, n int) int64 {
	pos := end
	buf := make([]byte, 4096)
	lines := 0
	if end > start {
		// a final newline does not start a line
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, end-1); err == nil && b[0] == '\n' {
			pos = end - 1
		}
	}
	for pos > start {
		sz := int64(len(buf))
		if pos-start < sz {
			sz = pos - start
		}
		k, _ := f.ReadAt(buf[:sz], pos-sz)
		for i := k - 1; i >= 0; i-- {
			if buf[i] == '\n' {
				lines++
				if lines == n {
					return pos - sz + int64(i) + 1
				}
			}
		}
		pos -= sz
	}
	return start
}
