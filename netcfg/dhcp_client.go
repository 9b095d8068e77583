package netcfg

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netns"
)

// Lease is what a DHCP server granted.
type Lease struct {
	Addr     netip.Prefix  `json:"addr"`
	Router   netip.Addr    `json:"router,omitzero"`
	DNS      []netip.Addr  `json:"dns,omitempty"`
	Domain   string        `json:"domain,omitempty"`
	Server   netip.Addr    `json:"server"` // option 54
	Acquired time.Time     `json:"acquired"`
	Duration time.Duration `json:"duration"` // option 51
	T1       time.Duration `json:"t1"`       // renew after (option 58, default 1/2)
	T2       time.Duration `json:"t2"`       // rebind after (option 59, default 7/8)
}

// Expires is when the lease runs out.
func (l *Lease) Expires() time.Time { return l.Acquired.Add(l.Duration) }

// DHCPClient is a DHCPv4 client for one interface inside a network
// namespace, usable by a long-lived process: Acquire once, then Run keeps
// the lease (renew at T1 by unicast, rebind at T2 by broadcast, start over
// when it expires), and Release gives it back on stop. Its sockets live in
// NS whatever thread the caller runs on.
type DHCPClient struct {
	NS       netns.NsHandle
	IfName   string
	IfIndex  int
	MAC      net.HardwareAddr // chaddr
	ClientID []byte           // option 61
	Hostname string           // option 12, "" for none
	// OnLease is called when the lease changes: old nil on the first one,
	// new nil when it expired. It configures the interface.
	OnLease func(old, new *Lease) error

	Lease *Lease
}

// retransmission: 2 s, 4 s, 8 s … (RFC 2131 4.1 suggests 4 s doubling,
// randomised ±1 s; containers start faster with a shorter first wait).
func backoff(try int) time.Duration {
	d := time.Duration(2<<min(try, 4)) * time.Second / 2
	return d + time.Duration(rand.Int64N(int64(500*time.Millisecond)))
}

func (c *DHCPClient) base(typ byte, xid uint32) *dhcpMsg {
	m := &dhcpMsg{Op: bootRequest, Xid: xid, CHAddr: c.MAC}
	m.setOpt(optMsgType, []byte{typ})
	if len(c.ClientID) > 0 {
		m.setOpt(optClientID, c.ClientID)
	}
	return m
}

func (c *DHCPClient) request(typ byte, xid uint32) *dhcpMsg {
	m := c.base(typ, xid)
	m.setOpt(optMaxSize, binary.BigEndian.AppendUint16(nil, dhcpMaxLen))
	m.setOpt(optParams, []byte{optSubnetMask, optRouter, optDNS, optDomain, optLeaseTime, optT1, optT2})
	if c.Hostname != "" {
		m.setOpt(optHostname, []byte(c.Hostname))
	}
	return m
}

// exchange sends m (again at each backoff) until a reply of one of the
// wanted types with m's xid arrives, or ctx ends. limit caps the tries
// (0: until ctx ends).
func exchange(ctx context.Context, conn *dhcpConn, m *dhcpMsg, dst netip.Addr, limit int, want ...byte) (*dhcpMsg, error) {
	start := time.Now()
	for try := 0; limit == 0 || try < limit; try++ {
		m.Secs = uint16(min(time.Since(start)/time.Second, 0xffff))
		pkt, err := m.marshal()
		if err != nil {
			return nil, err
		}
		if err := conn.send(pkt, dst); err != nil {
			return nil, fmt.Errorf("send: %w", err)
		}
		deadline := time.Now().Add(backoff(try))
		for {
			b, err := conn.recv(ctx, deadline)
			if errors.Is(err, errTimeout) {
				break
			}
			if err != nil {
				return nil, err
			}
			r, err := parseDHCP(b)
			if err != nil || r.Op != bootReply || r.Xid != m.Xid {
				continue
			}
			for _, w := range want {
				if r.msgType() == w {
					return r, nil
				}
			}
		}
	}
	return nil, errTimeout
}

