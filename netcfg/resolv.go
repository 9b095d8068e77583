package netcfg

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// resolvConf renders /etc/resolv.conf for the given servers and search
// domain.
func resolvConf(servers []net.IP, search string) []byte {
	var b strings.Builder
	b.WriteString("# written by otok\n")
	if search != "" {
		fmt.Fprintf(&b, "search %s\n", search)
	}
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	return []byte(b.String())
}

// hostsFile renders /etc/hosts: loopback names and the container's own
// addresses under its host name.
func hostsFile(hostname string, addrs []netip.Prefix) []byte {
	var b strings.Builder
	b.WriteString("# written by otok\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, a := range addrs {
		fmt.Fprintf(&b, "%s\t%s\n", a.Addr(), hostname)
	}
	if len(addrs) == 0 && hostname != "" {
		fmt.Fprintf(&b, "127.0.1.1\t%s\n", hostname)
	}
	return []byte(b.String())
}

// writeEtcFileAs is writeEtcFile with the calling thread's fsuid/fsgid set
// to owner, for containers whose root is a mapped id: host root is not
// mapped into their idmapped layer, so files it creates there fail with
// EOVERFLOW. setfsuid is per thread, hence the locked thread; going back to
// fsuid 0 restores the file capabilities the switch dropped.
func writeEtcFileAs(owner [2]int, root, name string, data []byte) error {
	if owner == [2]int{} {
		return writeEtcFile(root, name, data)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	prevGID, _ := unix.SetfsgidRetGid(owner[1])
	prevUID, _ := unix.SetfsuidRetUid(owner[0])
	defer func() {
		unix.Setfsuid(prevUID)
		unix.Setfsgid(prevGID)
	}()
	return writeEtcFile(root, name, data)
}

// writeEtcFile writes root/etc/name atomically with every path lookup
// confined to root (openat2 RESOLVE_IN_ROOT): an image whose /etc or
// /etc/resolv.conf is a symlink to an absolute path cannot make otok write
// outside the container. The write lands in the container's upper layer,
// never in the image.
func writeEtcFile(root, name string, data []byte) error {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("write /etc/%s: open root %s: %w", name, root, err)
	}
	defer unix.Close(rfd)
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	openEtc := func() (int, error) {
		fd, err := unix.Openat2(rfd, "etc", how)
		if errors.Is(err, unix.ENOSYS) {
			// Kernel before 5.6 (or qemu-user): refuse a symlinked /etc.
			fd, err = unix.Openat(rfd, "etc", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		}
		return fd, err
	}
	efd, err := openEtc()
	if errors.Is(err, unix.ENOENT) {
		if err := unix.Mkdirat(rfd, "etc", 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("write /etc/%s: mkdir /etc: %w", name, err)
		}
		efd, err = openEtc()
	}
	if err != nil {
		return fmt.Errorf("write /etc/%s: open /etc: %w", name, err)
	}
	defer unix.Close(efd)
	tmp := "." + name + ".otok-tmp"
	unix.Unlinkat(efd, tmp, 0)
	fd, err := unix.Openat(efd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("write /etc/%s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, werr := f.Write(data)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = unix.Renameat(efd, tmp, efd, name)
	}
	if werr != nil {
		unix.Unlinkat(efd, tmp, 0)
		return fmt.Errorf("write /etc/%s: %w", name, werr)
	}
	return nil
}
