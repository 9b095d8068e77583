package board

import (
	"os"
	"runtime"
)

// Status of one feature.
type Status string

const (
	OK      Status = "ok"      // present and usable
	Missing Status = "missing" // absent: otok cannot use it
	Limited Status = "limited" // present with a restriction, or loadable but not loaded
)

// Feature is one line of the `otok check` table.
type Feature struct {
	Group    string `json:"group"`  // "namespace", "cgroup", "filesystem", …
	Name     string `json:"name"`   // "mnt", "memory", "squashfs", …
	Status   Status `json:"status"` // ok / missing / limited
	Required bool   `json:"required"`
	Detail   string `json:"detail,omitempty"` // what was found
	Hint     string `json:"hint,omitempty"`   // what to do about it
}

// Report is the whole check: the device and its features.
type Report struct {
	Release  *Release  `json:"release,omitempty"` // nil off OpenWrt
	Board    *Board    `json:"board,omitempty"`   // nil without board.json
	Kernel   string    `json:"kernel"`
	Machine  string    `json:"machine"`
	Features []Feature `json:"features"`
	// OK is true when every required feature is ok or limited.
	OK bool `json:"ok"`
	// Notes carry problems reading the board description (e.g. a malformed
	// board.json): reported, not fatal.
	Notes []string `json:"notes,omitempty"`
}

// CheckOptions says where to look. Zero values mean the real system paths.
type CheckOptions struct {
	StorePath   string // planned image store directory (may not exist yet)
	ReleasePath string // default ReleasePath
	BoardPath   string // default BoardJSONPath
	ProcRoot    string // default "/proc"
	SysRoot     string // default "/sys"
	// Probe enables probes that exercise the kernel in throwaway namespaces
	// (link creation, pivot_root, seccomp). They need root; without it the
	// checks fall back to reading /proc and /sys.
	Probe bool
}

func (o *CheckOptions) defaults() {
	if o.ReleasePath == "" {
		o.ReleasePath = ReleasePath
	}
	if o.BoardPath == "" {
		o.BoardPath = BoardJSONPath
	}
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	if o.SysRoot == "" {
		o.SysRoot = "/sys"
	}
}

// Check inspects the running system.
func Check(opts CheckOptions) *Report {
	opts.defaults()
	r := &Report{Kernel: kernelRelease(), Machine: machine()}
	if rel, err := ReadRelease(opts.ReleasePath); err == nil {
		r.Release = rel
	} else if !os.IsNotExist(err) {
		r.Notes = append(r.Notes, err.Error())
	}
	if b, err := ReadBoardJSON(opts.BoardPath); err == nil {
		r.Board = b
	} else if !os.IsNotExist(err) {
		r.Notes = append(r.Notes, err.Error())
	}
	mods := newModuleIndex(r.Kernel, opts.ProcRoot)
	r.Features = append(r.Features, checkNamespaces(opts.ProcRoot)...)
	r.Features = append(r.Features, checkCgroups(opts.ProcRoot)...)
	r.Features = append(r.Features, checkFilesystems(opts.ProcRoot, mods)...)
	r.Features = append(r.Features, checkLoop(opts.ProcRoot, mods))
	r.Features = append(r.Features, checkLinks(opts.Probe, opts.SysRoot, mods)...)
	r.Features = append(r.Features, checkSecurity(opts.ProcRoot, opts.Probe)...)
	r.Features = append(r.Features, checkPivotRoot(opts.ProcRoot, opts.Probe))
	r.Features = append(r.Features, checkStore(opts.StorePath))
	r.Features = append(r.Features, checkMemory(opts.ProcRoot))
	r.OK = true
	for _, f := range r.Features {
		if f.Required && f.Status == Missing {
			r.OK = false
		}
	}
	return r
}

// machine is the kernel's machine name (uname -m), or GOARCH if unknown.
func machine() string {
	if m := utsField(func(u *utsname) []byte { return u.Machine[:] }); m != "" {
		return m
	}
	return runtime.GOARCH
}

func kernelRelease() string {
	return utsField(func(u *utsname) []byte { return u.Release[:] })
}
