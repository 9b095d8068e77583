package main

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

func nsProbes() []probe {
	return []probe{
		{"unshare_newuser", func() result {
			// A Go program is multi-threaded, so the kernel itself would
			// say EINVAL: that still means the filter let it through.
			return denied("unshare(CLONE_NEWUSER)", unix.Unshare(unix.CLONE_NEWUSER))
		}},
		{"unshare_newns", func() result {
			return denied("unshare(CLONE_NEWNS)", unix.Unshare(unix.CLONE_NEWNS))
		}},
		{"clone_newuser_regain_caps", func() result {
			// clone with CLONE_NEWUSER, then look at the child's
			// capabilities: full ones in a new user namespace would allow
			// mounts and more against what that namespace owns.
			cmd := exec.Command("/proc/self/exe", "-sub", "caps")
			cmd.SysProcAttr = &syscall.SysProcAttr{
				Cloneflags:  syscall.CLONE_NEWUSER,
				UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
				GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				return denied("clone(CLONE_NEWUSER)", unwrapErrno(err))
			}
			return allowed("clone(CLONE_NEWUSER) succeeded; child %s", strings.TrimSpace(string(out)))
		}},
		{"setns_host", func() result {
			// The outside process's namespaces by pid (only reachable if
			// its pid is visible here).
			if cfg.outsidePid == 0 {
				return blocked("no -outside-pid given")
			}
			fd, err := unix.Open("/proc/"+itoa(cfg.outsidePid)+"/ns/mnt", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return blocked("open outside ns/mnt: %v", err)
			}
			defer unix.Close(fd)
			if !isMarker(cfg.outsidePid) {
				return blocked("pid %d here is a container process", cfg.outsidePid)
			}
			return denied("setns(outside mnt)", unix.Setns(fd, unix.CLONE_NEWNS))
		}},
		{"see_host_pids", func() result {
			ents, _ := os.ReadDir("/proc")
			n := 0
			for _, e := range ents {
				pid, err := strconv.Atoi(e.Name())
				if err != nil {
					continue
				}
				n++
				if isMarker(pid) {
					return allowed("outside process visible as pid %d", pid)
				}
			}
			if cfg.outsidePid != 0 {
				if _, err := os.Stat("/proc/" + itoa(cfg.outsidePid)); err == nil && isMarker(cfg.outsidePid) {
					return allowed("/proc/%d is the outside process", cfg.outsidePid)
				}
			}
			return blocked("%d pids visible, none outside", n)
		}},
		{"see_host_mounts", func() result {
			f, err := os.Open("/proc/self/mountinfo")
			if err != nil {
				return blocked("mountinfo: %v", err)
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			n := 0
			for sc.Scan() {
				n++
				fs := strings.Fields(sc.Text())
				if len(fs) > 4 && cfg.hostMount != "" && (fs[4] == cfg.hostMount || strings.Contains(fs[3], cfg.hostMount)) {
					return allowed("host mount %s visible", cfg.hostMount)
				}
			}
			return blocked("%d mounts, no host-only mount", n)
		}},
		{"see_host_network", func() result {
			ifs, err := net.Interfaces()
			if err != nil {
				return blocked("interfaces: %v", err)
			}
			// -host-ifaces is "name=mac;…": the same name with the same
			// hardware address is the host's device (a namespace's own lo
			// and fallback tunnels have none and are not listed).
			var names []string
			for _, i := range ifs {
				names = append(names, i.Name)
			}
			for _, h := range strings.Split(cfg.hostIfaces, ";") {
				for _, i := range ifs {
					if h != "" && h == i.Name+"="+i.HardwareAddr.String() {
						return allowed("host interface %s visible [%s]", h, strings.Join(names, " "))
					}
				}
			}
			return blocked("interfaces: %s", strings.Join(names, " "))
		}},
		{"host_abstract_socket", func() result {
			if cfg.hostAbstract == "" {
				return blocked("no -host-abstract given")
			}
			c, err := net.Dial("unix", "@"+cfg.hostAbstract)
			if err == nil {
				c.Close()
				return allowed("connected to host abstract socket @%s", cfg.hostAbstract)
			}
			return blocked("@%s: %v", cfg.hostAbstract, err)
		}},
		{"host_ubus_agent_sockets", func() result {
			paths := []string{"/var/run/ubus/ubus.sock", "/var/run/ubus.sock", "/run/ubus/ubus.sock",
				"/var/run/otok/otok.sock", "/run/otok/otok.sock"}
			for _, p := range strings.Split(cfg.hostSockets, ",") {
				if p != "" {
					paths = append(paths, p)
				}
			}
			var d []string
			for _, p := range paths {
				c, err := net.Dial("unix", p)
				if err == nil {
					c.Close()
					return allowed("connected to %s", p)
				}
				d = append(d, p+": "+shortErr(err))
			}
			return blocked("%s", strings.Join(d, "; "))
		}},
	}
}

func shortErr(err error) string {
	if e, ok := err.(*net.OpError); ok && e.Err != nil {
		if se, ok := e.Err.(*os.SyscallError); ok {
			return se.Err.Error()
		}
		return e.Err.Error()
	}
	return err.Error()
}

func unwrapErrno(err error) error {
	type unwrapper interface{ Unwrap() error }
	for err != nil {
		if e, ok := err.(syscall.Errno); ok {
			return e
		}
		u, ok := err.(unwrapper)
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
	return err
}
