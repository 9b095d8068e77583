package runtime

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// OpenPty returns a new pseudo-terminal from the host's /dev/ptmx: the
// master for whoever holds the console (CLI, monitor, agent) and the slave
// for the container's stdio (Process.Terminal).
func OpenPty() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("pty: %w", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("pty: unlock: %w", err)
	}
	s, err := ptyPeer(m)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, s, nil
}

// ptyPeer opens the slave of master (TIOCGPTPEER: no path lookup in a
// devpts that may not be the master's; /dev/pts/N before Linux 4.13).
func ptyPeer(m *os.File) (*os.File, error) {
	fd, _, errno := unix.Syscall(unix.SYS_IOCTL, m.Fd(), unix.TIOCGPTPEER, uintptr(unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC))
	if errno == 0 {
		return os.NewFile(fd, "pty-slave"), nil
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		return nil, fmt.Errorf("pty: number: %w", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("pty: open slave: %w", err)
	}
	return s, nil
}
