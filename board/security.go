package board

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

func checkSecurity(procRoot string, probe bool) []Feature {
	return []Feature{checkSeccomp(procRoot), checkNoNewPrivs()}
}

// checkSeccomp asks the kernel to install a NULL filter: EFAULT means the
// filter mode exists (the kernel tried to copy the program), EINVAL that it
// does not. Nothing is installed either way.
func checkSeccomp(procRoot string) Feature {
	f := Feature{Group: "security", Name: "seccomp", Required: true}
	if !statusHasField(filepath.Join(procRoot, "self/status"), "Seccomp:") {
		f.Status, f.Hint = Missing, "kernel needs CONFIG_SECCOMP and CONFIG_SECCOMP_FILTER"
		return f
	}
	err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, 0, 0, 0)
	switch {
	case errors.Is(err, unix.EFAULT), errors.Is(err, unix.EACCES):
		f.Status, f.Detail = OK, "filter mode"
		if b, err := os.ReadFile(filepath.Join(procRoot, "sys/kernel/seccomp/actions_avail")); err == nil {
			f.Detail += "; actions: " + strings.TrimSpace(string(b))
		}
	case errors.Is(err, unix.EINVAL):
		f.Status, f.Detail = Missing, "strict mode only"
		f.Hint = "kernel needs CONFIG_SECCOMP_FILTER (or this runs under qemu-user, which refuses seccomp)"
	default:
		f.Status, f.Detail = Limited, "probe: "+errString(err)
	}
	return f
}

func checkNoNewPrivs() Feature {
	f := Feature{Group: "security", Name: "no_new_privs", Required: true}
	if _, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err != nil {
		f.Status, f.Detail, f.Hint = Missing, errString(err), "kernel older than 3.5"
		return f
	}
	f.Status = OK
	return f
}

func statusHasField(path, field string) bool {
	fh, err := os.Open(path)
	if err != nil {
		return false
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), field) {
			return true
		}
	}
	return false
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
