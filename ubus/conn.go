package ubus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"
)

// Socket paths: OpenWrt's ubusd listens on DefaultSocket; older releases
// used FallbackSocket.
const (
	DefaultSocket  = "/var/run/ubus/ubus.sock"
	FallbackSocket = "/var/run/ubus.sock"
)

// clientIDChannel is UBUS_CLIENT_ID_CHANNEL: ids up to it are not clients.
const clientIDChannel = 1

// Options configure a Client. The zero value connects to the default socket
// once, with a 30 s default request timeout.
type Options struct {
	// Path of ubusd's socket; "" tries DefaultSocket, then FallbackSocket.
	Path string
	// Timeout applies to requests whose context has no deadline (the
	// `ubus` CLI waits 30 s by default). Zero means 30 s.
	Timeout time.Duration
	// Reconnect keeps the client alive across ubusd restarts: it redials
	// with jittered exponential backoff between MinBackoff (default 100 ms)
	// and MaxBackoff (default 5 s), then adds its objects, event listeners
	// and subscriptions again. Requests made while disconnected fail with
	// StatusConnectionFailed.
	Reconnect              bool
	MinBackoff, MaxBackoff time.Duration
	// MaxHandlers bounds the method handlers running at once (default 16);
	// when all are busy the client stops reading until one returns.
	MaxHandlers int
	// Logger receives dropped messages and reconnects; nil discards.
	Logger *slog.Logger
}

// errNotConnected is returned while the client waits to reconnect.
var errNotConnected = fmt.Errorf("not connected: %w", StatusConnectionFailed)

// conn is one connection to ubusd and its pending requests.
type conn struct {
	nc      net.Conn
	localID uint32
	path    string

	wmu sync.Mutex // serialises writes: a message goes out in one Write

	mu      sync.Mutex
	seq     uint16
	pending map[uint16]*pending
	closed  bool
	done    chan struct{} // closed when the reader has stopped
}

type pending struct {
	peer   uint32
	onData func(*Message) // runs on the reader goroutine
	status chan Status    // receives the final STATUS (buffered)
}

// dialPath connects to one socket and reads ubusd's HELLO.
func dialPath(ctx context.Context, path string) (*conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(5 * time.Second)
	}
	nc.SetReadDeadline(dl)
	m, _, err := ReadMessage(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("ubus %s: read hello: %w", path, err)
	}
	nc.SetReadDeadline(time.Time{})
	if m.Type != MsgHello || m.Peer <= clientIDChannel {
		nc.Close()
		return nil, fmt.Errorf("ubus %s: expected hello, got %v", path, m)
	}
	return &conn{nc: nc, localID: m.Peer, path: path, seq: 0,
		pending: map[uint16]*pending{}, done: make(chan struct{})}, nil
}

// socketCandidates are the paths FindSocket tries, in order (a variable so
// tests can point it elsewhere).
var socketCandidates = []string{DefaultSocket, FallbackSocket}

// FindSocket returns the first of DefaultSocket and FallbackSocket that
// exists, or "" when neither does (ubus is not running on this system).
func FindSocket() string {
	for _, p := range socketCandidates {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Type() == os.ModeSocket {
			return p
		}
	}
	return ""
}

// dial connects to path or, if empty, the default then the fallback socket.
func dial(ctx context.Context, path string) (*conn, error) {
	if path != "" {
		return dialPath(ctx, path)
	}
	if p := FindSocket(); p != "" {
		return dialPath(ctx, p)
	}
	return nil, fmt.Errorf("no socket at %s or %s: %w", DefaultSocket, FallbackSocket, os.ErrNotExist)
}

// send writes one message. A failed or partial write loses framing, so it
// closes the connection (the reader then stops and the client reconnects).
func (cn *conn) send(ctx context.Context, m *Message) error {
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	dl, _ := ctx.Deadline()
	cn.nc.SetWriteDeadline(dl)
	if _, err := cn.nc.Write(b); err != nil {
		cn.nc.Close()
		return fmt.Errorf("ubus: send %s: %w (%w)", m.Type, StatusConnectionFailed, err)
	}
	return nil
}

