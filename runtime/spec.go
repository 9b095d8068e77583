package runtime

import (
	"fmt"
	"path"
	"strings"
	"syscall"
)

// Spec describes one container. It is plain data (no funcs, no pointers to
// live objects) so the agent can store it as CBOR and the CLI as JSON.
type Spec struct {
	Name     string `json:"name"`
	Hostname string `json:"hostname,omitempty"`

	Rootfs  Rootfs  `json:"rootfs"`
	Process Process `json:"process"`

	// Mounts are bind mounts of host paths (volumes), applied in order.
	Mounts []Mount `json:"mounts,omitempty"`
	// Devices are host device nodes added to the default /dev allow-list.
	Devices []Device `json:"devices,omitempty"`

	Net    NetNS   `json:"net"`
	UserNS *UserNS `json:"userns,omitempty"` // nil: no user namespace

	// CapAdd and CapDrop adjust DefaultCaps ("ALL" allowed in both).
	CapAdd  []string `json:"capAdd,omitempty"`
	CapDrop []string `json:"capDrop,omitempty"`
	// Privileged: every capability, no seccomp, no masked or read-only
	// paths, /sys read-write. The container can take over the host.
	Privileged bool `json:"privileged,omitempty"`
	// NoSeccomp disables the default filter without granting anything else.
	NoSeccomp bool `json:"noSeccomp,omitempty"`

	Resources Resources `json:"resources"`
	Rlimits   []Rlimit  `json:"rlimits,omitempty"`

	// System marks a system container: the image's own init is PID 1 with
	// container=otok, tmpfs /run and /tmp, a console, halted by StopSignal.
	System bool `json:"system,omitempty"`
	// StopSignal is sent by Stop before SIGKILL (0: SIGTERM, or SIGPWR for
	// system containers).
	StopSignal int `json:"stopSignal,omitempty"`

	// Annotations are free-form key/values for the layers above (network
	// state, image reference…). The runtime stores them and never reads them.
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Rootfs is the container's root filesystem.
type Rootfs struct {
	// Path is a directory on the host: a mounted squashfs or a plain
	// directory tree. It is the read-only lower layer.
	Path string `json:"path"`
	// ReadOnly: no writable overlay, the root is Path itself, read-only.
	ReadOnly bool `json:"readOnly,omitempty"`
	// TmpfsSize caps the tmpfs holding the overlay's upper layer (bytes,
	// 0 = DefaultTmpfsSize).
	TmpfsSize int64 `json:"tmpfsSize,omitempty"`
	// UpperDir, when set, is a host directory on disk that holds the
	// overlay's "upper" and "work" directories (created when missing,
	// kept when present) instead of the tmpfs: a persistent writable
	// layer that survives the container. Absolute; not with ReadOnly.
	UpperDir string `json:"upperDir,omitempty"`
	// Image, File and Digest say where Path came from (for ps/inspect and
	// for the layer that mounts and releases it).
	Image  string `json:"image,omitempty"`
	File   string `json:"file,omitempty"`
	Digest string `json:"digest,omitempty"`
}

// DefaultTmpfsSize is the default cap of a container's writable layer.
const DefaultTmpfsSize = 16 << 20

// Process is what runs in the container (also used by Exec).
type Process struct {
	Args     []string `json:"args"`
	Env      []string `json:"env,omitempty"`
	Cwd      string   `json:"cwd,omitempty"`
	UID      int      `json:"uid"`
	GID      int      `json:"gid"`
	Groups   []int    `json:"groups,omitempty"`
	Terminal bool     `json:"terminal,omitempty"`
	// Init runs otok's reaper as PID 1 with Args as its only child.
	Init bool `json:"init,omitempty"`
}

// Mount is a bind mount from the host.
type Mount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly,omitempty"`
}

// Device is a host device node made available in the container's /dev.
type Device struct {
	Path   string `json:"path"`             // on the host
	Target string `json:"target,omitempty"` // in the container ("" = Path)
}

// Network namespace modes.
const (
	NetNew  = ""     // a new, empty network namespace (only lo)
	NetHost = "host" // the host's network namespace
	NetPath = "path" // join the namespace at NetNS.Path
)

// NetNS selects the container's network namespace.
type NetNS struct {
	Mode string `json:"mode,omitempty"`
	Path string `json:"path,omitempty"`
}

// UserNS maps container ids 0..Size-1 to host ids starting at HostUID/HostGID.
type UserNS struct {
	HostUID int `json:"hostUid"`
	HostGID int `json:"hostGid"`
	Size    int `json:"size"`
}

// Default user namespace range: container root is host uid/gid 100000, and
// 65536 ids are mapped (the same range Debian's subuid defaults start at).
const (
	DefaultUserNSBase = 100000
	DefaultUserNSSize = 65536
)

