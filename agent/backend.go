package agent

import (
	"context"
	"os"
	"syscall"
	"time"
)

// The agent's view of the parts it drives: small interfaces, defined here
// where they are consumed, so tests can put a recorded part in place of a
// real one. Adapters to the real packages live in adapt_*.go.

// Runtime is the agent's view of runtime/: one container's lifecycle.
type Runtime interface {
	// Create makes the container's init for s, held on its sync pipe
	// before exec (so networking can be set up), with the agent as its
	// parent. The init's stdout and stderr go to s.LogPath.
	Create(ctx context.Context, s *RunSpec) (Proc, error)
	// Start lets a created init exec the container's process.
	Start(ctx context.Context, name string) error
	// Kill sends sig to the container's init.
	Kill(ctx context.Context, name string, sig syscall.Signal) error
	// Wait blocks until the container's init exits. For a container the
	// agent did not create (re-adopted after an agent restart) the runtime
	// may not know the exit status: ExitInfo.Unknown.
	Wait(ctx context.Context, name string, p Proc) (*ExitInfo, error)
	// Delete removes what Create made (cgroup, mounts, state); the init
	// must have exited.
	Delete(ctx context.Context, name string) error
	// List returns the containers the runtime has state for.
	List(ctx context.Context) ([]RuntimeState, error)
	// Exec runs args inside the running container and returns its exit code.
	Exec(ctx context.Context, name string, args []string) (int, error)
	// Stats reads the container's cgroup counters.
	Stats(ctx context.Context, name string) (Stats, error)
}

// LimitUpdater is implemented by runtimes that can change cgroup limits of
// a running container (profile/limit edits applied live).
type LimitUpdater interface {
	Update(ctx context.Context, name string, l Limits) error
}

// Proc identifies a process across pid reuse: its pid and its start time
// (field 22 of /proc/PID/stat, clock ticks since boot).
type Proc struct {
	Pid       int    `cbor:"pid" json:"pid"`
	StartTime uint64 `cbor:"start" json:"start"`
}

// RunSpec is what the runtime needs to create one container.
type RunSpec struct {
	Spec    *ContainerSpec
	Image   *Image // resolved image (defaults for args, env, cwd)
	Rootfs  string // mounted image root (read-only lower layer)
	LogPath string // file on tmpfs for the init's stdout+stderr (append)
	// StateDir is the runtime's state dir (shared with the CLI).
	StateDir string
	// UpperDir, for a persistent container, is the directory on flash
	// holding the overlay's upper and work dirs (persist.go).
	UpperDir string
	// Console, for a tty container, is the pty slave to give the init as
	// stdin, stdout and stderr (its controlling terminal) instead of the
	// log file; the agent holds the master (console.go).
	Console *os.File
	// ConsoleMaster is the master of Console. A runtime that can make the
	// container's init keep a dup of it (surviving the agent) does so and
	// sets ConsoleKeptFd to its fd number in the init.
	ConsoleMaster *os.File
	ConsoleKeptFd int
}

// RuntimeState is one container as the runtime sees it.
type RuntimeState struct {
	Name    string
	Proc    Proc
	Running bool
	Image   string
	Digest  string
	Created time.Time
	// Agent: created by an otok agent (not by `otok run` and its monitor).
	Agent bool
}

// Image is a resolved image from the store.
type Image struct {
	Name    string   `cbor:"name" json:"name"`
	Version string   `cbor:"version,omitempty" json:"version,omitempty"`
	Digest  string   `cbor:"digest" json:"digest"`
	File    string   `cbor:"file,omitempty" json:"file,omitempty"` // squashfs file, or a directory image
	Args    []string `cbor:"args,omitempty" json:"args,omitempty"`
	Env     []string `cbor:"env,omitempty" json:"env,omitempty"`
	Cwd     string   `cbor:"cwd,omitempty" json:"cwd,omitempty"`
	User    string   `cbor:"user,omitempty" json:"user,omitempty"`
}

// Store is the agent's view of flash/: resolve an image and mount it for a
// container (refcounted per user), and the store commands of the API.
type Store interface {
	Resolve(ctx context.Context, ref string) (*Image, error)
	Mount(ctx context.Context, img *Image, user string) (rootfs string, err error)
	Release(ctx context.Context, img *Image, user string) error
}

// ImageStore is the part of the store behind the image.* and df ops.
type ImageStore interface {
	Import(ctx context.Context, r *ImageImportRequest) (*ImageInfo, error)
	List(ctx context.Context) ([]ImageInfo, error)
	Remove(ctx context.Context, ref string) error
	GC(ctx context.Context, inUse func(digest string) bool) (*GCReply, error)
	DF(ctx context.Context) (*DFReply, error)
}

// Network is the agent's view of netcfg/: attach a container's init (by
// pid, before it execs) to its network, detach it after it exits.
type Network interface {
	Attach(ctx context.Context, s *ContainerSpec, p Proc) (*NetInfo, error)
	Detach(ctx context.Context, name string) error
}

// Clock is time for supervision (backoff, health intervals), injectable
// for tests.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a stoppable pending call.
type Timer interface{ Stop() bool }

type realClock struct{}

func (realClock) Now() time.Time                            { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }
