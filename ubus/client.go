package ubus

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Client is a connection to ubusd: it calls other objects, serves its own
// objects, sends and receives events. Its methods are safe for concurrent
// use. Close stops every goroutine it started.
type Client struct {
	opts Options
	log  *slog.Logger

	ctx    context.Context // cancelled by Close; parent of handler contexts
	cancel context.CancelFunc
	stop   chan struct{}
	wg     sync.WaitGroup // reader, supervisor, handlers, event workers
	hsem   chan struct{}  // bounds concurrent handlers

	mu      sync.Mutex
	cn      *conn // nil while disconnected
	closed  bool
	objects []*Object          // everything to (re-)register, in order
	byID    map[uint32]*Object // ids on the current connection
}

// Dial connects to ubusd and returns a client. The first connection attempt
// is made here and its error returned; with opts.Reconnect later losses are
// repaired in the background until Close.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(5*time.Second, opts.MinBackoff)
	}
	if opts.MaxHandlers <= 0 {
		opts.MaxHandlers = 16
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cn, err := dial(ctx, opts.Path)
	if err != nil {
		return nil, fmt.Errorf("ubus: connect: %w", err)
	}
	c := &Client{opts: opts, log: log, stop: make(chan struct{}),
		hsem: make(chan struct{}, opts.MaxHandlers), cn: cn, byID: map[uint32]*Object{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(2)
	go c.readLoop(cn)
	go c.supervise(cn)
	return c, nil
}

// Close disconnects, fails pending requests, cancels handler contexts and
// waits for every goroutine of the client, including running handlers.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	cn := c.cn
	c.mu.Unlock()
	close(c.stop)
	c.cancel()
	if cn != nil {
		cn.nc.Close()
	}
	c.wg.Wait()
	return nil
}

func (c *Client) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// ID is the client id ubusd assigned to the current connection (0 while
// disconnected).
func (c *Client) ID() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cn == nil {
		return 0
	}
	return c.cn.localID
}

func (c *Client) current() (*conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("ubus: client closed: %w", StatusConnectionFailed)
	}
	if c.cn == nil {
		return nil, errNotConnected
	}
	return c.cn, nil
}

// withTimeout applies Options.Timeout when ctx has no deadline.
func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.opts.Timeout)
}

// do sends one request on the current connection and turns a non-zero
// status into an error.
func (c *Client) do(ctx context.Context, m *Message, onData func(*Message)) error {
	cn, err := c.current()
	if err != nil {
		return err
	}
	return c.doOn(ctx, cn, m, onData)
}

// doOn is do on the connection cn: requests that name an object id must go
// to the connection that registered it, not to whichever is current.
func (c *Client) doOn(ctx context.Context, cn *conn, m *Message, onData func(*Message)) error {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	return cn.request(ctx, m, onData)
}

// Ping checks that ubusd answers.
func (c *Client) Ping(ctx context.Context) error {
	if err := c.do(ctx, &Message{Type: MsgPing}, nil); err != nil {
		return fmt.Errorf("ubus ping: %w", err)
	}
	return nil
}

// ObjectInfo describes an object found by Lookup.
type ObjectInfo struct {
	Path   string
	ID     uint32
	TypeID uint32
	// Signature maps method names to argument names and types.
	Signature map[string]map[string]Type
}