// leaseFrom turns an ACK into a Lease.
func leaseFrom(ack *dhcpMsg, server netip.Addr) (*Lease, error) {
	ip := ack.YIAddr
	if !ip.Is4() || ip.IsUnspecified() {
		return nil, errors.New("ACK without an address")
	}
	bits := 24
	if m := ack.opt(optSubnetMask); len(m) == 4 {
		ones, total := net.IPMask(m).Size()
		if total == 32 {
			bits = ones
		}
	} else if ip.As4()[0] < 128 {
		bits = 8 // classful default
	} else if ip.As4()[0] < 192 {
		bits = 16
	}
	l := &Lease{Addr: netip.PrefixFrom(ip, bits), Server: server, Acquired: time.Now(), Domain: string(ack.opt(optDomain))}
	if s := ack.optAddr(optServerID); s.IsValid() {
		l.Server = s
	}
	if r := ack.optAddrs(optRouter); len(r) > 0 {
		l.Router = r[0]
	}
	l.DNS = ack.optAddrs(optDNS)
	secs, ok := ack.optUint32(optLeaseTime)
	if !ok {
		return nil, errors.New("ACK without a lease time")
	}
	if secs == 0xffffffff {
		secs = 1 << 30 // infinite: ~34 years
	}
	l.Duration = time.Duration(secs) * time.Second
	l.T1, l.T2 = l.Duration/2, l.Duration*7/8
	if v, ok := ack.optUint32(optT1); ok && time.Duration(v)*time.Second < l.Duration {
		l.T1 = time.Duration(v) * time.Second
	}
	if v, ok := ack.optUint32(optT2); ok && time.Duration(v)*time.Second < l.Duration {
		l.T2 = time.Duration(v) * time.Second
	}
	if l.T1 > l.T2 {
		l.T1 = l.T2
	}
	return l, nil
}

// Acquire runs DISCOVER, OFFER, REQUEST, ACK until it holds a lease or
// ctx ends; a NAK starts over. It sets c.Lease and calls OnLease.
func (c *DHCPClient) Acquire(ctx context.Context) (*Lease, error) {
	conn, err := openRawDHCP(c.NS, c.IfIndex)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	bcast := netip.AddrFrom4([4]byte{255, 255, 255, 255})
	for {
		xid := rand.Uint32()
		disc := c.request(dhcpDiscover, xid)
		disc.Flags = 0x8000
		offer, err := exchange(ctx, conn, disc, bcast, 0, dhcpOffer)
		if err != nil {
			return nil, dhcpErr("no offer", err)
		}
		server := offer.optAddr(optServerID)
		if !server.IsValid() || !offer.YIAddr.Is4() {
			continue
		}
		req := c.request(dhcpRequest, xid)
		req.Flags = 0x8000
		req.setOpt(optRequested, offer.YIAddr.AsSlice())
		req.setOpt(optServerID, server.AsSlice())
		ack, err := exchange(ctx, conn, req, bcast, 3, dhcpAck, dhcpNak)
		if errors.Is(err, errTimeout) {
			continue
		}
		if err != nil {
			return nil, dhcpErr("no answer to request", err)
		}
		if ack.msgType() == dhcpNak {
			continue
		}
		l, err := leaseFrom(ack, server)
		if err != nil {
			continue
		}
		if err := c.setLease(l); err != nil {
			return nil, err
		}
		return l, nil
	}
}

