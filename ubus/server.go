package ubus

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
)

// Handler serves one method call. It answers with req.Reply (zero or more
// DATA messages) and its return value becomes the final status: nil is
// UBUS_STATUS_OK, other errors map through StatusOf. A handler that called
// req.Defer and returns nil answers later with req.Reply and req.Complete.
type Handler func(ctx context.Context, req *Request) error

// Method is one method of an Object.
type Method struct {
	// Args is the signature that `ubus -v list` shows: argument name →
	// blobmsg type. Before the handler runs, arguments present with an
	// incompatible type are refused with UBUS_STATUS_INVALID_ARGUMENT
	// (integer widths convert when the value fits; integers pass as
	// double; TypeUnspec accepts anything). Absent arguments pass: the
	// handler decides what is required.
	Args    map[string]Type
	Handler Handler
}

// Object is an object this client publishes on the bus. Set Name and
// Methods, then Client.AddObject. With Options.Reconnect it is added again
// (with a new id) after ubusd restarts.
type Object struct {
	Name    string
	Methods map[string]Method
	// OnSubscribe, if set, runs on its own goroutine when the object gains
	// its first subscriber (true) or loses its last (false); calls may
	// overlap, so use HasSubscribers for the current state.
	OnSubscribe func(active bool)

	c      *Client
	regOn  *conn  // connection it is (being) registered on, guarded by c.mu
	id     uint32 // guarded by c.mu; 0 while not registered
	typeID uint32
	active bool

	// Internal objects (event listeners, subscribers) take every method
	// name through serve and run setup after each registration.
	serve  func(ev Event, peer uint32) // peer 0: a bus event
	setup  func(ctx context.Context, cn *conn, o *Object) error
	unsub  func(target uint32)
	kind   string
	closed bool
}

func (o *Object) label() string {
	if o.Name != "" {
		return o.Name
	}
	return o.kind
}

// ID returns the object's id on the current connection, 0 if none.
func (o *Object) ID() uint32 {
	if o.c == nil {
		return 0
	}
	o.c.mu.Lock()
	defer o.c.mu.Unlock()
	return o.id
}

// HasSubscribers reports whether anyone subscribed to the object.
func (o *Object) HasSubscribers() bool {
	if o.c == nil {
		return false
	}
	o.c.mu.Lock()
	defer o.c.mu.Unlock()
	return o.active
}

// signature encodes the methods as UBUS_ATTR_SIGNATURE content: one
// blobmsg table per method, one int32 per argument holding its type.
func (o *Object) signature() ([]byte, error) {
	names := make([]string, 0, len(o.Methods))
	for n := range o.Methods {
		names = append(names, n)
	}
	sort.Strings(names)
	e := encoder{}
	for _, n := range names {
		off, err := e.nest(TypeTable, n)
		if err != nil {
			return nil, err
		}
		args := o.Methods[n].Args
		an := make([]string, 0, len(args))
		for a := range args {
			an = append(an, a)
		}
		sort.Strings(an)
		for _, a := range an {
			e.i32(a, uint32(args[a]))
		}
		e.unnest(off)
	}
	return e.b, e.err
}

// AddObject publishes o (ADD_OBJECT with its signature). With
// Options.Reconnect and no connection at the moment, o is kept and added
// when the connection returns.
func (c *Client) AddObject(ctx context.Context, o *Object) error {
	if o.Name == "" {
		return fmt.Errorf("ubus: add object: empty name")
	}
	for n, m := range o.Methods {
		if n == "" || m.Handler == nil {
			return fmt.Errorf("ubus: add object %s: method %q without name or handler", o.Name, n)
		}
	}
	return c.addObject(ctx, o)
}

