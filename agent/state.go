package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"time"
)

// Agent state lives on tmpfs under the state dir (<state>/agent/state.cbor,
// default /var/run/otok): the containers created through the API and what
// the agent needs to re-adopt running containers after its own restart
// (pid and start time, the spec the instance was created with, restart
// counters, network). Nothing here survives a reboot, and nothing is
// written to flash: what must survive a reboot is in the UCI file. The
// file is written atomically (temp file, rename) and only when its bytes
// change.

const stateVersion = 1

type stateFile struct {
	Version int                       `cbor:"v"`
	API     map[string]*ContainerSpec `cbor:"api,omitempty"`
	Ctrs    map[string]*ctrRecord     `cbor:"ctrs,omitempty"`
}

type ctrRecord struct {
	Proc        Proc           `cbor:"proc"`
	Running     bool           `cbor:"running,omitempty"`
	Run         *ContainerSpec `cbor:"run,omitempty"`
	Image       *Image         `cbor:"image,omitempty"`
	Net         *NetInfo       `cbor:"net,omitempty"`
	Created     time.Time      `cbor:"created,omitempty"`
	Started     time.Time      `cbor:"started,omitempty"`
	Restarts    int            `cbor:"restarts,omitempty"`
	Failures    int            `cbor:"failures,omitempty"`
	UserStopped bool           `cbor:"userStopped,omitempty"`
	Want        bool           `cbor:"want,omitempty"`
	Health      string         `cbor:"health,omitempty"`
	// ConsoleFd: the container's init keeps a dup of its console's pty
	// master at this fd number (console.go); 0: none.
	ConsoleFd int `cbor:"consoleFd,omitempty"`
}

func (a *Agent) statePath() string { return filepath.Join(a.agentDir(), "state.cbor") }

// saveState writes the state file if it changed.
func (a *Agent) saveState() {
	// One saver at a time from snapshot to write: two savers could
	// otherwise write their snapshots in the other order, leaving the
	// older one on disk.
	a.stateMu.Lock()
	defer a.stateMu.Unlock()
	a.mu.Lock()
	st := stateFile{Version: stateVersion, API: map[string]*ContainerSpec{}, Ctrs: map[string]*ctrRecord{}}
	for n, s := range a.api {
		st.API[n] = s
	}
	for n, c := range a.ctrs {
		r := &ctrRecord{Proc: c.proc, Running: c.running(), Run: c.run, Image: c.img, Net: c.net,
			Created: c.created, Started: c.started, Restarts: c.restarts, Failures: c.failures,
			UserStopped: c.userStopped, Health: c.health, Want: c.want, ConsoleFd: c.consoleFd}
		// An instance being started (a process, not yet shown running)
		// is remembered too: supervise saves it then so that a re-adopting
		// agent keeps its start time.
		if !r.Running && c.proc.Pid == 0 && !r.UserStopped && r.Restarts == 0 && c.exit == nil {
			continue // nothing to remember
		}
		st.Ctrs[n] = r
	}
	a.dirty = false
	path := a.statePath()
	a.mu.Unlock()

	b, err := encMode.Marshal(st)
	if err != nil {
		a.log.Printf("state: encode: %v", err)
		return
	}
	if bytes.Equal(b, a.lastState) {
		return
	}
	if err := writeAtomic(path, b); err != nil {
		a.log.Printf("state: %v", err)
		return
	}
	a.lastState = b
}

// loadState reads the state file (a missing or unreadable one is an empty
// state: the agent then only knows the UCI file).
func (a *Agent) loadState() *stateFile {
	st := &stateFile{}
	b, err := os.ReadFile(a.statePath())
	if err != nil {
		if !os.IsNotExist(err) {
			a.log.Printf("state: %v", err)
		}
		return st
	}
	if err := decMode.Unmarshal(b, st); err != nil || st.Version != stateVersion {
		a.log.Printf("state %s: unreadable (%v), starting from the config alone", a.statePath(), err)
		return &stateFile{}
	}
	a.lastState = b
	return st
}

// writeAtomic writes b to path via a temp file and rename.
func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