func dhcpErr(what string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errTimeout) {
		return fmt.Errorf("%s: no DHCP server answered in time", what)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (c *DHCPClient) setLease(l *Lease) error {
	old := c.Lease
	if c.OnLease != nil {
		if err := c.OnLease(old, l); err != nil {
			return err
		}
	}
	c.Lease = l
	return nil
}

// extend sends REQUEST with ciaddr set: to the server (renew) or broadcast
// (rebind). A NAK ends the lease.
func (c *DHCPClient) extend(ctx context.Context, dst netip.Addr) (*Lease, error) {
	cur := c.Lease
	if cur == nil {
		return nil, errors.New("no lease")
	}
	conn, err := openUDPDHCP(c.NS, c.IfName, cur.Addr.Addr())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	req := c.request(dhcpRequest, rand.Uint32())
	req.CIAddr = cur.Addr.Addr()
	r, err := exchange(ctx, conn, req, dst, 3, dhcpAck, dhcpNak)
	if err != nil {
		return nil, err
	}
	if r.msgType() == dhcpNak {
		return nil, errNak
	}
	l, err := leaseFrom(r, cur.Server)
	if err != nil {
		return nil, err
	}
	return l, c.setLease(l)
}

var errNak = errors.New("server refused the lease (NAK)")

// Renew asks the server that granted the lease to extend it.
func (c *DHCPClient) Renew(ctx context.Context) (*Lease, error) {
	if c.Lease == nil {
		return nil, errors.New("no lease")
	}
	return c.extend(ctx, c.Lease.Server)
}

// Rebind asks any server to extend the lease.
func (c *DHCPClient) Rebind(ctx context.Context) (*Lease, error) {
	return c.extend(ctx, netip.AddrFrom4([4]byte{255, 255, 255, 255}))
}

// Release gives the lease back (one unanswered message) and forgets it.
// The caller removes the address.
func (c *DHCPClient) Release(ctx context.Context) error {
	l := c.Lease
	if l == nil {
		return nil
	}
	conn, err := openUDPDHCP(c.NS, c.IfName, l.Addr.Addr())
	if err != nil {
		return err
	}
	defer conn.Close()
	m := c.base(dhcpRelease, rand.Uint32())
	m.CIAddr = l.Addr.Addr()
	m.setOpt(optServerID, l.Server.AsSlice())
	pkt, err := m.marshal()
	if err != nil {
		return err
	}
	if err := conn.send(pkt, l.Server); err != nil {
		return fmt.Errorf("dhcp release: %w", err)
	}
	c.Lease = nil
	return nil
}

// Run keeps the lease until ctx ends: renew from T1 (retrying at half the
// remaining time, at least every minute), rebind from T2, and at expiry
// drop it (OnLease(old, nil)) and acquire a new one. It returns ctx's
// error; it does not release (call Release on stop).
func (c *DHCPClient) Run(ctx context.Context) error {
	for {
		if c.Lease == nil {
			if _, err := c.Acquire(ctx); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if !sleepCtx(ctx, 10*time.Second) {
					return ctx.Err()
				}
				continue
			}
		}
		l := c.Lease
		now := time.Now()
		t1, t2, exp := l.Acquired.Add(l.T1), l.Acquired.Add(l.T2), l.Expires()
		var next time.Time
		switch {
		case now.Before(t1):
			next = t1
		case now.Before(t2):
			if _, err := c.Renew(ctx); err == nil || errors.Is(err, errNak) {
				if errors.Is(err, errNak) {
					c.drop()
				}
				continue
			}
			next = now.Add(max(t2.Sub(now)/2, time.Minute))
			if next.After(t2) {
				next = t2
			}
		case now.Before(exp):
			if _, err := c.Rebind(ctx); err == nil || errors.Is(err, errNak) {
				if errors.Is(err, errNak) {
					c.drop()
				}
				continue
			}
			next = now.Add(max(exp.Sub(now)/2, time.Minute))
			if next.After(exp) {
				next = exp
			}
		default:
			c.drop()
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !sleepCtx(ctx, time.Until(next)) {
			return ctx.Err()
		}
	}
}

// drop forgets an expired or refused lease.
func (c *DHCPClient) drop() {
	old := c.Lease
	c.Lease = nil
	if c.OnLease != nil && old != nil {
		c.OnLease(old, nil)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
