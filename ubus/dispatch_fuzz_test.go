package ubus

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// FuzzDispatch feeds arbitrary messages, as the reader would parse them,
// into a client that serves an object, a listener and a subscriber and has
// requests pending: whatever ubusd (or an impostor) sends, nothing panics.
func FuzzDispatch(f *testing.F) {
	seeds(f)
	for _, m := range []*Message{
		{Type: MsgInvoke, Seq: 1, Peer: 9, Attrs: []MsgAttr{{AttrObjID, []byte{0, 0, 0x10, 1}}, {AttrMethod, []byte("echo\x00")}, {AttrData, nil}}},
		{Type: MsgNotify, Attrs: []MsgAttr{{AttrObjID, []byte{0, 0, 0x10, 1}}, {AttrActive, []byte{1}}}},
		{Type: MsgUnsubscribe, Attrs: []MsgAttr{{AttrObjID, []byte{0, 0, 0x10, 3}}, {AttrTarget, []byte{0, 0, 0x10, 1}}}},
		{Type: MsgData, Seq: 1, Attrs: []MsgAttr{{AttrObjID, []byte{0, 0, 0x10, 1}}}},
		{Type: MsgStatus, Seq: 1, Attrs: []MsgAttr{{AttrStatus, []byte{0, 0, 0, 2}}}},
	} {
		b, _ := m.Marshal()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			return
		}
		a, z := net.Pipe()
		go io.Copy(io.Discard, z)
		defer z.Close()
		c := &Client{opts: Options{Timeout: time.Second}, log: slog.New(slog.DiscardHandler),
			stop: make(chan struct{}), hsem: make(chan struct{}, 2), byID: map[uint32]*Object{}}
		c.ctx, c.cancel = context.WithCancel(context.Background())
		cn := &conn{nc: a, pending: map[uint16]*pending{}, done: make(chan struct{})}
		c.cn = cn
		obj := &Object{Name: "o", c: c, id: 0x1001, Methods: map[string]Method{
			"echo": {Args: map[string]Type{"a": TypeInt32, "s": TypeString},
				Handler: func(ctx context.Context, r *Request) error {
					var v map[string]any
					if err := r.Decode(&v); err != nil {
						return err
					}
					return r.Reply(v)
				}},
		}, OnSubscribe: func(bool) {}}
		lis := &Object{c: c, id: 0x1002, serve: func(Event, uint32) {}}
		sub := &Object{c: c, id: 0x1003, serve: func(Event, uint32) {}, unsub: func(uint32) {}}
		for _, o := range []*Object{obj, lis, sub} {
			c.byID[o.id] = o
			c.objects = append(c.objects, o)
		}
		for _, peer := range []uint32{0, m.Peer} {
			cn.pending[m.Seq+uint16(peer&1)] = &pending{peer: peer, onData: func(*Message) {}, status: make(chan Status, 1)}
		}
		c.dispatch(cn, m)
		close(c.stop)
		c.cancel()
		c.wg.Wait()
		a.Close()
	})
}
