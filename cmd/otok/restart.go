package main

// Starting a stopped container again without the agent (`otok start` of
// an exited container, as `docker start` / `lxc-start` do).
//
// The runtime only starts *created* containers: its init stage waits on a
// start fifo, and once it has exited there is nothing left to release. So
// the CLI re-creates the container from what the runtime recorded: the
// same spec (name, process, limits, capabilities, volumes, resolved
// user), the same image (the squashfs is acquired again through
// mountImage, by the file and digest recorded), the same network options
// (recorded at run/create in the annotationNet annotation, attached again
// by startDetached), with a fresh writable layer: the overlay's upper
// directory is a new tmpfs, so what the previous run wrote is gone. The
// container gets a new monitor like any detached one; its log starts
// with the new run.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/otok/otok/runtime"
	"golang.org/x/sys/unix"
)

// startHelp is printed after the options of `otok start --help`.
const startHelp = `
A created container is started as it was set up. A stopped (exited)
container is created again from its recorded spec and started: same name,
image, command, limits, volumes and network options, a new monitor, and a
new, empty writable layer. Nothing written to the container's root
filesystem survives a stop (it lives on a RAM-backed tmpfs; keep data in
a volume, -v), and 'otok logs' shows the new run only. It runs detached,
also when first run in the foreground. A running container is an error,
as is a removed one.
`

// Annotations recording the run/create options the runtime's spec does
// not carry, so that a stopped container can be started again.
const (
	annotationNet         = "otok.net"         // JSON of netRecord
	annotationInteractive = "otok.interactive" // "true": -i (stdin kept open)
)

// netRecord is the network flags of run/create as given.
type netRecord struct {
	Net     string   `json:"net,omitempty"`
	IP      []string `json:"ip,omitempty"`
	MAC     string   `json:"mac,omitempty"`
	DNS     []string `json:"dns,omitempty"`
	Publish []string `json:"publish,omitempty"`
}

// recordRunOptions stores in spec's annotations what starting the
// container again needs beyond the spec itself.
func recordRunOptions(spec *runtime.Spec, f *containerFlags) {
	set := func(k, v string) {
		if spec.Annotations == nil {
			spec.Annotations = map[string]string{}
		}
		spec.Annotations[k] = v
	}
	if n := f.net; n != nil && (n.net != "" && n.net != "none" || len(n.ips) > 0 || n.mac != "" || len(n.dns) > 0 || len(n.publish) > 0) {
		b, _ := json.Marshal(netRecord{Net: n.net, IP: n.ips, MAC: n.mac, DNS: n.dns, Publish: n.publish})
		set(annotationNet, string(b))
	}
	if f.interactive {
		set(annotationInteractive, "true")
	}
}

// flagsFromRecord rebuilds the run/create flags that startDetached and
// mountImage read from a recorded spec.
func flagsFromRecord(spec *runtime.Spec) (*containerFlags, error) {
	a := spec.Annotations
	f := &containerFlags{net: &netOpts{net: "none"}}
	if js := a[annotationNet]; js != "" {
		var n netRecord
		if err := json.Unmarshal([]byte(js), &n); err != nil {
			return nil, fmt.Errorf("container %s: recorded network options: %w", spec.Name, err)
		}
		if n.Net != "" {
			f.net.net = n.Net
		}
		f.net.ips, f.net.mac, f.net.dns, f.net.publish = n.IP, n.MAC, n.DNS, n.Publish
	} else if spec.Net.Mode == runtime.NetHost {
		f.net.net = "host"
	}
	if err := f.net.validate(); err != nil {
		return nil, fmt.Errorf("container %s: recorded network options: %v", spec.Name, err)
	}
	f.interactive = a[annotationInteractive] == "true"
	f.rm = a[annotationAutoRemove] == "true"
	f.readOnly = spec.Rootfs.ReadOnly
	// Resolved against the image when the container was created; given
	// numerically, mountImage keeps it.
	f.user = fmt.Sprintf("%d:%d", spec.Process.UID, spec.Process.GID)
	return f, nil
}

// startContainer starts a created container, or a stopped one again
// (restartStopped). Without the agent.
func startContainer(ctx context.Context, e *env, r *runtime.Runtime, name string) error {
	sweepContainers(ctx, e, r)
	st, err := r.State(name)
	if err != nil {
		return err
	}
	switch {
	case st.Alive() && st.Status == runtime.StatusCreated:
		return r.Start(ctx, name)
	case st.Alive():
		return fmt.Errorf("container %s: already running", name)
	}
	return restartStopped(ctx, e, r, st)
}

