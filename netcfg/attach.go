package netcfg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Config is one container's attachment request.
type Config struct {
	Container string
	Spec      Spec
	// NetNS is the container's network namespace (/proc/<pid>/ns/net).
	NetNS string
	// HostNS is the namespace holding the ports and bridges; "" is the
	// caller's own. Tests point it at a throwaway "router" namespace.
	HostNS string
	// RootDir is the container's root as seen by the caller
	// (/proc/<pid>/root once its rootfs is mounted); /etc/resolv.conf and
	// /etc/hosts are written there. "" writes nothing.
	RootDir string
	// RootOwner is the host uid and gid that container root maps to
	// (user-namespaced containers, e.g. 100000); zero values mean host
	// root. /etc files are created with these as fsuid/fsgid, so they
	// belong to container root on its idmapped layer.
	RootOwner [2]int
	Hostname  string // for /etc/hosts; "" = Container
	// StateDir holds the records (<state>/net): tmpfs, never flash.
	StateDir string
	// Resolve maps a port name (lan3, wan, br-lan) to a kernel link in the
	// host namespace; nil accepts link names only.
	Resolve func(port string) (string, error)
	// IsWireless reports whether a host link is an 802.11 interface; nil
	// looks for /sys/class/net/<dev>/phy80211 (caller's namespace only).
	IsWireless func(dev string) bool
	DeviceID   string        // for StableMAC; "" = DeviceID()
	DHCPWait   time.Duration // how long --ip dhcp may take; 0 = 15 s
}

// ErrInvalid marks errors in the request itself — an unknown port, a
// conflict with another container, a combination that cannot work.
// Nothing was created when Attach returns one.
var ErrInvalid = errors.New("invalid network request")

type invalidError struct{ err error }

func (e invalidError) Error() string   { return e.err.Error() }
func (e invalidError) Unwrap() []error { return []error{e.err, ErrInvalid} }

func invalid(err error) error { return invalidError{err} }

// ifName is the container-side link name.
const ifName = "eth0"

// Check validates a spec on its own (before anything exists): the mode,
// addresses, MAC and published ports fit together.
func (s Spec) Check() error {
	if err := checkAddrs(s.Addrs); err != nil {
		return err
	}
	has := func(what string, ok bool) error {
		if ok {
			return fmt.Errorf("network %s: %s", s, what)
		}
		return nil
	}
	switch s.Mode {
	case ModeNone, ModeHost:
		if err := errors.Join(
			has("--ip needs a network (bridge, macvlan:PORT, ipvlan:PORT)", len(s.Addrs) > 0),
			has("--mac needs a network (bridge, macvlan:PORT)", s.MAC != ""),
			has("-p needs --net bridge", len(s.Publish) > 0)); err != nil {
			return err
		}
		if s.Mode == ModeHost && len(s.DNS) > 0 {
			return fmt.Errorf("network host: --dns does not apply (the container uses the host's resolver)")
		}
	case ModeBridge:
		if len(s.Publish) > 0 && !hasStatic4(s.Addrs) && (!isOtokBridge(s.Bridge) || s.wantsDHCP()) {
			return fmt.Errorf("network %s: -p needs a static IPv4 --ip (or none on otok0): a DHCP address can change", s)
		}
	case ModeMacvlan:
		if len(s.Publish) > 0 {
			return fmt.Errorf("network %s: -p needs --net bridge; a macvlan container has its own address on the port", s)
		}
		if s.Sub == "passthru" && s.MAC != "" {
			return fmt.Errorf("network %s: --mac does not apply to passthru (it takes the port's MAC)", s)
		}
	case ModeIPvlan:
		if err := errors.Join(
			has("-p needs --net bridge; an ipvlan container has its own address on the port", len(s.Publish) > 0),
			has("--mac does not apply to ipvlan (it shares the port's MAC); use macvlan", s.MAC != "")); err != nil {
			return err
		}
		if s.Sub == "l3" {
			for _, a := range s.Addrs {
				if a.DHCP {
					return fmt.Errorf("network %s: DHCP needs broadcasts, which ipvlan l3 does not pass; use l2", s)
				}
			}
		}
	default:
		return fmt.Errorf("network: unknown mode %q", s.Mode)
	}
	seen := map[string]bool{}
	for _, p := range s.Publish {
		k := fmt.Sprintf("%d/%s", p.HostPort, p.Proto)
		if seen[k] {
			return fmt.Errorf("publish %s: host port given twice", k)
		}
		seen[k] = true
	}
	return nil
}