func (c *Client) addObject(ctx context.Context, o *Object) error {
	c.mu.Lock()
	if o.c != nil {
		c.mu.Unlock()
		return fmt.Errorf("ubus: add object %s: already added", o.label())
	}
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("ubus: add object %s: client closed", o.label())
	}
	o.c = c
	c.objects = append(c.objects, o)
	cn := c.cn
	c.mu.Unlock()
	if cn == nil && c.opts.Reconnect {
		return nil
	}
	var err error
	if cn == nil {
		err = errNotConnected
	} else {
		ctx, cancel := c.withTimeout(ctx)
		err = c.register(ctx, cn, o)
		cancel()
	}
	if err != nil {
		c.mu.Lock()
		id := o.id
		c.mu.Unlock()
		c.forget(o)
		if id != 0 && cn != nil { // added, but setup failed: withdraw it
			m := &Message{Type: MsgRemoveObject}
			m.PutU32(AttrObjID, id)
			c.doOn(ctx, cn, m, nil) // best effort: err says why it failed
		}
		return err
	}
	return nil
}

func (c *Client) forget(o *Object) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.objects {
		if x == o {
			c.objects = append(c.objects[:i], c.objects[i+1:]...)
			break
		}
	}
	if o.id != 0 && c.byID[o.id] == o {
		delete(c.byID, o.id)
	}
	o.id, o.typeID, o.active, o.c, o.regOn = 0, 0, false, nil, nil
}

// register sends ADD_OBJECT for o on cn, records its id, then runs setup.
func (c *Client) register(ctx context.Context, cn *conn, o *Object) (err error) {
	c.mu.Lock()
	if o.regOn == cn || o.c != c { // raced with reregister, or removed
		c.mu.Unlock()
		return nil
	}
	o.regOn = cn
	c.mu.Unlock()
	defer func() {
		if err != nil {
			c.mu.Lock()
			if o.regOn == cn {
				o.regOn = nil
			}
			c.mu.Unlock()
		}
	}()
	m := &Message{Type: MsgAddObject}
	if o.Name != "" {
		sig, err := o.signature()
		if err != nil {
			return fmt.Errorf("ubus: add object %s: %w", o.Name, err)
		}
		m.PutString(AttrObjPath, o.Name)
		m.Add(AttrSignature, sig)
	}
	got := false
	err = cn.request(ctx, m, func(r *Message) {
		id, ok := r.U32(AttrObjID)
		if !ok {
			return
		}
		typ, _ := r.U32(AttrObjType)
		// Record the id on the reader goroutine, before any INVOKE
		// for the new object can be read.
		c.mu.Lock()
		o.id, o.typeID, got = id, typ, true
		c.byID[id] = o
		c.mu.Unlock()
	})
	if err == nil && !got {
		err = StatusNoData
	}
	if err != nil {
		return fmt.Errorf("ubus: add object %s: %w", o.label(), err)
	}
	if o.setup != nil {
		return o.setup(ctx, cn, o)
	}
	return nil
}

// RemoveObject withdraws o from the bus (REMOVE_OBJECT).
func (c *Client) RemoveObject(ctx context.Context, o *Object) error {
	c.mu.Lock()
	if o.c != c {
		c.mu.Unlock()
		return fmt.Errorf("ubus: remove object %s: not added", o.label())
	}
	id, cn := o.id, c.cn
	c.mu.Unlock()
	c.forget(o)
	if id == 0 || cn == nil {
		return nil
	}
	m := &Message{Type: MsgRemoveObject}
	m.PutU32(AttrObjID, id)
	if err := c.doOn(ctx, cn, m, nil); err != nil {
		return fmt.Errorf("ubus: remove object %s: %w", o.label(), err)
	}
	return nil
}