// restartStopped creates the stopped container st again from its recorded
// spec and starts it under a new monitor. On failure the stopped
// container's record is put back as it was.
func restartStopped(ctx context.Context, e *env, r *runtime.Runtime, st *runtime.State) error {
	spec := st.Spec
	name := spec.Name
	if spec.Annotations["otok.agent"] == "1" {
		return fmt.Errorf("container %s: belongs to the agent, which is not running (start 'otok agent': it starts its containers itself)", name)
	}
	// The previous parent (a monitor, or a foreground `otok run`) still
	// detaches the network, saves the log and drops the image hold after
	// recording the exit: let it finish, or it would undo the new run's.
	if err := waitParentGone(ctx, st); err != nil {
		return err
	}
	f, err := flagsFromRecord(&spec)
	if err != nil {
		return err
	}
	src := &rootfsSource{Ref: spec.Rootfs.Image}
	if spec.Rootfs.File != "" {
		src.Squashfs, src.Digest = spec.Rootfs.File, spec.Rootfs.Digest
		if _, err := os.Stat(src.Squashfs); err != nil {
			return fmt.Errorf("container %s: image %s: %w", name, src.Squashfs, unwrapNotExist(err))
		}
	} else {
		src.Dir = spec.Rootfs.Path
		if fi, err := os.Stat(src.Dir); err != nil || !fi.IsDir() {
			return fmt.Errorf("container %s: image directory %s: gone", name, src.Dir)
		}
	}
	// What run/create checked before creating: still there?
	for _, m := range spec.Mounts {
		if _, err := os.Stat(m.Source); err != nil {
			return fmt.Errorf("container %s: volume %s: %w", name, m.Source, unwrapNotExist(err))
		}
	}
	for _, d := range spec.Devices {
		if _, err := os.Stat(d.Path); err != nil {
			return fmt.Errorf("container %s: device %s: %w", name, d.Path, unwrapNotExist(err))
		}
	}
	// The runtime creates a container into a new state directory: move
	// the stopped one's aside (under its lock, so a concurrent start or rm
	// sees either the old container or the new one), keep it until the
	// new one runs.
	aside, err := moveAside(r, name)
	if err != nil {
		return err
	}
	p := &prepared{spec: &spec, flags: f, src: src, release: func() {}}
	quiet := *e
	quiet.stdout = io.Discard // startDetached prints the name; runStart does
	if err = mountImage(ctx, &quiet, p); err != nil {
		err = fmt.Errorf("container %s: %w", name, err)
	} else {
		err = startDetached(ctx, &quiet, p, true)
	}
	if err != nil {
		if rerr := os.Rename(aside, r.Dir(name)); rerr != nil {
			os.RemoveAll(aside)
			return fmt.Errorf("%w (and its record is lost: %v)", err, rerr)
		}
		return err
	}
	os.RemoveAll(aside)
	return nil
}

// moveAside renames a stopped container's state directory to a name the
// runtime never lists (a leading dot is not a valid container name) and
// returns it.
func moveAside(r *runtime.Runtime, name string) (string, error) {
	dir := r.Dir(name)
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("container %s: %w", name, runtime.ErrNotFound)
		}
		return "", fmt.Errorf("container %s: lock: %w", name, err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", fmt.Errorf("container %s: lock: %w", name, err)
	}
	// Whoever held the lock before may have moved or replaced the
	// directory: it must still be this lock's, and still stopped.
	a, aerr := lock.Stat()
	b, berr := os.Stat(filepath.Join(dir, "lock"))
	if aerr != nil || berr != nil || !os.SameFile(a, b) {
		return "", fmt.Errorf("container %s: started or removed meanwhile", name)
	}
	if st, err := r.State(name); err != nil {
		return "", err
	} else if st.Alive() {
		return "", fmt.Errorf("container %s: already running", name)
	}
	aside := filepath.Join(filepath.Dir(dir), "."+name+".restart")
	os.RemoveAll(aside) // left by an otok killed while restarting
	if err := os.Rename(dir, aside); err != nil {
		return "", fmt.Errorf("container %s: %w", name, err)
	}
	return aside, nil
}

// waitParentGone waits (up to 10 s) for the process that created the
// container to exit.
func waitParentGone(ctx context.Context, st *runtime.State) error {
	pid := st.ParentPid
	if pid <= 0 || pid == os.Getpid() {
		return nil
	}
	for deadline := time.Now().Add(10 * time.Second); procRunning(pid); {
		if time.Now().After(deadline) {
			return fmt.Errorf("container %s: its previous monitor (pid %d) has not exited yet; try again", st.Spec.Name, pid)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("container %s: %w", st.Spec.Name, ctx.Err())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// procRunning reports whether pid exists and is not a zombie.
func procRunning(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] != 'Z' && b[i+2] != 'X'
}
