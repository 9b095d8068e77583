package ubus

import (
	"context"
	"fmt"
	"strings"
)

// Event is a bus event (from Listen) or an object notification (from
// Subscribe): its type — the event id or notification type — and its data,
// blobmsg table content.
type Event struct {
	Type string
	Data []byte
}

// Decode unmarshals the event data into v (see Unmarshal).
func (e Event) Decode(v any) error { return Unmarshal(e.Data, v) }

// eventQueueLen bounds the events waiting for a slow callback; more are
// dropped (and logged) rather than stalling the connection.
const eventQueueLen = 256

// Send broadcasts event id with data to every listener whose pattern
// matches (`ubus send ID DATA`): INVOKE of "send" on ubusd's event object.
// Ids starting with "ubus." are reserved to ubusd.
func (c *Client) Send(ctx context.Context, id string, data any) error {
	content, err := Marshal(data)
	if err != nil {
		return fmt.Errorf("ubus send %s: %w", id, err)
	}
	e := encoder{}
	e.str("id", id)
	off := e.begin(TypeTable, "data")
	e.b = append(e.b, content...)
	e.end(off)
	m := &Message{Type: MsgInvoke, Peer: objEvent}
	m.PutU32(AttrObjID, objEvent)
	m.PutString(AttrMethod, "send")
	m.Add(AttrData, e.b)
	if err := c.do(ctx, m, nil); err != nil {
		return fmt.Errorf("ubus send %s: %w", id, err)
	}
	return nil
}

// Listener receives events registered with Listen.
type Listener struct {
	c    *Client
	obj  *Object
	q    chan Event
	stop chan struct{}
	done chan struct{}
}

// Listen registers fn for events whose id equals pattern, or starts with
// the prefix before a trailing '*' (`ubus listen PATTERN`). fn runs on one
// goroutine per listener, in arrival order. With Options.Reconnect the
// registration is renewed after ubusd restarts.
func (c *Client) Listen(ctx context.Context, pattern string, fn func(Event)) (*Listener, error) {
	if pattern == "" {
		return nil, fmt.Errorf("ubus listen: empty pattern")
	}
	l := c.newQueue(fn)
	l.obj.kind = "listener " + pattern
	l.obj.setup = func(ctx context.Context, cn *conn, o *Object) error {
		if err := registerPattern(ctx, c, cn, o, pattern); err != nil {
			return fmt.Errorf("ubus listen: %w", err)
		}
		return nil
	}
	if err := c.addObject(ctx, l.obj); err != nil {
		l.shutdown()
		return nil, err
	}
	return l, nil
}

func (c *Client) newQueue(fn func(Event)) *Listener {
	l := &Listener{c: c, q: make(chan Event, eventQueueLen),
		stop: make(chan struct{}), done: make(chan struct{})}
	l.obj = &Object{}
	l.obj.serve = func(ev Event, peer uint32) {
		ev.Data = append([]byte(nil), ev.Data...)
		select {
		case l.q <- ev:
		default:
			c.log.Warn("ubus: event queue full, dropping", "queue", l.obj.kind, "type", ev.Type)
		}
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		close(l.done)
		return l // addObject refuses it next
	}
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		defer close(l.done)
		for {
			select {
			case ev := <-l.q:
				fn(ev)
			case <-l.stop:
				return
			case <-c.stop:
				return
			}
		}
	}()
	return l
}

func (l *Listener) shutdown() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

// Close unregisters the listener (its object is removed, which drops the
// pattern in ubusd) and stops its goroutine.
func (l *Listener) Close(ctx context.Context) error {
	err := l.c.RemoveObject(ctx, l.obj)
	l.shutdown()
	return err
}

// Subscription receives the notifications of one object (Subscribe).
type Subscription struct {
	*Listener
	path string
}

// Subscribe subscribes to the notifications of the object at path (`ubus
// subscribe PATH`). fn runs on one goroutine per subscription, in order.
// When the object goes away ubusd ends the subscription; the subscriber
// watches ubus.object.add and subscribes again when an object with the same
// path appears (a restarted service). With Options.Reconnect it is renewed
// after ubusd restarts too.
func (c *Client) Subscribe(ctx context.Context, path string, fn func(Event)) (*Subscription, error) {
	if path == "" || strings.HasSuffix(path, "*") {
		return nil, fmt.Errorf("ubus subscribe %q: need one object path", path)
	}
	l := c.newQueue(fn)
	o := l.obj
	o.kind = "subscriber " + path
	o.unsub = func(target uint32) {
		c.log.Info("ubus: subscription ended by ubusd", "path", path, "target", fmt.Sprintf("%08x", target))
	}
	notify := o.serve
	o.serve = func(ev Event, peer uint32) {
		if peer != 0 || ev.Type != "ubus.object.add" {
			notify(ev, peer)
			return
		}
		var added struct {
			Path string `ubus:"path"`
		}
		if ev.Decode(&added) != nil || added.Path != path {
			return
		}
		// On the reader goroutine: subscribe from another one.
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			cn, err := c.current()
			if err != nil {
				return
			}
			ctx, cancel := context.WithTimeout(c.ctx, c.opts.Timeout)
			defer cancel()
			if err := subscribeTo(ctx, c, cn, o, path); err != nil {
				c.log.Warn("ubus: subscribe again", "path", path, "err", err)
			}
		}()
	}
	o.setup = func(ctx context.Context, cn *conn, o *Object) error {
		if err := registerPattern(ctx, c, cn, o, "ubus.object.add"); err != nil {
			return fmt.Errorf("ubus subscribe %s: %w", path, err)
		}
		return subscribeTo(ctx, c, cn, o, path)
	}
	if err := c.addObject(ctx, o); err != nil {
		l.shutdown()
		return nil, err
	}
	return &Subscription{Listener: l, path: path}, nil
}

// subscribeTo looks up path and subscribes object o to it.
func subscribeTo(ctx context.Context, c *Client, cn *conn, o *Object, path string) error {
	lm := &Message{Type: MsgLookup}
	lm.PutString(AttrObjPath, path)
	var target uint32
	err := cn.request(ctx, lm, func(r *Message) {
		if id, ok := r.U32(AttrObjID); ok && target == 0 {
			target = id
		}
	})
	if err == nil && target == 0 {
		err = StatusNotFound
	}
	if err != nil {
		return fmt.Errorf("ubus subscribe %s: lookup: %w", path, err)
	}
	c.mu.Lock()
	id := o.id
	c.mu.Unlock()
	m := &Message{Type: MsgSubscribe}
	m.PutU32(AttrObjID, id)
	m.PutU32(AttrTarget, target)
	if err := cn.request(ctx, m, nil); err != nil {
		return fmt.Errorf("ubus subscribe %s: %w", path, err)
	}
	return nil
}

// registerPattern asks ubusd's event object to deliver events matching
// pattern to object o.
func registerPattern(ctx context.Context, c *Client, cn *conn, o *Object, pattern string) error {
	c.mu.Lock()
	id := o.id
	c.mu.Unlock()
	e := encoder{}
	e.i32("object", id)
	e.str("pattern", pattern)
	m := &Message{Type: MsgInvoke, Peer: objEvent}
	m.PutU32(AttrObjID, objEvent)
	m.PutString(AttrMethod, "register")
	m.Add(AttrData, e.b)
	if err := cn.request(ctx, m, nil); err != nil {
		return fmt.Errorf("register event pattern %s: %w", pattern, err)
	}
	return nil
}
