// Command guestinit is /init in otok's qemu guests (every arch; on
// big-endian mips, where Debian has no busybox, it is the only userland
// besides the toybox). It mounts the kernel filesystems and a cgroup v2-only
// hierarchy with every controller enabled, loads the modules listed in
// /etc/otok-qemu/modules (in order, dependencies first), brings up lo and
// eth0 (10.0.2.15/24 via qemu's user network, host at 10.0.2.2), then runs
// the job in /job (argv, env, cwd; NUL-separated) and reports to the host
// with marker lines on the console:
//
//	@@OTOK-QEMU init <uptime ms when /init started> <uptime ms when ready>
//	@@OTOK-QEMU exit <code>
//
// and powers the guest off.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
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
	uptimeMS0 = up
	if v, err := strconv.Atoi(os.Getenv("OTOK_QEMU_SWITCHED")); err == nil && v > 0 {
		up = v
	}
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "init: "+format+"\n", args...) }
	if os.Getpid() == 1 && os.Getenv("OTOK_QEMU_SWITCHED") == "" {
		// The initramfs is the kernel's rootfs, which pivot_root cannot
		// leave (EINVAL). A router's root is a real mount (squashfs +
		// overlay), so move everything to a tmpfs and make that / first.
		if err := switchRoot(); err != nil {
			logf("switch root: %v (staying on rootfs: pivot_root will not work)", err)
		}
	}
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
	fmt.Printf("\n%sinit %d %d\n", marker, up, uptimeMS())
	code := runJob(logf)
	fmt.Printf("\n%sexit %d\n", marker, code)
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART) // qemu runs with -no-reboot
	select {}
}

// switchRoot moves the initramfs contents into a tmpfs (copy, then delete,
// so RAM use does not double), makes it / and re-executes /init there.
func switchRoot() error {
	const nr = "/.newroot"
	if err := os.Mkdir(nr, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", nr, "tmpfs", 0, "mode=0755"); err != nil {
		return err
	}
	ents, err := os.ReadDir("/")
	if err != nil {
		return err
	}
	for _, e := range ents {
		if "/"+e.Name() == nr {
			continue
		}
		if err := moveTree("/"+e.Name(), nr+"/"+e.Name()); err != nil {
			return err
		}
	}
	if err := os.Chdir(nr); err != nil {
		return err
	}
	if err := unix.Mount(nr, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s to /: %w", nr, err)
	}
	if err := unix.Chroot("."); err != nil {
		return err
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	env := append(os.Environ(), "OTOK_QEMU_SWITCHED="+strconv.Itoa(uptimeMS0))
	return unix.Exec("/init", os.Args, env)
}

// uptimeMS0 is the uptime when the first /init started (reported as the
// boot-to-init time after the switch).
var uptimeMS0 = -1

// moveTree copies src to dst (same type, mode, contents) and removes src.
func moveTree(src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	st := fi.Sys().(*syscall.Stat_t)
	switch {
	case fi.IsDir():
		if err := os.Mkdir(dst, fi.Mode().Perm()); err != nil {
			return err
		}
		_ = os.Chmod(dst, fi.Mode()&(os.ModePerm|os.ModeSticky))
		ents, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := moveTree(src+"/"+e.Name(), dst+"/"+e.Name()); err != nil {
				return err
			}
		}
		return os.Remove(src)
	case fi.Mode()&os.ModeSymlink != 0:
		t, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(t, dst); err != nil {
			return err
		}
	case fi.Mode().IsRegular():
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, fi.Mode().Perm())
		if err != nil {
			in.Close()
			return err
		}
		_, err = io.Copy(out, in)
		in.Close()
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		_ = os.Chmod(dst, fi.Mode().Perm())
	default: // device nodes, fifos
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return err
		}
	}
	return os.Remove(src)
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
