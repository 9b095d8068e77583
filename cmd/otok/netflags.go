package main

// Container network flags (--net, --ip, --mac, --dns, -p) and the glue
// between the CLI and netcfg: run.go calls addNetFlags, validate,
// hostNetwork and attach; container removal detaches through
// containerRemoveHooks.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/otok/otok/board"
	"github.com/otok/otok/netcfg"
	"github.com/otok/otok/runtime"
)

// netOpts holds the network flags of run/create.
type netOpts struct {
	net     string
	ips     netListFlag
	mac     string
	dns     netListFlag
	publish netListFlag

	spec  netcfg.Spec
	valid bool
}

// netListFlag is a repeatable string flag.
type netListFlag []string

func (l *netListFlag) String() string     { return strings.Join(*l, ",") }
func (l *netListFlag) Set(s string) error { *l = append(*l, s); return nil }

func addNetFlags(fs *flag.FlagSet) *netOpts {
	o := &netOpts{}
	fs.StringVar(&o.net, "net", "none", "network `MODE`: none, host, bridge[:BR], macvlan:PORT[.VID][,mode=bridge|private|vepa|passthru], ipvlan:PORT[.VID][,l2|l3]")
	fs.Var(&o.ips, "ip", "address `CIDR[,gw=IP]` or dhcp (repeatable)")
	fs.StringVar(&o.mac, "mac", "", "MAC `ADDRESS` (default: stable, derived from the device and the name)")
	fs.Var(&o.dns, "dns", "DNS server `IP` (repeatable)")
	fs.Var(&o.publish, "publish", "publish `HOSTPORT:CTRPORT[/tcp|udp]` (bridge mode; repeatable)")
	fs.Var(&o.publish, "p", "short for --publish")
	return o
}

// validate parses the flags into a netcfg.Spec; mistakes are usage errors,
// found before anything is created.
func (o *netOpts) validate() error {
	if o.valid {
		return nil
	}
	sp, err := netcfg.ParseNet(o.net)
	if err != nil {
		return usagef("%v", err)
	}
	for _, s := range o.ips {
		a, err := netcfg.ParseAddr(s)
		if err != nil {
			return usagef("%v", err)
		}
		sp.Addrs = append(sp.Addrs, a)
	}
	if o.mac != "" {
		if sp.MAC, err = netcfg.ParseMAC(o.mac); err != nil {
			return usagef("%v", err)
		}
	}
	for _, s := range o.dns {
		ip, err := netcfg.ParseDNS(s)
		if err != nil {
			return usagef("%v", err)
		}
		sp.DNS = append(sp.DNS, ip)
	}
	for _, s := range o.publish {
		p, err := netcfg.ParsePublish(s)
		if err != nil {
			return usagef("%v", err)
		}
		sp.Publish = append(sp.Publish, p)
	}
	if err := sp.Check(); err != nil {
		return usagef("%v", err)
	}
	if _, _, err := sp.ResolvePort(resolvePort); err != nil {
		return usagef("%v", err)
	}
	o.spec, o.valid = sp, true
	return nil
}

// hostNetwork: the container shares the host's network namespace.
func (o *netOpts) hostNetwork() bool { return o.net == "host" }

// netStateDir is where network records live (tmpfs).
func netStateDir(e *env) string { return filepath.Join(stateDir(e), "net") }

// resolvePort maps port names through /etc/board.json (OpenWrt) or to
// the host's links (elsewhere).
func resolvePort(name string) (string, error) {
	b, err := board.ReadBoardJSON(board.BoardJSONPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	links, _ := netcfg.LinkNames("")
	p, err := board.ResolvePort(b, name, links)
	if err != nil {
		return "", err
	}
	return p.Device, nil
}

// attach configures the network of the container whose init is initPid
// (created, not started: its rootfs is mounted at /proc/PID/root). The
// returned detach stops lease renewal and removes everything; it is safe
// to call more than once. With --ip dhcp the lease is renewed by this
// process for as long as it lives (run in the foreground); a detached
// container's monitor calls maintainNetwork.
func (o *netOpts) attach(ctx context.Context, e *env, container string, initPid int) (func(context.Context) error, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	noop := func(context.Context) error { return nil }
	if o.spec.Mode == netcfg.ModeHost {
		return noop, nil
	}
	if o.spec.Mode == netcfg.ModeNone && len(o.dns) == 0 {
		// The init brings lo up itself; nothing to create, record or undo.
		return noop, nil
	}
	// The runtime just created this container, so no live one has its
	// name: network state under that name is a leftover (an otok killed
	// before it could detach). Clear it rather than refuse.
	if err := netcfg.Detach(ctx, netStateDir(e), container); err != nil {
		fmt.Fprintf(e.stderr, "otok: %v\n", err)
	}
	proc := fmt.Sprintf("/proc/%d", initPid)
	hostname := container
	if st, err := newRuntime(e).State(container); err == nil && st.Spec.Hostname != "" {
		hostname = st.Spec.Hostname
	}
	rec, err := netcfg.Attach(ctx, netcfg.Config{
		Container: container, Spec: o.spec, Hostname: hostname,
		NetNS: proc + "/ns/net", RootDir: proc + "/root", RootOwner: rootOwner(initPid),
		StateDir: netStateDir(e), Resolve: resolvePort,
	})
	if err != nil {
		if errors.Is(err, netcfg.ErrInvalid) {
			return nil, usagef("%v", err)
		}
		return nil, err
	}
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	if rec != nil && rec.Lease != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			netcfg.Maintain(mctx, netStateDir(e), container)
		}()
	}
	var once sync.Once
	var derr error
	return func(ctx context.Context) error {
		once.Do(func() {
			cancel()
			wg.Wait()
			derr = netcfg.Detach(ctx, netStateDir(e), container)
		})
		return derr
	}, nil
}

// rootOwner is the host uid and gid container root maps to, from the
// init's uid_map and gid_map ({0, 0} without a user namespace).
func rootOwner(pid int) [2]int {
	var owner [2]int
	for i, f := range []string{"uid_map", "gid_map"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, f))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			var inside, outside, count int
			if n, _ := fmt.Sscan(line, &inside, &outside, &count); n == 3 && inside == 0 && count > 0 {
				owner[i] = outside
			}
		}
	}
	return owner
}

// maintainNetwork keeps a container's DHCP lease until ctx ends (for the
// process that outlives `otok run -d`: the monitor, later the agent). It
// returns at once when the container has no lease.
func maintainNetwork(ctx context.Context, e *env, container string) error {
	return netcfg.Maintain(ctx, netStateDir(e), container)
}

// detachNetwork removes a container's network (releasing its DHCP lease
// from the namespace netcfg keeps pinned until then). For whoever sees a
// detached container exit — the monitor — so a stopped container does
// not keep its address; removal detaches too, and it is idempotent.
func detachNetwork(ctx context.Context, e *env, container string) error {
	return netcfg.Detach(ctx, netStateDir(e), container)
}

func init() {
	containerRemoveHooks = append(containerRemoveHooks, func(ctx context.Context, e *env, st *runtime.State) {
		if err := netcfg.Detach(ctx, netStateDir(e), st.Spec.Name); err != nil {
			fmt.Fprintf(e.stderr, "otok: %v\n", err)
		}
	})
}