// request sends m with a fresh seq and waits for its STATUS; DATA replies
// with the same seq and peer go to onData first. A status other than
// UBUS_STATUS_OK is the error.
func (cn *conn) request(ctx context.Context, m *Message, onData func(*Message)) error {
	p := &pending{peer: m.Peer, onData: onData, status: make(chan Status, 1)}
	cn.mu.Lock()
	if cn.closed {
		cn.mu.Unlock()
		return errNotConnected
	}
	for {
		cn.seq++
		if _, busy := cn.pending[cn.seq]; !busy {
			break
		}
	}
	m.Seq = cn.seq
	cn.pending[m.Seq] = p
	cn.mu.Unlock()
	drop := func() {
		cn.mu.Lock()
		if cn.pending[m.Seq] == p {
			delete(cn.pending, m.Seq)
		}
		cn.mu.Unlock()
	}
	if err := cn.send(ctx, m); err != nil {
		drop()
		return err
	}
	select {
	case st := <-p.status:
		if st != StatusOK {
			return st
		}
		return nil
	case <-ctx.Done():
		drop()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("ubus %s: %w (%w)", m.Type, StatusTimeout, ctx.Err())
		}
		return ctx.Err()
	}
}

// reply routes a STATUS or DATA message to its pending request.
func (cn *conn) reply(m *Message) bool {
	cn.mu.Lock()
	p := cn.pending[m.Seq]
	if p == nil || p.peer != m.Peer {
		cn.mu.Unlock()
		return false
	}
	if m.Type == MsgStatus {
		delete(cn.pending, m.Seq)
	}
	cn.mu.Unlock()
	if m.Type == MsgData {
		if p.onData != nil {
			p.onData(m)
		}
		return true
	}
	st := StatusInvalidArgument // what libubus assumes without UBUS_ATTR_STATUS
	if v, ok := m.U32(AttrStatus); ok {
		st = Status(v)
	}
	p.status <- st
	return true
}

// shutdown fails every pending request and marks the connection closed.
func (cn *conn) shutdown() {
	cn.nc.Close()
	cn.mu.Lock()
	cn.closed = true
	for seq, p := range cn.pending {
		delete(cn.pending, seq)
		p.status <- StatusConnectionFailed
	}
	cn.mu.Unlock()
}

// readLoop reads until the connection fails. Malformed messages that are
// still framed are logged and dropped; lost framing ends the connection.
func (c *Client) readLoop(cn *conn) {
	defer c.wg.Done()
	defer close(cn.done)
	defer cn.shutdown()
	for {
		m, raw, err := ReadMessage(cn.nc)
		if err != nil {
			if raw != nil {
				c.log.Warn("ubus: dropping malformed message", "err", err, "len", len(raw))
				continue
			}
			if !c.isClosed() {
				c.log.Warn("ubus: connection lost", "path", cn.path, "err", err)
			}
			return
		}
		c.dispatch(cn, m)
	}
}

// supervise owns the connection's lifetime: when the reader stops it
// forgets the ids of the old connection and, with Reconnect, dials again
// and registers everything anew.
func (c *Client) supervise(cn *conn) {
	defer c.wg.Done()
	for {
		select {
		case <-cn.done:
		case <-c.stop:
			return
		}
		c.detach(cn)
		if !c.opts.Reconnect {
			return
		}
		if cn = c.redial(); cn == nil {
			return
		}
		c.reregister(cn)
	}
}

func (c *Client) redial() *conn {
	backoff := c.opts.MinBackoff
	for {
		// Jitter (half to full backoff): clients of a restarted ubusd
		// must not all come back in the same instant.
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-c.stop:
			return nil
		case <-time.After(wait):
		}
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		cn, err := dial(ctx, c.opts.Path)
		cancel()
		if err == nil {
			c.mu.Lock()
			if c.closed {
				c.mu.Unlock()
				cn.nc.Close()
				return nil
			}
			c.cn = cn
			c.wg.Add(1)
			c.mu.Unlock()
			go c.readLoop(cn)
			c.log.Info("ubus: reconnected", "path", cn.path, "id", fmt.Sprintf("%08x", cn.localID))
			return cn
		}
		c.log.Debug("ubus: reconnect failed", "err", err, "retry_in", backoff)
		backoff = min(backoff*2, c.opts.MaxBackoff)
	}
}

func (c *Client) detach(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cn == cn {
		c.cn = nil
	}
	for id, o := range c.byID {
		delete(c.byID, id)
		o.id, o.typeID, o.active = 0, 0, false
	}
	for _, o := range c.objects {
		if o.regOn == cn {
			o.regOn = nil
		}
	}
}

// reregister adds every object again on a new connection, then runs the
// per-object setup (event pattern, subscription).
func (c *Client) reregister(cn *conn) {
	c.mu.Lock()
	objs := append([]*Object(nil), c.objects...)
	c.mu.Unlock()
	for _, o := range objs {
		ctx, cancel := context.WithTimeout(c.ctx, c.opts.Timeout)
		err := c.register(ctx, cn, o)
		cancel()
		if err != nil {
			c.log.Warn("ubus: re-register after reconnect", "object", o.label(), "err", err)
		}
	}
}
