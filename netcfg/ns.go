package netcfg

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// nsHandle is an open network namespace with a NETLINK_ROUTE socket in it.
// Only NETLINK_ROUTE: netlink.NewHandleAt would otherwise also open XFRM
// and NETFILTER sockets and fail where those modules are absent.
type nsHandle struct {
	path string // "" = the namespace the process started in
	ns   netns.NsHandle
	h    *netlink.Handle
}

// openNS opens the network namespace at path ("" = the caller's own).
func openNS(path string) (*nsHandle, error) {
	var ns netns.NsHandle
	var err error
	if path == "" {
		ns, err = netns.Get()
	} else {
		ns, err = netns.GetFromPath(path)
	}
	if err != nil {
		if path == "" {
			path = "current network namespace"
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("netlink in %s: %w", path, err)
	}
	return &nsHandle{path: path, ns: ns, h: h}, nil
}

func (n *nsHandle) Close() {
	if n == nil {
		return
	}
	n.h.Close()
	n.ns.Close()
}

// fd is the namespace file descriptor, for IFLA_NET_NS_FD.
func (n *nsHandle) fd() netlink.NsFd { return netlink.NsFd(int(n.ns)) }

// inNS runs fn on a locked OS thread switched into the namespace ns: for
// what netlink cannot do from outside (sockets of the DHCP client,
// /proc/sys/net). If switching back fails the thread stays locked, so the
// Go runtime retires it rather than reuse a thread in the wrong namespace.
func inNS(ns netns.NsHandle, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("setns back: %w", err) // thread stays locked: discarded
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// LinkNames lists the links of a network namespace ("" = the caller's)
// over netlink — unlike /sys/class/net, right whatever namespace sysfs
// was mounted in. Port resolution uses it off OpenWrt.
func LinkNames(nsPath string) ([]string, error) {
	n, err := openNS(nsPath)
	if err != nil {
		return nil, err
	}
	defer n.Close()
	links, err := n.h.LinkList()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(links))
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	return names, nil
}

// Bridge is a bridge of the host namespace and its member links, for
// `otok net ls`.
type Bridge struct {
	Name    string   `json:"name"`
	Members []string `json:"members"`
	Otok    bool     `json:"otok,omitempty"` // otok0, made by otok
}

// Bridges lists the bridges of a namespace ("" = the caller's).
func Bridges(nsPath string) ([]Bridge, error) {
	n, err := openNS(nsPath)
	if err != nil {
		return nil, err
	}
	defer n.Close()
	links, err := n.h.LinkList()
	if err != nil {
		return nil, err
	}
	idx := map[int]int{}
	var out []Bridge
	for _, l := range links {
		if l.Type() == "bridge" {
			idx[l.Attrs().Index] = len(out)
			out = append(out, Bridge{Name: l.Attrs().Name, Otok: l.Attrs().Alias == tagBridge, Members: []string{}})
		}
	}
	for _, l := range links {
		if i, ok := idx[l.Attrs().MasterIndex]; ok && l.Attrs().MasterIndex != 0 {
			out[i].Members = append(out[i].Members, l.Attrs().Name)
		}
	}
	return out, nil
}
