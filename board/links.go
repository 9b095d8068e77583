package board

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// linkKinds are the link types container networking creates.
var linkKinds = []struct{ name, module, pkg, use string }{
	{"veth", "veth", "kmod-veth", "--net bridge"},
	{"bridge", "bridge", "kmod-bridge", "--net bridge"},
	{"macvlan", "macvlan", "kmod-macvlan", "--net macvlan:PORT"},
	{"ipvlan", "ipvlan", "kmod-ipvlan", "--net ipvlan:PORT"},
	{"8021q", "8021q", "kmod-8021q", "--net macvlan:PORT.VID"},
}

func checkLinks(probe bool, sysRoot string, mods *moduleIndex) []Feature {
	var probed map[string]error
	var probeErr error
	if probe {
		probed, probeErr = probeLinks()
	}
	var out []Feature
	for _, k := range linkKinds {
		f := Feature{Group: "network", Name: k.name}
		if err, ok := probed[k.name]; ok {
			if err == nil {
				f.Status, f.Detail = OK, "created one in a scratch netns"
			} else {
				f.Status, f.Detail = Missing, "creating one failed: "+err.Error()
				f.Hint = "install " + k.pkg + " (OpenWrt) or load module " + k.module + "; needed for " + k.use
			}
			out = append(out, f)
			continue
		}
		// No probe (not root, or namespaces unusable): read what the
		// kernel says about the module.
		st := mods.state(k.module)
		if st == "" {
			if _, err := os.Stat(filepath.Join(sysRoot, "module", k.module)); err == nil {
				st = "loaded"
			}
		}
		if probeErr != nil {
			f.Detail = "not probed (" + probeErr.Error() + "); "
		}
		switch st {
		case "loaded", "built in":
			f.Status, f.Detail = OK, f.Detail+"module "+st
		case "loadable":
			f.Status, f.Detail, f.Hint = Limited, f.Detail+"module not loaded", "modprobe "+k.module
		default:
			f.Status, f.Detail = Missing, f.Detail+"no module "+k.module+" found"
			f.Hint = "install " + k.pkg + " (OpenWrt) or enable it in the kernel; needed for " + k.use
		}
		out = append(out, f)
	}
	return out
}

// probeLinks creates one link of each kind in a throwaway network
// namespace. The namespace lives on a locked OS thread that is never
// unlocked, so Go discards the thread — and with it the namespace and its
// links — when the goroutine returns (the main thread is parked instead, so
// the thread rejoins the original namespace first). Creating a link also makes the kernel
// load its module, as `ip link add` would.
func probeLinks() (map[string]error, error) {
	type result struct {
		m   map[string]error
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		back, err := saveNamespace("net")
		if err != nil {
			ch <- result{err: err}
			return
		}
		// back() runs before the answer is sent (the caller may look at
		// /proc right away), so each send below goes through answer.
		answer := func(r result) { back(); ch <- r }
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			answer(result{err: os.NewSyscallError("unshare(CLONE_NEWNET)", err)})
			return
		}
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			answer(result{err: err})
			return
		}
		defer h.Close()
		// A route dump must work before link failures mean anything
		// (qemu-user, for one, cannot translate every netlink socket).
		if _, err := h.LinkList(); err != nil {
			answer(result{err: fmt.Errorf("netlink: %w", err)})
			return
		}
		m := map[string]error{}
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "probe0"}, PeerName: "probe1"}
		m["veth"] = h.LinkAdd(veth)
		m["bridge"] = h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "probebr"}})
		// macvlan, ipvlan and VLANs need a parent: a veth end, or a bridge
		// when veth is missing.
		parent, err := h.LinkByName("probe0")
		if err != nil {
			parent, err = h.LinkByName("probebr")
		}
		if err != nil {
			for _, k := range []string{"macvlan", "ipvlan", "8021q"} {
				m[k] = errNoParent
			}
			answer(result{m: m})
			return
		}
		idx := parent.Attrs().Index
		m["macvlan"] = h.LinkAdd(&netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: "probemv", ParentIndex: idx}, Mode: netlink.MACVLAN_MODE_BRIDGE})
		m["ipvlan"] = h.LinkAdd(&netlink.IPVlan{LinkAttrs: netlink.LinkAttrs{Name: "probeiv", ParentIndex: idx}, Mode: netlink.IPVLAN_MODE_L2})
		m["8021q"] = h.LinkAdd(&netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: "probevl", ParentIndex: idx}, VlanId: 5})
		answer(result{m: m})
	}()
	r := <-ch
	return r.m, r.err
}

type probeError string

func (e probeError) Error() string { return string(e) }

const errNoParent = probeError("no parent link could be created (veth and bridge both failed)")