func hasStatic4(addrs []Addr) bool {
	for _, a := range addrs {
		if !a.DHCP && a.Prefix.Addr().Is4() {
			return true
		}
	}
	return false
}

func (s Spec) wantsDHCP() bool {
	for _, a := range s.Addrs {
		if a.DHCP {
			return true
		}
	}
	return false
}

// Attach connects a container's network namespace as cfg.Spec says, and
// records what it made. Errors in the request are found before anything is
// created; a failure midway removes what was made. --ip dhcp waits for a
// lease (cfg.DHCPWait). ModeHost does nothing and returns a nil record.
func Attach(ctx context.Context, cfg Config) (*Record, error) {
	if !ValidContainerName(cfg.Container) {
		return nil, fmt.Errorf("network: bad container name %q", cfg.Container)
	}
	sp := cfg.Spec
	if err := sp.Check(); err != nil {
		return nil, invalid(err)
	}
	if sp.Mode == ModeHost {
		return nil, nil
	}
	lk, err := lockState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	locked := true
	defer func() {
		if locked {
			lk.unlock()
		}
	}()
	recs, _ := Records(cfg.StateDir)
	for _, r := range recs {
		if r.Container == cfg.Container {
			return nil, invalid(fmt.Errorf("network of container %s is already set up (detach it or run otok net prune)", cfg.Container))
		}
	}
	host, err := openNS(cfg.HostNS)
	if err != nil {
		return nil, err
	}
	defer host.Close()
	ctr, err := openNS(cfg.NetNS)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", cfg.Container, err)
	}
	defer ctr.Close()

	rec := &Record{Container: cfg.Container, Spec: sp, NetNS: cfg.NetNS, HostNS: cfg.HostNS}
	p, err := plan(host, cfg, rec, recs)
	if err != nil {
		return nil, invalid(err)
	}
	if sp.Mode != ModeNone { // none has nothing to release or remove later
		if pinned := bindNetNS(cfg.StateDir, cfg.Container, cfg.NetNS); pinned != "" {
			rec.NetNS = pinned
		}
	}
	if err := saveRecord(cfg.StateDir, rec); err != nil {
		if isNSFile(cfg.StateDir, rec.NetNS) {
			unbindNetNS(rec.NetNS)
		}
		return nil, err
	}
	if err := p.build(ctx, host, ctr, rec); err != nil {
		undoErr := detachLocked(ctx, cfg.StateDir, rec, recs, false)
		return nil, errors.Join(err, undoErr)
	}
	rec.Complete = true
	if err := saveRecord(cfg.StateDir, rec); err != nil {
		undoErr := detachLocked(ctx, cfg.StateDir, rec, recs, false)
		return nil, errors.Join(err, undoErr)
	}
	lk.unlock()
	locked = false

	var lease *Lease
	if sp.wantsDHCP() {
		wait := cfg.DHCPWait
		if wait <= 0 {
			wait = 15 * time.Second
		}
		dctx, cancel := context.WithTimeout(ctx, wait)
		lease, err = acquireLease(dctx, ctr, rec)
		cancel()
		if err != nil {
			err = fmt.Errorf("network %s: DHCP on %s: %w", sp, rec.Parent, err)
			return nil, errors.Join(err, Detach(context.WithoutCancel(ctx), cfg.StateDir, cfg.Container))
		}
		if err := updateRecord(cfg.StateDir, rec, func(r *Record) { applyLeaseToRecord(r, lease) }); err != nil {
			return nil, errors.Join(err, Detach(context.WithoutCancel(ctx), cfg.StateDir, cfg.Container))
		}
	}
	if cfg.RootDir != "" {
		if err := writeEtc(cfg, rec); err != nil {
			return nil, errors.Join(err, Detach(context.WithoutCancel(ctx), cfg.StateDir, cfg.Container))
		}
	}
	return rec, nil
}