// Resources are cgroup limits; zero means unlimited / default.
type Resources struct {
	Memory     int64   `json:"memory,omitempty"`     // bytes
	MemorySwap int64   `json:"memorySwap,omitempty"` // memory+swap bytes, -1 unlimited
	CPUs       float64 `json:"cpus,omitempty"`       // CPU quota in CPUs
	CPUShares  int64   `json:"cpuShares,omitempty"`  // v1 shares (2..262144)
	CPUWeight  int64   `json:"cpuWeight,omitempty"`  // v2 weight (1..10000)
	PidsLimit  int64   `json:"pidsLimit,omitempty"`
}

// Rlimit is one resource limit, Type as in "nofile", "nproc", "core"…
type Rlimit struct {
	Type string `json:"type"`
	Soft uint64 `json:"soft"`
	Hard uint64 `json:"hard"`
}

// ValidName reports whether s can name a container: 1–64 characters of
// [a-zA-Z0-9_.-], starting with a letter or digit.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '_' || c == '.' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

// Validate checks the spec for mistakes that can be found before anything
// is created.
func (s *Spec) Validate() error {
	if !ValidName(s.Name) {
		return fmt.Errorf("container %q: invalid name (1-64 of a-z A-Z 0-9 _ . -)", s.Name)
	}
	if s.Rootfs.Path == "" {
		return fmt.Errorf("container %s: no root filesystem", s.Name)
	}
	if len(s.Process.Args) == 0 {
		return fmt.Errorf("container %s: no command", s.Name)
	}
	if s.Rootfs.TmpfsSize < 0 {
		return fmt.Errorf("container %s: negative tmpfs size", s.Name)
	}
	if u := s.Rootfs.UpperDir; u != "" {
		if !path.IsAbs(u) {
			return fmt.Errorf("container %s: upper dir %s: must be absolute", s.Name, u)
		}
		if s.Rootfs.ReadOnly {
			return fmt.Errorf("container %s: upper dir %s: a read-only root has no writable layer", s.Name, u)
		}
	}
	for _, m := range s.Mounts {
		if !path.IsAbs(m.Source) || !path.IsAbs(m.Target) {
			return fmt.Errorf("container %s: volume %s:%s: paths must be absolute", s.Name, m.Source, m.Target)
		}
	}
	switch s.Net.Mode {
	case NetNew, NetHost:
	case NetPath:
		if s.Net.Path == "" {
			return fmt.Errorf("container %s: network namespace path missing", s.Name)
		}
	default:
		return fmt.Errorf("container %s: unknown network namespace mode %q", s.Name, s.Net.Mode)
	}
	if u := s.UserNS; u != nil && (u.Size <= 0 || u.HostUID < 0 || u.HostGID < 0) {
		return fmt.Errorf("container %s: bad user namespace map %+v", s.Name, *u)
	}
	if _, err := s.capabilities(); err != nil {
		return fmt.Errorf("container %s: %w", s.Name, err)
	}
	for _, r := range s.Rlimits {
		if _, ok := rlimitTypes[strings.ToLower(r.Type)]; !ok {
			return fmt.Errorf("container %s: unknown rlimit %q", s.Name, r.Type)
		}
	}
	if err := s.Resources.validate(); err != nil {
		return fmt.Errorf("container %s: %w", s.Name, err)
	}
	return nil
}

func (r *Resources) validate() error {
	switch {
	case r.Memory < 0:
		return fmt.Errorf("memory limit must be positive")
	case r.Memory > 0 && r.Memory < 4<<20:
		return fmt.Errorf("memory limit %d below the 4 MiB minimum", r.Memory)
	case r.MemorySwap > 0 && r.MemorySwap < r.Memory:
		return fmt.Errorf("memory-swap %d smaller than memory %d", r.MemorySwap, r.Memory)
	case r.MemorySwap > 0 && r.Memory == 0:
		return fmt.Errorf("memory-swap needs a memory limit")
	case r.CPUs < 0:
		return fmt.Errorf("cpus must be positive")
	case r.CPUShares != 0 && (r.CPUShares < 2 || r.CPUShares > 262144):
		return fmt.Errorf("cpu-shares %d out of range 2-262144", r.CPUShares)
	case r.CPUWeight != 0 && (r.CPUWeight < 1 || r.CPUWeight > 10000):
		return fmt.Errorf("cpu-weight %d out of range 1-10000", r.CPUWeight)
	case r.PidsLimit < 0:
		return fmt.Errorf("pids-limit must be positive")
	}
	return nil
}

// stopSignal is the signal Stop sends first.
func (s *Spec) stopSignal() syscall.Signal {
	switch {
	case s.StopSignal > 0:
		return syscall.Signal(s.StopSignal)
	case s.System:
		return syscall.SIGPWR
	}
	return syscall.SIGTERM
}
