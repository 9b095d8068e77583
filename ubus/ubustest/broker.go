// Package ubustest provides Broker, a test double of ubusd: an in-process
// server that speaks ubusd's wire protocol on a Unix socket, so that tests
// of ubus clients and objects run where the real ubusd is not installed
// (it is not packaged in Debian). Like net/http/httptest, it is for tests
// only; nothing in a production binary imports it.
//
// It follows ubusd_proto.c, ubusd_obj.c and ubusd_event.c of openwrt/ubus
// message by message: the same replies, the same attributes in the same
// order, the same forwarding (INVOKE to the object's owner with OBJID,
// METHOD, USER, GROUP, DATA; replies passed through with the peer set to
// the object id; NOTIFY fanned out to subscribers; events matched by exact
// id or trailing-'*' prefix), so byte streams match the real ubusd's except
// for ids, which ubusd draws at random and the Broker counts up. What it
// leaves out: ACLs (every client is treated like root), the monitor and ACL
// system objects, file descriptor passing, and ubusd's output buffering
// (it queues per client without limit).
package ubustest

import (
	"encoding/binary"
	"net"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/otok/otok/ubus"
)

const (
	objEvent     = 1    // UBUS_SYSTEM_OBJECT_EVENT
	systemObjMax = 1024 // UBUS_SYSTEM_OBJECT_MAX: ids below are ubusd's own
)

// Broker is a running test double of ubusd.
type Broker struct {
	Path string

	ln *net.UnixListener
	wg sync.WaitGroup

	mu          sync.Mutex
	closed      bool
	nextID      uint32
	clients     map[uint32]*client
	objects     map[uint32]*object
	paths       map[string]*object
	types       map[uint32]*objType
	patterns    []*pattern
	eventSeq    uint16
	objEventSeq int
}

type client struct {
	id          uint32
	nc          net.Conn
	user, group string
	objects     []*object

	qmu    sync.Mutex
	qcond  *sync.Cond
	queue  [][]byte
	closed bool
}

type object struct {
	id         uint32
	path       string
	typ        *objType
	client     *client
	subs       []*subscription // subscribers of this object, newest first
	targets    []*subscription // objects this one subscribed to, newest first
	invokeSeq  uint16
	eventSeen  int
	hasPattern bool
}

type objType struct {
	id       uint32
	refcount int
	methods  []method
}

type method struct {
	typ  uint8
	name string
	data []byte
}

type subscription struct {
	subscriber, target *object
}

type pattern struct {
	key     string
	partial bool
	obj     *object
}

// instances gives each broker its own id range, as ubusd's random ids
// differ after a restart.
var instances atomic.Uint32

// Start listens on path (removing a stale socket) and serves until Close.
func Start(path string) (*Broker, error) {
	syscall.Unlink(path)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(true)
	b := &Broker{Path: path, ln: ln, nextID: instances.Add(1) << 20,
		clients: map[uint32]*client{}, objects: map[uint32]*object{},
		paths: map[string]*object{}, types: map[uint32]*objType{}, objEventSeq: 1}
	b.objects[objEvent] = &object{id: objEvent}
	b.wg.Add(1)
	go b.accept()
	return b, nil
}

// Close stops the broker like a killed ubusd: the socket goes away and
// every client connection is closed.
func (b *Broker) Close() {
	b.mu.Lock()
	b.closed = true
	cls := make([]*client, 0, len(b.clients))
	for _, c := range b.clients {
		cls = append(cls, c)
	}
	b.mu.Unlock()
	b.ln.Close()
	for _, c := range cls {
		c.nc.Close()
	}
	b.wg.Wait()
}

// Objects returns the paths of the published objects, sorted.
func (b *Broker) Objects() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.paths))
	for p := range b.paths {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func (b *Broker) allocID() uint32 {
	b.nextID++
	return b.nextID
}

func (b *Broker) accept() {
	defer b.wg.Done()
	for {
		nc, err := b.ln.AcceptUnix()
		if err != nil {
			return
		}
		c := &client{nc: nc}
		c.qcond = sync.NewCond(&c.qmu)
		c.user, c.group = peerNames(nc)
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			nc.Close()
			return
		}
		c.id = b.allocID()
		b.clients[c.id] = c
		b.mu.Unlock()
		b.wg.Add(2)
		go b.writer(c)
		go b.serve(c)
		b.send(c, &ubus.Message{Type: ubus.MsgHello, Peer: c.id})
	}
}