// Notify sends a notification of type typ with data to the object's
// subscribers (NOTIFY). It returns once ubusd accepted it; the subscribers'
// answers are not awaited.
func (o *Object) Notify(ctx context.Context, typ string, data any) error {
	c := o.c
	if c == nil {
		return fmt.Errorf("ubus: notify %s: object not added", o.label())
	}
	d, err := Marshal(data)
	if err != nil {
		return fmt.Errorf("ubus: notify %s %s: %w", o.label(), typ, err)
	}
	c.mu.Lock()
	id, cn := o.id, c.cn
	c.mu.Unlock()
	if id == 0 || cn == nil {
		return fmt.Errorf("ubus: notify %s %s: %w", o.label(), typ, errNotConnected)
	}
	m := &Message{Type: MsgNotify, Peer: id}
	m.PutU32(AttrObjID, id)
	m.PutString(AttrMethod, typ)
	m.Add(AttrData, d)
	if err := c.doOn(ctx, cn, m, nil); err != nil {
		return fmt.Errorf("ubus: notify %s %s: %w", o.label(), typ, err)
	}
	return nil
}

// Request is one incoming method call.
type Request struct {
	Object *Object
	Method string
	// User and Group of the caller, as ubusd reports them (may be empty).
	User, Group string
	// Data is the arguments: blobmsg table content. Use Decode.
	Data []byte

	cn      *conn
	seq     uint16
	peer    uint32
	objID   uint32
	noReply bool

	mu       sync.Mutex
	deferred bool
	done     bool
}

// Decode unmarshals the arguments into v (see Unmarshal). Its errors map to
// UBUS_STATUS_INVALID_ARGUMENT when returned from the handler.
func (r *Request) Decode(v any) error { return Unmarshal(r.Data, v) }

// Reply sends one DATA message with v (encoded with Marshal) to the caller.
// `ubus call` prints the last one.
func (r *Request) Reply(v any) error {
	d, err := Marshal(v)
	if err != nil {
		return fmt.Errorf("ubus: reply %s %s: %w", r.Object.label(), r.Method, err)
	}
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	if done {
		return fmt.Errorf("ubus: reply %s %s: request already completed", r.Object.label(), r.Method)
	}
	if r.noReply {
		return nil
	}
	m := &Message{Type: MsgData, Seq: r.seq, Peer: r.peer}
	m.PutU32(AttrObjID, r.objID)
	m.Add(AttrData, d)
	return r.cn.send(context.Background(), m)
}

// Defer keeps the request open after the handler returns nil; finish it
// with Complete.
func (r *Request) Defer() {
	r.mu.Lock()
	r.deferred = true
	r.mu.Unlock()
}

// Complete sends the final status for err (see StatusOf). Later calls do
// nothing. If the connection was lost meanwhile it returns an error; the
// caller has already been told the call failed.
func (r *Request) Complete(err error) error {
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		return nil
	}
	r.done = true
	r.mu.Unlock()
	if r.noReply {
		return nil
	}
	m := &Message{Type: MsgStatus, Seq: r.seq, Peer: r.peer}
	m.PutU32(AttrStatus, uint32(StatusOf(err)))
	m.PutU32(AttrObjID, r.objID)
	return r.cn.send(context.Background(), m)
}

// serveInvoke answers an INVOKE: unknown object → NOT_FOUND, missing method
// or data → INVALID_ARGUMENT, unknown method → METHOD_NOT_FOUND, arguments
// not matching the signature → INVALID_ARGUMENT; otherwise the handler runs
// on its own goroutine.
func (c *Client) serveInvoke(cn *conn, m *Message) {
	objID, _ := m.U32(AttrObjID)
	req := &Request{cn: cn, seq: m.Seq, peer: m.Peer, objID: objID}
	if v, ok := m.U8(AttrNoReply); ok && v != 0 {
		req.noReply = true
	}
	c.mu.Lock()
	o := c.byID[objID]
	c.mu.Unlock()
	if o == nil {
		req.Complete(StatusNotFound)
		return
	}
	req.Object = o
	method, ok := m.Str(AttrMethod)
	if !ok {
		req.Complete(StatusInvalidArgument)
		return
	}
	req.Method = method
	req.User, _ = m.Str(AttrUser)
	req.Group, _ = m.Str(AttrGroup)
	data, hasData := m.Get(AttrData)
	req.Data = data

	if o.serve != nil { // event listener or subscriber
		o.serve(Event{Type: method, Data: data}, m.Peer)
		req.Complete(nil)
		return
	}
	meth, ok := o.Methods[method]
	if !ok {
		req.Complete(StatusMethodNotFound)
		return
	}
	if !hasData {
		req.Complete(StatusInvalidArgument)
		return
	}
	if err := checkArgs(data, meth.Args); err != nil {
		c.log.Info("ubus: refusing call", "object", o.Name, "method", method, "err", err)
		req.Complete(StatusInvalidArgument)
		return
	}
	select {
	case c.hsem <- struct{}{}:
	case <-c.stop:
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() { <-c.hsem }()
		err := callHandler(c, meth.Handler, req)
		req.mu.Lock()
		deferred := req.deferred
		req.mu.Unlock()
		if err != nil && StatusOf(err) == StatusUnknownError {
			c.log.Warn("ubus: handler failed", "object", o.Name, "method", method, "err", err)
		}
		if err != nil || !deferred {
			req.Complete(err)
		}
	}()
}

