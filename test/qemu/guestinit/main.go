// Command guestinit is /init in otok's qemu guests (every arch; on
// big-endian mips, where Debian has no busybox, it is the only userland
// besides the toybox). It mounts the kernel filesystems and a cgroup v2-only
// hierarchy with every controller enabled, loads the modules listed in
// /etc/otok-qemu/modules (in order, dependencies first), brings up lo and
// eth0 (10.0.2.15/24 via qemu's user network, host at 10.0.2.2), then runs
// the job in /job (argv, env, cwd; NUL-separated) and reports to the host
// with marker lines on the console:
//
//	@@OTOK-QEMU init <guest uptime ms>
//	@@OTOK-QEMU exit <code>
//
// and powers the guest off.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const marker = "@@OTOK-QEMU "

func main() {
	up := uptimeMS()
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "init: "+format+"\n", args...) }
	mounts(logf)
	modules(logf)
	arch := strings.TrimSpace(readFile("/etc/otok-qemu/arch"))
	_ = unix.Sethostname([]byte("otok-" + arch))
	if err := network(); err != nil {
		logf("network: %v", err)
	}
	if _, err := os.Stat("/bin/busybox"); err == nil {
		_ = exec.Command("/bin/busybox", "--install", "-s", "/bin").Run()
	}
	for _, t := range []string{"true", "false", "sleep", "memhog", "forkbomb", "udpecho", "udpsend"} {
		if _, err := os.Lstat("/bin/" + t); err != nil {
			_ = os.Symlink("toybox", "/bin/"+t)
		}
	}
	fmt.Printf("\n%sinit %d\n", marker, up)
	code := runJob(logf)
	fmt.Printf("\n%sexit %d\n", marker, code)
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART) // qemu runs with -no-reboot
	select {}
}

func mounts(logf func(string, ...any)) {
	type m struct {
		src, dst, fstype string
		flags            uintptr
		data             string
	}
	const nodev = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	for _, x := range []m{
		{"proc", "/proc", "proc", nodev, ""},
		{"sysfs", "/sys", "sysfs", nodev, ""},
		{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
		{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=620,ptmxmode=666"},
		{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, ""},
		{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
		{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
		// The router's writable flash overlay: otok's store goes here.
		{"tmpfs", "/overlay", "tmpfs", unix.MS_NOATIME, "size=96m"},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2", nodev, "nsdelegate"},
	} {
		_ = os.MkdirAll(x.dst, 0o755)
		if err := unix.Mount(x.src, x.dst, x.fstype, x.flags, x.data); err != nil {
			logf("mount %s: %v", x.dst, err)
		}
	}
	_ = os.Symlink("/proc/self/fd", "/dev/fd")
	// Every available controller for the children of the root cgroup.
	if c := readFile("/sys/fs/cgroup/cgroup.controllers"); c != "" {
		for _, ctl := range strings.Fields(c) {
			if err := os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+"+ctl), 0); err != nil {
				logf("cgroup controller %s: %v", ctl, err)
			}
		}
	}
}

func modules(logf func(string, ...any)) {
	for _, p := range strings.Fields(readFile("/etc/otok-qemu/modules")) {
		f, err := os.Open(p)
		if err != nil {
			logf("module %s: %v", p, err)
			continue
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			logf("module %s: %v", p, err)
		}
	}
}

func network() error {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := h.LinkSetUp(lo); err != nil {
		return err
	}
	var eth netlink.Link
	for i := 0; i < 100; i++ { // the NIC driver may still be probing
		if eth, err = h.LinkByName("eth0"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("eth0: %w", err)
	}
	addr, _ := netlink.ParseAddr("10.0.2.15/24")
	if err := h.AddrAdd(eth, addr); err != nil {
		return err
	}
	if err := h.LinkSetUp(eth); err != nil {
		return err
	}
	return h.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: net.ParseIP("10.0.2.2")})
}

func runJob(logf func(string, ...any)) int {
	argv := split(readFile("/job/argv"))
	if len(argv) == 0 {
		if _, err := os.Stat("/bin/sh"); err == nil {
			argv = []string{"/bin/sh"}
		} else {
			logf("no job")
			return 0
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "TERM=dumb", "OTOK_QEMU_GUEST=1"}, split(readFile("/job/env"))...)
	cmd.Dir = strings.TrimSpace(readFile("/job/cwd"))
	if cmd.Dir == "" {
		cmd.Dir = "/job"
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				logf("job killed by %v", ws.Signal())
				return 128 + int(ws.Signal())
			}
			return ee.ExitCode()
		}
		logf("job: %v", err)
		return 127
	}
	return 0
}

func split(s string) []string {
	var out []string
	for _, f := range bytes.Split([]byte(s), []byte{0}) {
		if len(f) > 0 {
			out = append(out, string(f))
		}
	}
	return out
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func uptimeMS() int {
	f := strings.Fields(readFile("/proc/uptime"))
	if len(f) == 0 {
		// /proc is not mounted yet: mount it just for this.
		_ = os.MkdirAll("/proc", 0o755)
		if unix.Mount("proc", "/proc", "proc", 0, "") == nil {
			f = strings.Fields(readFile("/proc/uptime"))
			_ = unix.Unmount("/proc", 0)
		}
	}
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return int(v * 1000)
}
