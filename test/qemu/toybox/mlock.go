package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// lockFileMappings mlocks the read-only file-backed mappings of this
// process (the program's text and rodata) and returns how many bytes.
//
// Why memhog needs it: without swap, a memory cgroup at memory.max can
// only reclaim file pages, and the only ones memhog has are its own text,
// read from the image's squashfs. Under TCG, on mipsel and armhf, reclaim
// kept dropping that text and every refault (an xz decompression) counted
// as progress, so the kernel never declared OOM (minutes of refaulting,
// no kill). With the text locked nothing is reclaimable and the cgroup's
// OOM killer fires as on a router. The text is a few MiB, well under the
// default RLIMIT_MEMLOCK (8 MiB); locked pages are charged to the cgroup
// like any other.
func lockFileMappings() (int, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	total := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 00400000-00b2b000 r-xp 00000000 07:00 12  /bin/toybox
		fl := strings.Fields(sc.Text())
		if len(fl) < 6 || fl[4] == "0" || strings.Contains(fl[1], "w") || !strings.HasPrefix(fl[5], "/") {
			continue
		}
		lo, hi, ok := strings.Cut(fl[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, e := syscall.Syscall(syscall.SYS_MLOCK, uintptr(start), uintptr(end-start), 0); e != 0 {
			return total, fmt.Errorf("mlock %s (%s): %w", fl[0], fl[5], e)
		}
		total += int(end - start)
	}
	return total, sc.Err()
}
