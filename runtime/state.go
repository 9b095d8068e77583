package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Container states.
const (
	StatusCreated = "created" // init waiting to exec the user process
	StatusRunning = "running"
	StatusStopped = "stopped"
)

// State is what the runtime records about a container in
// <root>/containers/<name>/state.json (on tmpfs).
type State struct {
	Spec       Spec      `json:"spec"`
	Status     string    `json:"status"`
	Pid        int       `json:"pid"`                // init, in the host pid namespace
	PidStart   uint64    `json:"pidStart,omitempty"` // its start time, against pid reuse
	ParentPid  int       `json:"parentPid,omitempty"`
	Created    time.Time `json:"created"`
	Started    time.Time `json:"started,omitzero"`
	Finished   time.Time `json:"finished,omitzero"`
	ExitCode   int       `json:"exitCode"`
	OOMKilled  bool      `json:"oomKilled,omitempty"`
	ExitReason string    `json:"exitReason,omitempty"`
	Cgroups    []string  `json:"cgroups,omitempty"`
	CgroupVer  int       `json:"cgroupVersion,omitempty"`
	Caps       []string  `json:"capabilities,omitempty"`
	Seccomp    bool      `json:"seccomp"`
	// Warnings are what Create had to do differently from the spec (e.g.
	// a user namespace without an idmapped image), for the caller to show.
	Warnings []string `json:"warnings,omitempty"`
}

// ErrNotFound is returned for an unknown container name.
var ErrNotFound = errors.New("no such container")

func (r *Runtime) containersDir() string { return filepath.Join(r.Root, "containers") }

// Dir is the state directory of container name.
func (r *Runtime) Dir(name string) string { return filepath.Join(r.containersDir(), name) }

func (r *Runtime) statePath(name string) string { return filepath.Join(r.Dir(name), "state.json") }

// lock takes the container's exclusive lock (flock on its lock file).
func (r *Runtime) lock(name string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(r.Dir(name), "lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("container %s: %w", name, ErrNotFound)
		}
		return nil, fmt.Errorf("container %s: lock: %w", name, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("container %s: lock: %w", name, err)
	}
	return func() { f.Close() }, nil
}

// load reads the recorded state without checking liveness.
func (r *Runtime) load(name string) (*State, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("container %q: %w", name, ErrNotFound)
	}
	b, err := os.ReadFile(r.statePath(name))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("container %s: %w", name, ErrNotFound)
		}
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("container %s: corrupt state: %w", name, err)
	}
	return &s, nil
}

// save writes the state atomically; it does nothing if the container's
// directory is gone (removed concurrently).
func (r *Runtime) save(s *State) error {
	b, err := encodeState(s)
	if err != nil {
		return err
	}
	return r.writeState(s.Spec.Name, b)
}

func encodeState(s *State) ([]byte, error) { return json.MarshalIndent(s, "", "  ") }

// writeState replaces the container's state.json with b.
func (r *Runtime) writeState(name string, b []byte) error {
	tmp := filepath.Join(r.Dir(name), ".state.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("container %s: save state: %w", name, err)
	}
	return os.Rename(tmp, r.statePath(name))
}

// State returns the container's state with liveness checked: a created or
// running container whose init is gone is reported stopped.
func (r *Runtime) State(name string) (*State, error) {
	s, err := r.load(name)
	if err != nil {
		return nil, err
	}
	stateLoaded()
	// A record that says the init runs while the init is gone: its parent
	// (a monitor, an agent) records the exit under the lock, then exits.
	// Liveness is looked at once per record read: the init can die
	// between two looks, and a second look must not turn a record that
	// was current (init alive) into "init gone" without the wait below.
	// The record is read again after each look at the parent: the read
	// above can predate the parent's save, and the parent can have saved
	// and exited since. On a slow single-CPU router a reader is easily
	// descheduled that long (mipsel guest, TestStartStopped: "init gone"
	// with the right record on disk right after). While the parent lives,
	// it gets a moment rather than an unknown exit being reported.
	gone := s.Status != StatusStopped && !s.alive()
	for deadline := time.Now().Add(200 * time.Millisecond); gone; {
		recording := s.ParentPid > 0 && s.ParentPid != os.Getpid() && pidAlive(s.ParentPid, 0)
		if s, err = r.load(name); err != nil {
			return nil, err
		}
		gone = s.Status != StatusStopped && !s.alive()
		if !recording || time.Now().After(deadline) {
			break
		}
		if gone {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if gone {
		Tracef("state %s: init %d gone, parent %d alive %v, no exit recorded", name, s.Pid, s.ParentPid, pidAlive(s.ParentPid, 0))
		s.Status = StatusStopped
		if s.ExitReason == "" {
			s.ExitReason = "init gone (exit not collected)"
			s.ExitCode = -1
		}
	}
	return s, nil
}

// stateLoaded is called by State after its first read (tests: what
// another process does right then).
var stateLoaded = func() {}

// alive reports whether the recorded init process still runs.
func (s *State) alive() bool { return s.Pid > 0 && pidAlive(s.Pid, s.PidStart) }

// Alive reports whether the container's init is running.
func (s *State) Alive() bool { return s.Status != StatusStopped && s.alive() }

// List returns every container's state, sorted by creation.
func (r *Runtime) List() ([]*State, error) {
	ents, err := os.ReadDir(r.containersDir())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []*State
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		s, err := r.State(e.Name())
		if err != nil {
			continue // being created or removed
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// SetAnnotations merges kv into the container's annotations ("" deletes).
func (r *Runtime) SetAnnotations(name string, kv map[string]string) error {
	unlock, err := r.lock(name)
	if err != nil {
		return err
	}
	defer unlock()
	s, err := r.load(name)
	if err != nil {
		return err
	}
	if s.Spec.Annotations == nil {
		s.Spec.Annotations = map[string]string{}
	}
	for k, v := range kv {
		if v == "" {
			delete(s.Spec.Annotations, k)
		} else {
			s.Spec.Annotations[k] = v
		}
	}
	return r.save(s)
}

// procStart returns the start time (clock ticks since boot) of pid.
func procStart(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// Fields after the command (which may contain spaces) in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, false
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, false // zombie: exited, not yet reaped
	}
	n, err := strconv.ParseUint(f[19], 10, 64)
	return n, err == nil
}

func pidAlive(pid int, start uint64) bool {
	st, ok := procStart(pid)
	return ok && (start == 0 || st == start)
}
