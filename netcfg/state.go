package netcfg

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Record is what netcfg remembers about one attached container, in
// <state>/<container>.json (tmpfs): enough to detach it after the process
// that attached it has exited, and to judge conflicts with later ones.
type Record struct {
	Container string `json:"container"`
	Spec      Spec   `json:"spec"`
	NetNS     string `json:"netns"`            // container namespace path
	HostNS    string `json:"hostns,omitempty"` // "" = the initial one
	// Lower is the resolved port (macvlan/ipvlan) or bridge device.
	Lower string `json:"lower,omitempty"`
	// Parent is what the macvlan/ipvlan sits on: Lower, or VLANLink.
	Parent string `json:"parent,omitempty"`
	// VLANLink is the VLAN sub-interface used; VLANOwned says otok made it
	// (and removes it with its last user).
	VLANLink  string `json:"vlan_link,omitempty"`
	VLANOwned bool   `json:"vlan_owned,omitempty"`
	HostLink  string `json:"host_link,omitempty"` // veth host end
	IfName    string `json:"ifname,omitempty"`    // link inside the container
	MAC       string `json:"mac,omitempty"`
	// Addrs are the addresses configured in the container, DHCP's included.
	Addrs   []netip.Prefix `json:"addrs,omitempty"`
	Gateway []netip.Addr   `json:"gateway,omitempty"`
	DNS     []string       `json:"dns,omitempty"`
	Lease   *Lease         `json:"lease,omitempty"`
	// Complete is false while Attach is still working: a record left that
	// way belongs to a crashed attach.
	Complete bool `json:"complete"`
}

// stateLock serialises attach/detach/sweep on one state directory: link
// reference counts and address conflicts are decided from the records.
type stateLock struct{ f *os.File }

func lockState(dir string) (*stateLock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("network state %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("network state %s: %w", dir, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("network state %s: lock: %w", dir, err)
	}
	return &stateLock{f}, nil
}

func (l *stateLock) unlock() { l.f.Close() }

func recordPath(dir, container string) string {
	return filepath.Join(dir, container+".json")
}

// saveRecord writes a record atomically (temp file, rename).
func saveRecord(dir string, r *Record) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	p := recordPath(dir, r.Container)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("network state %s: %w", r.Container, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("network state %s: %w", r.Container, err)
	}
	return nil
}

// LoadRecord reads one container's record; os.ErrNotExist when it has none.
func LoadRecord(dir, container string) (*Record, error) {
	data, err := os.ReadFile(recordPath(dir, container))
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("network state %s: %w", container, err)
	}
	return &r, nil
}

// Records reads every record in dir, sorted by container name. Unreadable
// records are skipped (and reported in the error) rather than blocking
// every other container.
func Records(dir string) ([]*Record, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Record
	var errs []error
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(name, ".") {
			continue
		}
		r, err := LoadRecord(dir, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Container < out[j].Container })
	return out, errors.Join(errs...)
}

func removeRecord(dir, container string) error {
	err := os.Remove(recordPath(dir, container))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
