package flash

import (
	"errors"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// directAlign is the alignment O_DIRECT needs of buffers, file offsets and
// lengths (the page size covers every logical block size in use).
const directAlign = 4096

// alignedBuffer returns n bytes starting at a directAlign boundary.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+directAlign)
	off := int(uintptr(unsafe.Pointer(&b[0])) & (directAlign - 1))
	if off != 0 {
		off = directAlign - off
	}
	return b[off : off+n : off+n]
}

// directWriter writes a new file sequentially, with O_DIRECT where the
// filesystem has it (ext4, xfs, f2fs, btrfs: a large image then neither
// passes through the page cache, which on a router is most of its RAM,
// nor costs a copy and a writeback per page; the caller still fsyncs).
// Where it has not (tmpfs, UBIFS, JFFS2) and for any write O_DIRECT
// cannot take (unaligned buffer, offset or length, as the last block of
// the file) it falls back to ordinary writes for the rest of the file.
type directWriter struct {
	f      *os.File
	fd     int
	direct bool
	off    int64
}

func newDirectWriter(f *os.File) *directWriter {
	w := &directWriter{f: f, fd: int(f.Fd())}
	if fl, err := unix.FcntlInt(uintptr(w.fd), unix.F_GETFL, 0); err == nil {
		// F_SETFL refuses O_DIRECT where the filesystem cannot do it.
		_, serr := unix.FcntlInt(uintptr(w.fd), unix.F_SETFL, fl|unix.O_DIRECT)
		w.direct = serr == nil
	}
	return w
}

// buffered turns O_DIRECT off for the rest of the file.
func (w *directWriter) buffered() error {
	if !w.direct {
		return nil
	}
	fl, err := unix.FcntlInt(uintptr(w.fd), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(w.fd), unix.F_SETFL, fl&^unix.O_DIRECT)
	}
	if err != nil {
		return &os.PathError{Op: "fcntl", Path: w.f.Name(), Err: err}
	}
	w.direct = false
	return nil
}

func (w *directWriter) Write(p []byte) (int, error) {
	if w.direct && (len(p)%directAlign != 0 || w.off%directAlign != 0 || len(p) > 0 && uintptr(unsafe.Pointer(&p[0]))%directAlign != 0) {
		if err := w.buffered(); err != nil {
			return 0, err
		}
	}
	n, err := w.f.Write(p)
	w.off += int64(n)
	if err != nil && w.direct && errors.Is(err, unix.EINVAL) && n%directAlign == 0 {
		// A device with a larger logical block than directAlign: write
		// the rest buffered.
		if berr := w.buffered(); berr != nil {
			return n, err
		}
		m, err := w.f.Write(p[n:])
		w.off += int64(m)
		return n + m, err
	}
	return n, err
}
