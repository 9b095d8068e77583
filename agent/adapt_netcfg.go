package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"

	"github.com/otok/otok/board"
	"github.com/otok/otok/netcfg"
)

// NetAdapter is the Network over netcfg. It keeps DHCP leases of the
// containers it attached (netcfg.Maintain) until they are detached.
type NetAdapter struct {
	StateDir string // <state>/net
	DeviceID string

	mu       sync.Mutex
	maintain map[string]context.CancelFunc
	wg       sync.WaitGroup
}

// netSpec turns the agent's net options into netcfg's spec.
func netSpec(c *ContainerSpec) (netcfg.Spec, error) {
	s, err := netcfg.ParseNet(c.Net)
	if err != nil {
		return s, err
	}
	for _, ip := range c.IP {
		a, err := netcfg.ParseAddr(ip)
		if err != nil {
			return s, err
		}
		if c.Gateway != "" && !a.DHCP {
			gw, err := netip.ParseAddr(c.Gateway)
			if err != nil {
				return s, fmt.Errorf("gateway %q: %w", c.Gateway, err)
			}
			if gw.Is4() == a.Prefix.Addr().Is4() {
				a.Gateway = gw
			}
		}
		s.Addrs = append(s.Addrs, a)
	}
	if c.MAC != "" {
		if s.MAC, err = netcfg.ParseMAC(c.MAC); err != nil {
			return s, err
		}
	}
	for _, d := range c.DNS {
		ip, err := netcfg.ParseDNS(d)
		if err != nil {
			return s, err
		}
		s.DNS = append(s.DNS, ip)
	}
	for _, p := range c.Publish {
		pp, err := netcfg.ParsePublish(p)
		if err != nil {
			return s, err
		}
		s.Publish = append(s.Publish, pp)
	}
	return s, s.Check()
}

func resolvePort(name string) (string, error) {
	b, err := board.ReadBoardJSON(board.BoardJSONPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	links, _ := board.LinkNames()
	p, err := board.ResolvePort(b, name, links)
	if err != nil {
		return "", err
	}
	return p.Device, nil
}

func (n *NetAdapter) Attach(ctx context.Context, c *ContainerSpec, p Proc) (*NetInfo, error) {
	s, err := netSpec(c)
	if err != nil {
		return nil, &Error{Code: CodeInvalid, Msg: err.Error()}
	}
	// A port that is not there (yet: USB ethernet, netifd still starting)
	// is "unavailable", so the container waits and is retried, rather than
	// an error in its definition.
	port := s.Port
	if s.Mode == netcfg.ModeBridge && s.Bridge != netcfg.OtokBridge {
		port = s.Bridge
	}
	if port != "" {
		if _, err := resolvePort(port); err != nil {
			return nil, &Error{Code: CodeUnavailable, Msg: fmt.Sprintf("net %s: port %s: %v", c.Net, port, err)}
		}
	}
	proc := fmt.Sprintf("/proc/%d", p.Pid)
	rec, err := netcfg.Attach(ctx, netcfg.Config{Container: c.Name, Spec: s, NetNS: proc + "/ns/net", RootDir: proc + "/root",
		Hostname: c.Hostname, StateDir: n.StateDir, Resolve: resolvePort, DeviceID: n.DeviceID})
	if err != nil {
		if errors.Is(err, netcfg.ErrInvalid) {
			return nil, &Error{Code: CodeInvalid, Msg: err.Error()}
		}
		return nil, err
	}
	ni := &NetInfo{Mode: string(s.Mode)}
	if rec != nil {
		ni.MAC, ni.Link = rec.MAC, rec.Lower
		for _, a := range rec.Addrs {
			ni.Addrs = append(ni.Addrs, a.String())
		}
		if rec.Lease != nil {
			n.startMaintain(c.Name)
		}
	}
	return ni, nil
}

func (n *NetAdapter) startMaintain(name string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.maintain == nil {
		n.maintain = map[string]context.CancelFunc{}
	}
	if n.maintain[name] != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.maintain[name] = cancel
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		_ = netcfg.Maintain(ctx, n.StateDir, name)
	}()
}

// Resume keeps the lease of a re-adopted container.
func (n *NetAdapter) Resume(name string) { n.startMaintain(name) }

func (n *NetAdapter) Detach(ctx context.Context, name string) error {
	n.mu.Lock()
	if cancel := n.maintain[name]; cancel != nil {
		cancel()
		delete(n.maintain, name)
	}
	n.mu.Unlock()
	return netcfg.Detach(ctx, n.StateDir, name)
}

// Close stops lease renewal (containers keep their addresses until the
// leases expire or a new agent resumes them).
func (n *NetAdapter) Close() {
	n.mu.Lock()
	for _, c := range n.maintain {
		c()
	}
	n.maintain = nil
	n.mu.Unlock()
	n.wg.Wait()
}