// peerNames resolves the peer's uid and gid to names, as ubusd does with
// SO_PEERCRED, getpwuid and getgrgid.
func peerNames(nc *net.UnixConn) (string, string) {
	uid, gid := "0", "0"
	if rc, err := nc.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			if cred, err := syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED); err == nil {
				uid, gid = strconv.Itoa(int(cred.Uid)), strconv.Itoa(int(cred.Gid))
			}
		})
	}
	un, gn := uid, gid
	if u, err := user.LookupId(uid); err == nil {
		un = u.Username
	}
	if g, err := user.LookupGroupId(gid); err == nil {
		gn = g.Name
	}
	return un, gn
}

func (b *Broker) writer(c *client) {
	defer b.wg.Done()
	for {
		c.qmu.Lock()
		for len(c.queue) == 0 && !c.closed {
			c.qcond.Wait()
		}
		if c.closed {
			c.qmu.Unlock()
			return
		}
		msg := c.queue[0]
		c.queue = c.queue[1:]
		c.qmu.Unlock()
		if _, err := c.nc.Write(msg); err != nil {
			c.nc.Close()
		}
	}
}

func (b *Broker) send(c *client, m *ubus.Message) {
	raw, err := m.Marshal()
	if err != nil {
		return
	}
	b.sendRaw(c, raw)
}

func (b *Broker) sendRaw(c *client, raw []byte) {
	c.qmu.Lock()
	if !c.closed {
		c.queue = append(c.queue, raw)
		c.qcond.Signal()
	}
	c.qmu.Unlock()
}

func (b *Broker) serve(c *client) {
	defer b.wg.Done()
	defer b.disconnect(c)
	for {
		m, raw, err := ubus.ReadMessage(c.nc)
		if err != nil && raw == nil {
			return // framing lost or connection closed: ubusd disconnects
		}
		b.mu.Lock()
		if err != nil {
			// ubusd parses leniently and treats mistyped attributes
			// as absent; the double refuses the whole message.
			b.status(c, raw, ubus.StatusInvalidArgument)
		} else {
			b.handle(c, m, raw)
		}
		b.mu.Unlock()
	}
}

func (b *Broker) disconnect(c *client) {
	b.mu.Lock()
	for len(c.objects) > 0 {
		b.freeObject(c.objects[0])
	}
	delete(b.clients, c.id)
	b.mu.Unlock()
	c.qmu.Lock()
	c.closed = true
	c.qcond.Signal()
	c.qmu.Unlock()
	c.nc.Close()
}

// status sends ubusd's retmsg: STATUS {STATUS} with the request's seq and peer.
func (b *Broker) status(c *client, req []byte, st ubus.Status) {
	m := &ubus.Message{Type: ubus.MsgStatus, Seq: binary.BigEndian.Uint16(req[2:]), Peer: binary.BigEndian.Uint32(req[4:])}
	m.PutU32(ubus.AttrStatus, uint32(st))
	b.send(c, m)
}

// reply sends a message built like ubus_proto_send_msg_from_blob: the
// request's seq and peer with a new type and blob.
func (b *Broker) reply(c *client, req *ubus.Message, typ ubus.MsgType, attrs *ubus.Message) {
	attrs.Type, attrs.Seq, attrs.Peer = typ, req.Seq, req.Peer
	b.send(c, attrs)
}

const noStatus = ^ubus.Status(0) // the handler answered (ubusd's -1)

func (b *Broker) handle(c *client, m *ubus.Message, raw []byte) {
	var st ubus.Status
	switch m.Type {
	case ubus.MsgPing:
		pong := append([]byte(nil), raw...)
		pong[1] = byte(ubus.MsgData)
		b.sendRaw(c, pong)
		st = ubus.StatusOK
	case ubus.MsgAddObject:
		st = b.addObject(c, m)
	case ubus.MsgRemoveObject:
		st = b.removeObject(c, m)
	case ubus.MsgLookup:
		st = b.lookup(c, m)
	case ubus.MsgInvoke:
		st = b.invoke(c, m)
	case ubus.MsgStatus, ubus.MsgData:
		b.response(c, m, raw)
		st = noStatus
	case ubus.MsgSubscribe:
		st = b.subscribe(c, m)
	case ubus.MsgUnsubscribe:
		st = b.unsubscribe(c, m)
	case ubus.MsgNotify:
		st = b.notify(c, m)
	default:
		st = ubus.StatusInvalidCommand
	}
	if st != noStatus {
		b.status(c, raw, st)
	}
}

