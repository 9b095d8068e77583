package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// errIfDynamic explains an exec stage that could not start: otok re-execs
// itself from inside the container's mount namespace, where a dynamically
// linked otok (built with cgo) finds no ELF interpreter, and execve says
// only ENOENT ("fork/exec /proc/self/exe: no such file or directory").
func errIfDynamic(err error) error {
	if !errors.Is(err, syscall.ENOENT) {
		return err
	}
	interp, ierr := elfInterp("/proc/self/exe")
	if ierr != nil || interp == "" {
		return err
	}
	return fmt.Errorf("%w: otok is dynamically linked (interpreter %s, absent in the container); build it with CGO_ENABLED=0 as make build does", err, interp)
}

// elfInterp returns the PT_INTERP path of an ELF file, "" when it is
// static. Hand-parsed: debug/elf would add its weight to every binary for
// this one error message.
func elfInterp(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var id [16]byte
	if _, err := io.ReadFull(f, id[:]); err != nil || string(id[:4]) != "\x7fELF" {
		return "", fmt.Errorf("%s: not ELF", path)
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if id[5] == 2 {
		bo = binary.BigEndian
	}
	is64 := id[4] == 2
	hdr := make([]byte, 64)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return "", err
	}
	var phoff int64
	var phentsize, phnum int
	if is64 {
		phoff = int64(bo.Uint64(hdr[32:]))
		phentsize, phnum = int(bo.Uint16(hdr[54:])), int(bo.Uint16(hdr[56:]))
	} else {
		phoff = int64(bo.Uint32(hdr[28:]))
		phentsize, phnum = int(bo.Uint16(hdr[42:])), int(bo.Uint16(hdr[44:]))
	}
	if phentsize < 32 || phnum > 256 {
		return "", fmt.Errorf("%s: bad program headers", path)
	}
	ph := make([]byte, phentsize)
	for i := 0; i < phnum; i++ {
		if _, err := f.ReadAt(ph, phoff+int64(i*phentsize)); err != nil {
			return "", err
		}
		if bo.Uint32(ph) != 3 { // PT_INTERP
			continue
		}
		var off, size int64
		if is64 {
			off, size = int64(bo.Uint64(ph[8:])), int64(bo.Uint64(ph[32:]))
		} else {
			off, size = int64(bo.Uint32(ph[4:])), int64(bo.Uint32(ph[16:]))
		}
		if size <= 0 || size > 4096 {
			return "", fmt.Errorf("%s: bad PT_INTERP", path)
		}
		b := make([]byte, size)
		if _, err := f.ReadAt(b, off); err != nil {
			return "", err
		}
		for len(b) > 0 && b[len(b)-1] == 0 {
			b = b[:len(b)-1]
		}
		return string(b), nil
	}
	return "", nil
}
