package flash

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// Free space policy: an import is refused before it writes a byte when its
// declared size plus the reserve exceeds the space available to us on the
// store's filesystem. The reserve keeps the router's own overlay usable
// (config saves, opkg, logs): by default max(2 MiB, 10% of the filesystem).

const (
	defaultReserveMin     = 2 << 20
	defaultReservePercent = 10
)

// Reserve configures the space kept free. Zero fields take the defaults;
// Bytes < 0 means no reserve.
type Reserve struct {
	Bytes   int64 // fixed reserve; overrides Percent when set
	Percent int   // percent of the filesystem, with a 2 MiB floor
}

// Space is the store filesystem's state.
type Space struct {
	Total   int64 // filesystem size
	Avail   int64 // available to unprivileged writers… and to us
	Reserve int64 // kept free
}

// Usable is what an import may still write.
func (s Space) Usable() int64 {
	if u := s.Avail - s.Reserve; u > 0 {
		return u
	}
	return 0
}

// Space reports the filesystem the store lives on.
func (s *Store) Space() (Space, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(s.root, &st); err != nil {
		return Space{}, fmt.Errorf("store %s: statfs: %w", s.root, err)
	}
	bs := int64(st.Bsize)
	if st.Frsize > 0 {
		bs = int64(st.Frsize)
	}
	sp := Space{Total: int64(st.Blocks) * bs, Avail: int64(st.Bavail) * bs}
	sp.Reserve = s.opt.Reserve.of(sp.Total)
	return sp, nil
}

func (r Reserve) of(total int64) int64 {
	if r.Bytes < 0 {
		return 0
	}
	if r.Bytes > 0 {
		return r.Bytes
	}
	p := r.Percent
	if p <= 0 {
		p = defaultReservePercent
	}
	v := total * int64(p) / 100
	if v < defaultReserveMin {
		v = defaultReserveMin
	}
	return v
}

// NoSpaceError is an import refused or aborted for lack of space.
type NoSpaceError struct {
	Subject string // "image adguard"
	Need    int64  // bytes the import needs (or had written when it ran out)
	Space   Space
	Path    string
}

func (e *NoSpaceError) Error() string {
	return fmt.Sprintf("%s: no space: needs %s plus reserve %s, only %s available in %s",
		e.Subject, HumanBytes(e.Need), HumanBytes(e.Space.Reserve), HumanBytes(e.Space.Avail), e.Path)
}

// checkSpace refuses an import of need bytes that would eat into the reserve.
func (s *Store) checkSpace(subject string, need int64) error {
	sp, err := s.Space()
	if err != nil {
		return err
	}
	if need > sp.Usable() {
		return &NoSpaceError{Subject: subject, Need: need, Space: sp, Path: s.root}
	}
	return nil
}

// asNoSpace turns ENOSPC/EDQUOT during a write into a NoSpaceError.
func (s *Store) asNoSpace(subject string, written int64, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		sp, _ := s.Space()
		return &NoSpaceError{Subject: subject, Need: written, Space: sp, Path: s.root}
	}
	return err
}

// HumanBytes formats n as B, KiB, MiB or GiB with one decimal.
func HumanBytes(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}