// updateRecord changes a saved record under the state lock.
func updateRecord(dir string, rec *Record, fn func(*Record)) error {
	lk, err := lockState(dir)
	if err != nil {
		return err
	}
	defer lk.unlock()
	if _, err := os.Stat(recordPath(dir, rec.Container)); err != nil {
		return fmt.Errorf("container %s: %w", rec.Container, errGone) // detached meanwhile
	}
	fn(rec)
	return saveRecord(dir, rec)
}

// unmappedEtc tells whether err is a user-namespace container's root
// failing to write into an /etc it does not own: where the kernel cannot
// idmap the image (squashfs without FS_ALLOW_IDMAP, e.g. Linux 6.1), the
// image's directories stay owned by host root, nobody in the container,
// and cannot be copied up by the mapped root (EACCES, EOVERFLOW). As with
// a read-only root, the image's /etc files stay (the runtime warns that
// the image is not idmapped); networking itself works.
func unmappedEtc(cfg Config, err error) bool {
	if cfg.RootOwner == [2]int{} || !(errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EOVERFLOW)) {
		return false
	}
	var st unix.Stat_t
	if unix.Lstat(filepath.Join(cfg.RootDir, "etc"), &st) != nil {
		return false
	}
	return int(st.Uid) != cfg.RootOwner[0]
}

// writeEtc writes resolv.conf and hosts into the container's root.
func writeEtc(cfg Config, rec *Record) error {
	host := cfg.Hostname
	if host == "" {
		host = cfg.Container
	}
	if err := writeEtcFileAs(cfg.RootOwner, cfg.RootDir, "hosts", hostsFile(host, rec.Addrs)); errors.Is(err, unix.EROFS) || unmappedEtc(cfg, err) {
		return nil // read-only or not-ours /etc: the image's files stay
	} else if err != nil {
		return fmt.Errorf("container %s: %w", cfg.Container, err)
	}
	var servers []net.IP
	for _, s := range rec.DNS {
		servers = append(servers, net.ParseIP(s))
	}
	search := ""
	if rec.Lease != nil {
		search = rec.Lease.Domain
	}
	if len(servers) == 0 {
		return nil // keep the image's own resolv.conf
	}
	if err := writeEtcFileAs(cfg.RootOwner, cfg.RootDir, "resolv.conf", resolvConf(servers, search)); err != nil && !unmappedEtc(cfg, err) {
		return fmt.Errorf("container %s: %w", cfg.Container, err)
	}
	return nil
}

// hostNameservers are the host's non-loopback resolvers (a loopback one,
// like OpenWrt's dnsmasq on 127.0.0.1, is not reachable from a container).
func hostNameservers() []string {
	data, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if a, err := netip.ParseAddr(f[1]); err == nil && !a.IsLoopback() && a.Zone() == "" {
				out = append(out, a.String())
			}
		}
	}
	return out
}

func isWireless(dev string) bool {
	_, err := os.Stat(filepath.Join("/sys/class/net", dev, "phy80211"))
	return err == nil
}

// linkTagged finds the link with the given alias tag in a namespace.
func linkTagged(n *nsHandle, tag string) (netlink.Link, error) {
	links, err := n.h.LinkList()
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		if l.Attrs().Alias == tag {
			return l, nil
		}
	}
	return nil, os.ErrNotExist
}