func (b *Broker) addObject(c *client, m *ubus.Message) ubus.Status {
	var typ *objType
	if tid, ok := m.U32(ubus.AttrObjType); ok {
		typ = b.types[tid]
		if typ != nil {
			typ.refcount++
		}
	} else if sig, ok := m.Get(ubus.AttrSignature); ok {
		methods, ok := parseSignature(sig)
		if !ok {
			return ubus.StatusInvalidArgument
		}
		typ = &objType{id: b.allocID(), refcount: 1, methods: methods}
		b.types[typ.id] = typ
	}
	obj := &object{id: b.allocID(), typ: typ}
	if path, ok := m.Str(ubus.AttrObjPath); ok {
		if _, dup := b.paths[path]; dup {
			b.unrefType(typ)
			return ubus.StatusInvalidArgument
		}
		obj.path = path
		b.paths[path] = obj
		b.objects[obj.id] = obj
		b.objectEvent(obj, true)
	}
	b.objects[obj.id] = obj
	obj.client = c
	c.objects = append([]*object{obj}, c.objects...)

	r := &ubus.Message{}
	r.PutU32(ubus.AttrObjID, obj.id)
	if _, ok := m.Get(ubus.AttrSignature); ok && typ != nil {
		r.PutU32(ubus.AttrObjType, typ.id)
	}
	b.reply(c, m, ubus.MsgData, r)
	return ubus.StatusOK
}

func (b *Broker) unrefType(t *objType) {
	if t == nil {
		return
	}
	if t.refcount--; t.refcount <= 0 {
		delete(b.types, t.id)
	}
}

func (b *Broker) removeObject(c *client, m *ubus.Message) ubus.Status {
	id, ok := m.U32(ubus.AttrObjID)
	if !ok {
		return ubus.StatusInvalidArgument
	}
	obj := b.objects[id]
	if obj == nil || obj.id < systemObjMax {
		return ubus.StatusNotFound
	}
	if obj.client != c {
		return ubus.StatusPermissionDenied
	}
	r := &ubus.Message{}
	r.PutU32(ubus.AttrObjID, obj.id)
	if obj.typ != nil && obj.typ.refcount == 1 {
		r.PutU32(ubus.AttrObjType, obj.typ.id)
	}
	b.reply(c, m, ubus.MsgData, r)
	b.freeObject(obj)
	return ubus.StatusOK
}

// freeObject follows ubusd_free_object.
func (b *Broker) freeObject(obj *object) {
	for len(obj.targets) > 0 {
		b.unsubscribeOne(obj.targets[0])
	}
	for len(obj.subs) > 0 {
		s := obj.subs[0]
		m := &ubus.Message{Type: ubus.MsgUnsubscribe}
		s.subscriber.invokeSeq++
		m.Seq = s.subscriber.invokeSeq
		m.PutU32(ubus.AttrObjID, s.subscriber.id)
		m.PutU32(ubus.AttrTarget, obj.id)
		b.send(s.subscriber.client, m)
		b.unsubscribeOne(s)
	}
	kept := b.patterns[:0]
	for _, p := range b.patterns {
		if p.obj != obj {
			kept = append(kept, p)
		}
	}
	b.patterns = kept
	if obj.path != "" {
		b.objectEvent(obj, false)
		delete(b.paths, obj.path)
	}
	if c := obj.client; c != nil {
		for i, o := range c.objects {
			if o == obj {
				c.objects = append(c.objects[:i], c.objects[i+1:]...)
				break
			}
		}
	}
	delete(b.objects, obj.id)
	b.unrefType(obj.typ)
}

func (b *Broker) sendObj(c *client, req *ubus.Message, obj *object) {
	if obj.typ == nil {
		return
	}
	r := &ubus.Message{}
	r.PutString(ubus.AttrObjPath, obj.path)
	r.PutU32(ubus.AttrObjID, obj.id)
	r.PutU32(ubus.AttrObjType, obj.typ.id)
	var sig []byte
	for _, mt := range obj.typ.methods {
		sig = appendBlobmsg(sig, mt.typ, mt.name, mt.data)
	}
	r.Add(ubus.AttrSignature, sig)
	b.reply(c, req, ubus.MsgData, r)
}

