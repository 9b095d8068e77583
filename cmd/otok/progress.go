package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/otok/otok/flash"
	"golang.org/x/sys/unix"
)

// progress draws a one-line progress bar on stderr when it is a terminal
// (a dozen lines instead of a progress-bar library: every dependency costs
// flash on the router).
type progress struct {
	w      io.Writer
	label  string
	total  int64 // -1 unknown
	done   int64
	start  time.Time
	last   time.Time
	active bool
}

func isTerminalWriter(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func newProgress(e *env, label string, total int64) *progress {
	return &progress{w: e.stderr, label: label, total: total, start: time.Now(), active: isTerminalWriter(e.stderr)}
}

func (p *progress) add(n int) {
	p.done += int64(n)
	if !p.active || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	p.draw()
}

func (p *progress) draw() {
	rate := float64(p.done) / time.Since(p.start).Seconds()
	if p.total > 0 {
		frac := float64(p.done) / float64(p.total)
		if frac > 1 {
			frac = 1
		}
		const width = 30
		n := int(frac * width)
		fmt.Fprintf(p.w, "\r%s [%s%s] %3.0f%% %s/%s %s/s ", p.label, strings.Repeat("=", n), strings.Repeat(" ", width-n),
			frac*100, flash.HumanBytes(p.done), flash.HumanBytes(p.total), flash.HumanBytes(int64(rate)))
	} else {
		fmt.Fprintf(p.w, "\r%s %s %s/s ", p.label, flash.HumanBytes(p.done), flash.HumanBytes(int64(rate)))
	}
}

// finish clears the line.
func (p *progress) finish() {
	if p.active && !p.last.IsZero() {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", 100))
	}
}

// reader counts what is read through r into the bar.
func (p *progress) reader(r io.Reader) io.Reader { return &progressReader{r, p} }

type progressReader struct {
	r io.Reader
	p *progress
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.p.add(n)
	return n, err
}