// callHandler runs a handler; a panic is logged and answered with
// UBUS_STATUS_UNKNOWN_ERROR instead of taking the process down.
func callHandler(c *Client, h Handler, req *Request) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("ubus: handler panicked", "object", req.Object.Name, "method", req.Method, "panic", fmt.Sprint(p))
			err = StatusUnknownError
		}
	}()
	return h(c.ctx, req)
}

// checkArgs checks the arguments present in data against a signature.
func checkArgs(data []byte, sig map[string]Type) error {
	var args Table
	if err := Unmarshal(data, &args); err != nil {
		return err
	}
	for _, f := range args {
		want, ok := sig[f.Name]
		if !ok || want == TypeUnspec {
			continue
		}
		if !argFits(f.Value, want) {
			return &TypeError{Path: f.Name, Want: want.String(), Got: genericTypeName(f.Value)}
		}
	}
	return nil
}

func argFits(v any, want Type) bool {
	switch want {
	case TypeString:
		_, ok := v.(string)
		return ok
	case TypeTable:
		_, ok := v.(Table)
		return ok
	case TypeArray:
		_, ok := v.([]any)
		return ok
	case TypeDouble:
		if _, ok := v.(float64); ok {
			return true
		}
		_, ok := genericInt(v)
		return ok
	case TypeInt8, TypeInt16, TypeInt32, TypeInt64:
		i, ok := genericInt(v)
		if !ok {
			return false
		}
		switch want {
		case TypeInt8:
			return i >= math.MinInt8 && i <= math.MaxUint8
		case TypeInt16:
			return i >= math.MinInt16 && i <= math.MaxUint16
		case TypeInt32:
			return i >= math.MinInt32 && i <= math.MaxUint32
		}
		return true
	}
	return true
}

// serveSubscribeState handles ubusd's NOTIFY {OBJID, ACTIVE}: the object
// gained its first or lost its last subscriber.
func (c *Client) serveSubscribeState(m *Message) {
	id, ok1 := m.U32(AttrObjID)
	active, ok2 := m.U8(AttrActive)
	if !ok1 || !ok2 {
		return
	}
	c.mu.Lock()
	o := c.byID[id]
	if o != nil {
		o.active = active != 0
	}
	c.mu.Unlock()
	if o != nil && o.OnSubscribe != nil {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			o.OnSubscribe(active != 0)
		}()
	}
}

// serveUnsubscribe handles ubusd's UNSUBSCRIBE {OBJID, TARGET}: an object
// we subscribed to went away.
func (c *Client) serveUnsubscribe(m *Message) {
	id, ok1 := m.U32(AttrObjID)
	target, ok2 := m.U32(AttrTarget)
	if !ok1 || !ok2 {
		return
	}
	c.mu.Lock()
	o := c.byID[id]
	c.mu.Unlock()
	if o != nil && o.unsub != nil {
		o.unsub(target)
	}
}