func (b *Broker) sortedPaths() []string {
	ps := make([]string, 0, len(b.paths))
	for p := range b.paths {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

func (b *Broker) lookup(c *client, m *ubus.Message) ubus.Status {
	path, ok := m.Str(ubus.AttrObjPath)
	if !ok {
		for _, p := range b.sortedPaths() {
			b.sendObj(c, m, b.paths[p])
		}
		return ubus.StatusOK
	}
	if path == "" {
		return ubus.StatusInvalidArgument
	}
	if !strings.HasSuffix(path, "*") {
		obj := b.paths[path]
		if obj == nil {
			return ubus.StatusNotFound
		}
		b.sendObj(c, m, obj)
		return ubus.StatusOK
	}
	prefix := strings.TrimSuffix(path, "*")
	found := false
	for _, p := range b.sortedPaths() {
		if p < prefix {
			continue
		}
		if !strings.HasPrefix(p, prefix) {
			break
		}
		found = true
		b.sendObj(c, m, b.paths[p])
	}
	if !found {
		return ubus.StatusNotFound
	}
	return ubus.StatusOK
}

func (b *Broker) invoke(c *client, m *ubus.Message) ubus.Status {
	methodName, ok1 := m.Str(ubus.AttrMethod)
	id, ok2 := m.U32(ubus.AttrObjID)
	if !ok1 || !ok2 {
		return ubus.StatusInvalidArgument
	}
	obj := b.objects[id]
	if obj == nil {
		return ubus.StatusNotFound
	}
	data, hasData := m.Get(ubus.AttrData)
	if obj.client == nil {
		if id != objEvent {
			return ubus.StatusInvalidCommand
		}
		return b.eventRecv(c, methodName, data, hasData)
	}
	fw := &ubus.Message{Type: ubus.MsgInvoke, Seq: m.Seq, Peer: c.id}
	b.forwardInvoke(fw, c, obj, methodName, data, hasData)
	return noStatus
}

func (b *Broker) forwardInvoke(fw *ubus.Message, from *client, obj *object, methodName string, data []byte, hasData bool) {
	fw.PutU32(ubus.AttrObjID, obj.id)
	fw.PutString(ubus.AttrMethod, methodName)
	if from.user != "" {
		fw.PutString(ubus.AttrUser, from.user)
	}
	if from.group != "" {
		fw.PutString(ubus.AttrGroup, from.group)
	}
	if hasData {
		fw.Add(ubus.AttrData, data)
	}
	b.send(obj.client, fw)
}

// response passes a STATUS or DATA reply from an object's owner to the
// caller named in the header's peer, with the peer set to the object id.
func (b *Broker) response(c *client, m *ubus.Message, raw []byte) {
	id, ok := m.U32(ubus.AttrObjID)
	if !ok {
		return
	}
	if _, ok := m.Get(ubus.AttrStatus); m.Type == ubus.MsgStatus && !ok {
		return
	}
	if _, ok := m.Get(ubus.AttrData); m.Type == ubus.MsgData && !ok {
		return
	}
	obj := b.objects[id]
	if obj == nil || obj.client != c {
		return
	}
	to := b.clients[m.Peer]
	if to == nil {
		return
	}
	fw := append([]byte(nil), raw...)
	binary.BigEndian.PutUint32(fw[4:], id)
	b.sendRaw(to, fw)
}

// watcher returns the caller's own object and the target id of a SUBSCRIBE
// or UNSUBSCRIBE (ubusd_handle_add_watch and ubusd_handle_remove_watch
// check both the same way).
func (b *Broker) watcher(c *client, m *ubus.Message) (*object, uint32, ubus.Status) {
	id, ok1 := m.U32(ubus.AttrObjID)
	tid, ok2 := m.U32(ubus.AttrTarget)
	if !ok1 || !ok2 {
		return nil, 0, ubus.StatusInvalidArgument
	}
	obj := b.objects[id]
	if obj == nil {
		return nil, 0, ubus.StatusNotFound
	}
	if obj.client != c {
		return nil, 0, ubus.StatusInvalidArgument
	}
	return obj, tid, ubus.StatusOK
}

func (b *Broker) subscribe(c *client, m *ubus.Message) ubus.Status {
	obj, tid, st := b.watcher(c, m)
	if st != ubus.StatusOK {
		return st
	}
	target := b.objects[tid]
	if target == nil || target.client == nil {
		return ubus.StatusNotFound
	}
	if target.client == c {
		return ubus.StatusInvalidArgument
	}
	first := len(target.subs) == 0
	s := &subscription{subscriber: obj, target: target}
	target.subs = append([]*subscription{s}, target.subs...)
	obj.targets = append([]*subscription{s}, obj.targets...)
	if first {
		b.notifySubscription(target)
	}
	return ubus.StatusOK
}

func (b *Broker) notifySubscription(target *object) {
	m := &ubus.Message{Type: ubus.MsgNotify}
	target.invokeSeq++
	m.Seq = target.invokeSeq
	m.PutU32(ubus.AttrObjID, target.id)
	active := uint8(0)
	if len(target.subs) > 0 {
		active = 1
	}
	m.PutU8(ubus.AttrActive, active)
	b.send(target.client, m)
}

func (b *Broker) unsubscribeOne(s *subscription) {
	s.target.subs = remove(s.target.subs, s)
	s.subscriber.targets = remove(s.subscriber.targets, s)
	if len(s.target.subs) == 0 {
		b.notifySubscription(s.target)
	}
}

func remove(l []*subscription, s *subscription) []*subscription {
	for i, x := range l {
		if x == s {
			return append(l[:i], l[i+1:]...)
		}
	}
	return l
}

func (b *Broker) unsubscribe(c *client, m *ubus.Message) ubus.Status {
	obj, tid, st := b.watcher(c, m)
	if st != ubus.StatusOK {
		return st
	}
	for _, s := range obj.targets {
		if s.target.id == tid {
			b.unsubscribeOne(s)
			return ubus.StatusOK
		}
	}
	return ubus.StatusNotFound
}

func (b *Broker) notify(c *client, m *ubus.Message) ubus.Status {
	methodName, ok1 := m.Str(ubus.AttrMethod)
	id, ok2 := m.U32(ubus.AttrObjID)
	if !ok1 || !ok2 {
		return ubus.StatusInvalidArgument
	}
	noReply := false
	if v, ok := m.U8(ubus.AttrNoReply); ok {
		noReply = v != 0
	}
	obj := b.objects[id]
	if obj == nil {
		return ubus.StatusNotFound
	}
	if obj.client != c {
		return ubus.StatusPermissionDenied
	}
	if !noReply {
		r := &ubus.Message{}
		r.PutU32(ubus.AttrObjID, id)
		var subs []byte
		for _, s := range obj.subs {
			subs = binary.BigEndian.AppendUint32(subs, 4+4) // blob_put_int32(&b, 0, id)
			subs = binary.BigEndian.AppendUint32(subs, s.subscriber.id)
		}
		r.Add(ubus.AttrSubscribers, subs)
		r.PutU32(ubus.AttrStatus, 0)
		b.reply(c, m, ubus.MsgStatus, r)
	}
	data, hasData := m.Get(ubus.AttrData)
	for _, s := range obj.subs {
		fw := &ubus.Message{Type: ubus.MsgInvoke, Seq: m.Seq, Peer: c.id}
		if noReply {
			fw.PutU8(ubus.AttrNoReply, 1)
		}
		b.forwardInvoke(fw, c, s.subscriber, methodName, data, hasData)
	}
	return noStatus
}

// eventRecv is ubusd's event object: "register" and "send".
func (b *Broker) eventRecv(c *client, methodName string, data []byte, hasData bool) ubus.Status {
	if !hasData {
		return ubus.StatusInvalidArgument
	}
	fields, ok := parseFields(data)
	if !ok {
		return ubus.StatusInvalidArgument
	}
	switch methodName {
	case "register":
		pat, ok1 := fields.get("pattern", 3)
		oid, ok2 := fields.get("object", 5)
		if !ok1 || !ok2 || len(oid) != 4 || len(pat) == 0 || pat[len(pat)-1] != 0 {
			return ubus.StatusInvalidArgument
		}
		id := binary.BigEndian.Uint32(oid)
		if id < systemObjMax {
			return ubus.StatusPermissionDenied
		}
		obj := b.objects[id]
		if obj == nil {
			return ubus.StatusNotFound
		}
		if obj.client != c {
			return ubus.StatusPermissionDenied
		}
		key := cstring(pat)
		if key == "" {
			return ubus.StatusPermissionDenied
		}
		p := &pattern{key: key, obj: obj}
		if strings.HasSuffix(key, "*") {
			p.key, p.partial = strings.TrimSuffix(key, "*"), true
		}
		// ubusd keeps patterns in an AVL tree sorted by key; new
		// duplicates go after existing ones.
		i := sort.Search(len(b.patterns), func(i int) bool { return b.patterns[i].key > p.key })
		b.patterns = append(b.patterns, nil)
		copy(b.patterns[i+1:], b.patterns[i:])
		b.patterns[i] = p
		return ubus.StatusOK
	case "send":
		evid, ok1 := fields.get("id", 3)
		evdata, ok2 := fields.get("data", 2)
		if !ok1 || !ok2 || len(evid) == 0 || evid[len(evid)-1] != 0 {
			return ubus.StatusInvalidArgument
		}
		id := cstring(evid)
		if strings.HasPrefix(id, "ubus.") {
			return ubus.StatusPermissionDenied
		}
		b.sendEvent(c, id, evdata)
		return ubus.StatusOK
	}
	return ubus.StatusInvalidCommand
}

func (b *Broker) sendEvent(from *client, id string, data []byte) {
	b.objEventSeq++
	var tmpl *ubus.Message
	for _, p := range b.patterns {
		match := p.key == id || (p.partial && strings.HasPrefix(id, p.key))
		if !match || (from != nil && p.obj.client == from) || p.obj.eventSeen == b.objEventSeq {
			continue
		}
		p.obj.eventSeen = b.objEventSeq
		if tmpl == nil {
			tmpl = &ubus.Message{Type: ubus.MsgInvoke}
			tmpl.PutU32(ubus.AttrObjID, 0)
			tmpl.PutString(ubus.AttrMethod, id)
			tmpl.Add(ubus.AttrData, data)
		}
		b.eventSeq++
		ev := *tmpl
		ev.Seq = b.eventSeq
		ev.Attrs = append([]ubus.MsgAttr(nil), tmpl.Attrs...)
		ev.Attrs[0].Data = binary.BigEndian.AppendUint32(nil, p.obj.id)
		b.send(p.obj.client, &ev)
	}
}

func (b *Broker) objectEvent(obj *object, add bool) {
	id := "ubus.object.remove"
	if add {
		id = "ubus.object.add"
	}
	var d []byte
	d = appendBlobmsg(d, 5, "id", binary.BigEndian.AppendUint32(nil, obj.id))
	d = appendBlobmsg(d, 3, "path", append([]byte(obj.path), 0))
	b.sendEvent(nil, id, d)
}

// --- a minimal blobmsg reader and writer of its own, so the double does
// not share the codec under test for the parts it interprets.

func appendBlobmsg(dst []byte, typ uint8, name string, data []byte) []byte {
	hl := (2 + len(name) + 1 + 3) &^ 3
	raw := 4 + hl + len(data)
	dst = binary.BigEndian.AppendUint32(dst, 0x80000000|uint32(typ)<<24|uint32(raw))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(name)))
	dst = append(dst, name...)
	for i := 2 + len(name); i < hl; i++ {
		dst = append(dst, 0)
	}
	dst = append(dst, data...)
	for len(dst)%4 != 0 {
		dst = append(dst, 0)
	}
	return dst
}

