package board

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// ReleasePath is where OpenWrt describes its release.
const ReleasePath = "/etc/openwrt_release"

// Release is /etc/openwrt_release: shell assignments written by OpenWrt's
// base-files (DISTRIB_ID='OpenWrt', DISTRIB_RELEASE='24.10.5', …).
type Release struct {
	ID          string `json:"id"`          // DISTRIB_ID, "OpenWrt"
	Version     string `json:"version"`     // DISTRIB_RELEASE, "24.10.5" or "SNAPSHOT"
	Revision    string `json:"revision"`    // DISTRIB_REVISION, "r29087-d9c5716d1d"
	Target      string `json:"target"`      // DISTRIB_TARGET, "ramips/mt7621"
	Arch        string `json:"arch"`        // DISTRIB_ARCH, "mipsel_24kc"
	Description string `json:"description"` // DISTRIB_DESCRIPTION
}

// ReadRelease reads and parses an openwrt_release file. A missing file
// returns an error wrapping os.ErrNotExist (the host is not OpenWrt).
func ReadRelease(path string) (*Release, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := ParseRelease(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// ParseRelease parses KEY='value' lines. Unknown keys are ignored; a line
// that is not an assignment, or an unterminated quote, is an error naming
// the line.
func ParseRelease(r io.Reader) (*Release, error) {
	rel := &Release{}
	fields := map[string]*string{
		"DISTRIB_ID":          &rel.ID,
		"DISTRIB_RELEASE":     &rel.Version,
		"DISTRIB_REVISION":    &rel.Revision,
		"DISTRIB_TARGET":      &rel.Target,
		"DISTRIB_ARCH":        &rel.Arch,
		"DISTRIB_DESCRIPTION": &rel.Description,
	}
	sc := bufio.NewScanner(io.LimitReader(r, 64<<10))
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		key, val, ok := strings.Cut(s, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: not a KEY=value assignment", line)
		}
		v, err := unquoteShell(val)
		if err != nil {
			return nil, fmt.Errorf("line %d: %s: %w", line, key, err)
		}
		if p, ok := fields[key]; ok {
			*p = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if rel.ID == "" && rel.Version == "" {
		return nil, fmt.Errorf("no DISTRIB_ID or DISTRIB_RELEASE")
	}
	return rel, nil
}

// unquoteShell undoes the quoting base-files uses: 'single', "double" or
// bare words.
func unquoteShell(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	switch q := s[0]; q {
	case '\'', '"':
		if len(s) < 2 || s[len(s)-1] != q {
			return "", fmt.Errorf("unterminated %c quote", q)
		}
		return s[1 : len(s)-1], nil
	}
	return s, nil
}
