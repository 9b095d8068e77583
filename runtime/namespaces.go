package runtime

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// cloneFlags are the namespaces a new container's init is cloned into.
func (s *Spec) cloneFlags() uintptr {
	f := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS |
		unix.CLONE_NEWIPC | unix.CLONE_NEWCGROUP)
	if s.Net.Mode == NetNew {
		f |= unix.CLONE_NEWNET
	}
	if s.UserNS != nil {
		f |= unix.CLONE_NEWUSER
	}
	return f
}

// idMaps is the user namespace mapping of a spec (nil without userns).
func (s *Spec) idMaps() (uids, gids []syscall.SysProcIDMap) {
	u := s.UserNS
	if u == nil {
		return nil, nil
	}
	return []syscall.SysProcIDMap{{ContainerID: 0, HostID: u.HostUID, Size: u.Size}},
		[]syscall.SysProcIDMap{{ContainerID: 0, HostID: u.HostGID, Size: u.Size}}
}

// joinNetPath moves the calling (locked) thread into the network namespace
// at path; processes it execs or forks stay there.
func joinNetPath(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("network namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("network namespace %s: setns: %w", path, err)
	}
	return nil
}

// nsOrder is the order exec joins a container's namespaces: the mount
// namespace last, since it changes how later paths resolve. The user
// namespace is never joined (a multi-threaded Go process cannot): see
// Exec.
var nsOrder = []struct {
	file string
	flag int
}{
	{"cgroup", unix.CLONE_NEWCGROUP}, {"ipc", unix.CLONE_NEWIPC}, {"uts", unix.CLONE_NEWUTS},
	{"net", unix.CLONE_NEWNET}, {"pid", unix.CLONE_NEWPID}, {"mnt", unix.CLONE_NEWNS},
}

// joinNamespaces moves the calling thread, which must be locked and never
// unlocked, into pid's namespaces (but its cgroup namespace with
// skipCgroup). It first unshares the thread's filesystem attributes, which
// Go threads otherwise share and setns(mnt) refuses to change.
func joinNamespaces(pid int, skipCgroup bool) error {
	fds := make([]int, 0, len(nsOrder))
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	self := map[string]uint64{}
	for _, ns := range nsOrder {
		p := fmt.Sprintf("/proc/%d/ns/%s", pid, ns.file)
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", p, err)
		}
		fds = append(fds, fd)
		var a, b unix.Stat_t
		if unix.Fstat(fd, &a) == nil && unix.Stat("/proc/thread-self/ns/"+ns.file, &b) == nil && a.Ino == b.Ino {
			self[ns.file] = a.Ino // already there (e.g. --net host)
		}
	}
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unshare fs: %w", err)
	}
	for i, ns := range nsOrder {
		if _, same := self[ns.file]; same || skipCgroup && ns.flag == unix.CLONE_NEWCGROUP {
			continue
		}
		if err := unix.Setns(fds[i], ns.flag); err != nil {
			return fmt.Errorf("setns %s: %w", ns.file, err)
		}
	}
	return nil
}

// loopbackUp brings lo up in the init's (new) network namespace: a
// container with --net none still has a working 127.0.0.1.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("lo: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo: get flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo: up: %w", err)
	}
	return nil
}