type rawField struct {
	typ  uint8
	name string
	data []byte
}

type rawFields []rawField

// get returns the first field with name and type, as blobmsg_parse does.
func (fs rawFields) get(name string, typ uint8) ([]byte, bool) {
	for _, f := range fs {
		if f.name == name && f.typ == typ {
			return f.data, true
		}
	}
	return nil, false
}

func parseFields(b []byte) (rawFields, bool) {
	var out rawFields
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, false
		}
		w := binary.BigEndian.Uint32(b)
		raw := int(w & 0xffffff)
		if raw < 4 || raw > len(b) {
			return nil, false
		}
		f := rawField{typ: uint8(w >> 24 & 0x7f)}
		payload := b[4:raw]
		if w&0x80000000 != 0 {
			if len(payload) < 2 {
				return nil, false
			}
			nl := int(binary.BigEndian.Uint16(payload))
			hl := (2 + nl + 1 + 3) &^ 3
			if hl > len(payload) || payload[2+nl] != 0 {
				return nil, false
			}
			f.name = string(payload[2 : 2+nl])
			payload = payload[hl:]
		}
		f.data = payload
		out = append(out, f)
		b = b[min((raw+3)&^3, len(b)):]
	}
	return out, true
}

// parseSignature checks each method like blobmsg_check_attr(pos, true).
func parseSignature(sig []byte) ([]method, bool) {
	fs, ok := parseFields(sig)
	if !ok {
		return nil, false
	}
	var out []method
	for _, f := range fs {
		if f.name == "" || f.typ > 8 {
			return nil, false
		}
		out = append(out, method{typ: f.typ, name: f.name, data: f.data})
	}
	return out, true
}

func cstring(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		return string(b[:i])
	}
	return string(b)
}