// Methods returns the method names in order.
func (o ObjectInfo) Methods() []string {
	names := make([]string, 0, len(o.Signature))
	for n := range o.Signature {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Lookup lists the objects whose path is path, or starts with the prefix
// before a trailing '*'; "" lists all objects. No match is StatusNotFound.
func (c *Client) Lookup(ctx context.Context, path string) ([]ObjectInfo, error) {
	m := &Message{Type: MsgLookup}
	if path != "" {
		m.PutString(AttrObjPath, path)
	}
	var out []ObjectInfo
	var perr error
	err := c.do(ctx, m, func(r *Message) {
		info, err := parseObjectInfo(r)
		if err != nil {
			perr = err
			return
		}
		out = append(out, info)
	})
	if err == nil {
		err = perr
	}
	if err != nil {
		return nil, fmt.Errorf("ubus lookup %q: %w", path, err)
	}
	return out, nil
}

func parseObjectInfo(r *Message) (ObjectInfo, error) {
	var info ObjectInfo
	var ok1, ok2, ok3 bool
	info.Path, ok1 = r.Str(AttrObjPath)
	info.ID, ok2 = r.U32(AttrObjID)
	info.TypeID, ok3 = r.U32(AttrObjType)
	if !ok1 || !ok2 || !ok3 {
		return info, fmt.Errorf("lookup reply without path, id or type")
	}
	info.Signature = map[string]map[string]Type{}
	if sig, ok := r.Get(AttrSignature); ok {
		var methods map[string]any
		if err := Unmarshal(sig, &methods); err != nil {
			return info, fmt.Errorf("object %s: signature: %w", info.Path, err)
		}
		for name, a := range methods {
			args := map[string]Type{}
			if am, ok := a.(map[string]any); ok {
				for an, t := range am {
					if ti, ok := t.(int32); ok {
						args[an] = Type(ti)
					}
				}
			}
			info.Signature[name] = args
		}
	}
	return info, nil
}

// LookupID returns the id of the object at path.
func (c *Client) LookupID(ctx context.Context, path string) (uint32, error) {
	objs, err := c.Lookup(ctx, path)
	if err != nil {
		return 0, err
	}
	if len(objs) == 0 {
		return 0, fmt.Errorf("ubus lookup %q: %w", path, StatusNotFound)
	}
	return objs[0].ID, nil
}

// Invoke calls method on the object with id; args is encoded with Marshal
// (nil sends an empty table). onData, if not nil, gets the payload of each
// DATA reply (blobmsg table content, valid only during the callback); it
// runs on the connection's reader, so it must not block or use the client.
// Invoke waits for the final status until ctx ends (Options.Timeout without
// a deadline); a non-OK status is returned as a Status error.
func (c *Client) Invoke(ctx context.Context, id uint32, method string, args any, onData func(data []byte) error) error {
	if err := c.invoke(ctx, id, method, args, onData); err != nil {
		return fmt.Errorf("ubus invoke %08x %s: %w", id, method, err)
	}
	return nil
}

func (c *Client) invoke(ctx context.Context, id uint32, method string, args any, onData func(data []byte) error) error {
	data, err := Marshal(args)
	if err != nil {
		return err
	}
	m := &Message{Type: MsgInvoke, Peer: id}
	m.PutU32(AttrObjID, id)
	m.PutString(AttrMethod, method)
	m.Add(AttrData, data)
	var derr error
	err = c.do(ctx, m, func(r *Message) {
		d, ok := r.Get(AttrData)
		if !ok || onData == nil || derr != nil {
			return
		}
		derr = onData(d)
	})
	if err == nil {
		err = derr
	}
	return err
}

// Call looks up path and invokes method, decoding the reply into reply (if
// not nil) with Unmarshal — like `ubus call PATH METHOD ARGS`.
func (c *Client) Call(ctx context.Context, path, method string, args, reply any) error {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	id, err := c.LookupID(ctx, path)
	if err != nil {
		return err
	}
	err = c.invoke(ctx, id, method, args, func(d []byte) error {
		if reply == nil {
			return nil
		}
		return Unmarshal(d, reply)
	})
	if err != nil {
		return fmt.Errorf("ubus call %s %s: %w", path, method, err)
	}
	return nil
}

// dispatch handles one message from ubusd on the reader goroutine.
func (c *Client) dispatch(cn *conn, m *Message) {
	switch m.Type {
	case MsgStatus, MsgData:
		if !cn.reply(m) {
			c.log.Debug("ubus: reply for no pending request", "msg", m.String())
		}
	case MsgInvoke:
		c.serveInvoke(cn, m)
	case MsgNotify:
		c.serveSubscribeState(m)
	case MsgUnsubscribe:
		c.serveUnsubscribe(m)
	default:
		c.log.Debug("ubus: ignoring message", "msg", m.String())
	}
}
