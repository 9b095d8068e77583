package main

import (
	"io"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// terminal puts the caller's terminal in raw mode and keeps the pty's
// window size in sync; restore undoes both.
type terminal struct {
	in    *os.File
	saved *unix.Termios
	sigs  chan os.Signal
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func setupTerminal(in *os.File, master *os.File) *terminal {
	t := &terminal{in: in}
	if in == nil || !isTerminal(in) {
		return t
	}
	t.saved = makeRaw(in)
	resize := func() {
		if ws, err := unix.IoctlGetWinsize(int(in.Fd()), unix.TIOCGWINSZ); err == nil {
			unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws)
		}
	}
	resize()
	t.sigs = make(chan os.Signal, 1)
	signal.Notify(t.sigs, syscall.SIGWINCH)
	go func() {
		for range t.sigs {
			resize()
		}
	}()
	return t
}

func (t *terminal) restore() {
	if t.sigs != nil {
		signal.Stop(t.sigs)
		close(t.sigs)
	}
	if t.saved != nil {
		unix.IoctlSetTermios(int(t.in.Fd()), unix.TCSETS, t.saved)
	}
}

// copyPty shuttles the pty to the caller's streams; done closes when the
// container side has closed (EIO on the master).
func copyPty(master *os.File, in io.Reader, out io.Writer) (done chan struct{}) {
	done = make(chan struct{})
	if in != nil {
		go io.Copy(master, in)
	}
	go func() {
		io.Copy(out, master)
		close(done)
	}()
	return done
}

// makeRaw puts the terminal in raw mode (cfmakeraw's settings) and returns
// the settings to restore, nil when in is not a terminal.
func makeRaw(in *os.File) *unix.Termios {
	tio, err := unix.IoctlGetTermios(int(in.Fd()), unix.TCGETS)
	if err != nil {
		return nil
	}
	saved := *tio
	tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	tio.Cflag &^= unix.CSIZE | unix.PARENB
	tio.Cflag |= unix.CS8
	tio.Cc[unix.VMIN] = 1
	tio.Cc[unix.VTIME] = 0
	unix.IoctlSetTermios(int(in.Fd()), unix.TCSETS, tio)
	return &saved
}
