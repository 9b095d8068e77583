package ubus_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otok/otok/ubus"
)

var update = flag.Bool("update", false, "rewrite testdata/transcript.golden (needs UBUSD_BIN: a real ubusd)")

// TestTranscript runs a fixed script of client and server flows through a
// recording proxy and compares the bytes in both directions of both
// connections with testdata/transcript.golden, which was recorded the same
// way against the real ubusd (UBUSD_BIN=… go test -run TestTranscript
// -update). Ids, which ubusd draws at random, are replaced by numbers in
// order of first appearance; everything else must match byte for byte. Run
// on the test double, it shows the double answers exactly like ubusd.
func TestTranscript(t *testing.T) {
	bus := startBus(t)
	proxy := filepath.Join(filepath.Dir(bus.Path), "proxy.sock")
	rec := startRecorder(t, proxy, bus.Path)
	runScript(t, proxy)
	rec.close()
	got := rec.normalized()

	golden := filepath.Join("testdata", "transcript.golden")
	if *update {
		if !bus.real() {
			t.Fatal("-update needs UBUSD_BIN: the golden transcript comes from the real ubusd")
		}
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
	for i := 0; i < max(len(gl), len(wl)); i++ {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			t.Fatalf("transcript differs from ubusd's at line %d:\n got %s\nwant %s\n\nfull transcript:\n%s", i+1, g, w, got)
		}
	}
}

// runScript: S publishes an object, C looks it up, calls it, listens to
// events, subscribes to notifications; then both go away.
func runScript(t *testing.T, path string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	want := func(err, st error) {
		t.Helper()
		if !errors.Is(err, st) {
			t.Fatalf("got %v, want %v", err, st)
		}
	}
	s, err := ubus.Dial(ctx, ubus.Options{Path: path})
	must(err)
	c, err := ubus.Dial(ctx, ubus.Options{Path: path})
	must(err)

	events := make(chan ubus.Event, 8)
	_, err = c.Listen(ctx, "otoktest.*", func(ev ubus.Event) { events <- ev })
	must(err)
	_, err = c.Listen(ctx, "ubus.object.add", func(ev ubus.Event) { events <- ev })
	must(err)
	must(c.Ping(ctx))

	obj := &ubus.Object{Name: "otoktest", Methods: map[string]ubus.Method{
		"echo": {Args: map[string]ubus.Type{"msg": ubus.TypeString, "n": ubus.TypeInt32},
			Handler: func(ctx context.Context, r *ubus.Request) error {
				var m map[string]any
				if err := r.Decode(&m); err != nil {
					return err
				}
				return r.Reply(m)
			}},
		"fail": {Handler: func(ctx context.Context, r *ubus.Request) error { return ubus.StatusNotSupported }},
	}}
	must(s.AddObject(ctx, obj))
	<-events // ubus.object.add

	_, err = c.Lookup(ctx, "otok*")
	must(err)
	_, err = c.Lookup(ctx, "nosuch")
	want(err, ubus.StatusNotFound)
	must(c.Call(ctx, "otoktest", "echo", ubus.Table{{"msg", "hi"}, {"n", 5}, {"b", true}, {"d", 1.5},
		{"a", []any{"x", int64(1)}}, {"t", ubus.Table{{"k", "v"}}}}, nil))
	want(c.Call(ctx, "otoktest", "echo", map[string]any{"msg": 1}, nil), ubus.StatusInvalidArgument)
	want(c.Call(ctx, "otoktest", "nosuch", nil, nil), ubus.StatusMethodNotFound)
	want(c.Call(ctx, "otoktest", "fail", nil, nil), ubus.StatusNotSupported)

	must(s.Send(ctx, "otoktest.event", map[string]any{"state": "up"}))
	<-events
	want(s.Send(ctx, "ubus.forbidden", nil), ubus.StatusPermissionDenied)

	notes := make(chan ubus.Event, 8)
	sub, err := c.Subscribe(ctx, "otoktest", func(ev ubus.Event) { notes <- ev })
	must(err)
	for !obj.HasSubscribers() {
		time.Sleep(time.Millisecond)
	}
	must(obj.Notify(ctx, "tick", map[string]any{"n": 1}))
	<-notes
	must(sub.Close(ctx))
	for obj.HasSubscribers() {
		time.Sleep(time.Millisecond)
	}
	must(s.RemoveObject(ctx, obj))
	must(s.Ping(ctx))
	must(c.Ping(ctx))
	c.Close()
	s.Close()
}

type recMsg struct {
	conn int
	dir  string // "c>s" or "s>c"
	raw  []byte
}

type recorder struct {
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	msgs []recMsg
	n    int
}

func startRecorder(t *testing.T, path, upstream string) *recorder {
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("unix", upstream)
			if err != nil {
				down.Close()
				continue
			}
			r.mu.Lock()
			id := r.n
			r.n++
			r.mu.Unlock()
			r.wg.Add(2)
			go r.pipe(id, "c>s", down, up)
			go r.pipe(id, "s>c", up, down)
		}
	}()
	return r
}

func (r *recorder) pipe(id int, dir string, from, to net.Conn) {
	defer r.wg.Done()
	defer to.Close()
	defer from.Close()
	for {
		_, raw, err := ubus.ReadMessage(from)
		if raw == nil {
			if err == nil {
				continue
			}
			return
		}
		r.mu.Lock()
		r.msgs = append(r.msgs, recMsg{id, dir, raw})
		r.mu.Unlock()
		if _, err := to.Write(raw); err != nil {
			return
		}
	}
}

func (r *recorder) close() {
	r.ln.Close()
	r.wg.Wait()
}

// normalized lists each connection's messages per direction, in order,
// with ids replaced by 0xID00001, 0xID00002… in order of first appearance
// (streams taken in a fixed order, so the numbering is deterministic).
func (r *recorder) normalized() string {
	var streams [][]recMsg
	for conn := range r.n {
		for _, dir := range []string{"s>c", "c>s"} {
			var s []recMsg
			for _, m := range r.msgs {
				if m.conn == conn && m.dir == dir {
					s = append(s, m)
				}
			}
			streams = append(streams, s)
		}
	}
	ids := map[uint32]uint32{}
	mapID := func(b []byte) {
		v := binary.BigEndian.Uint32(b)
		if v < 1024 {
			return // ubusd's own objects, 0 = none
		}
		n, ok := ids[v]
		if !ok {
			n = 0x1d000001 + uint32(len(ids))
			ids[v] = n
		}
		binary.BigEndian.PutUint32(b, n)
	}
	var out bytes.Buffer
	for _, s := range streams {
		for _, m := range s {
			raw := append([]byte(nil), m.raw...)
			msg, err := ubus.ParseMessage(raw)
			if err != nil {
				fmt.Fprintf(&out, "c%d %s malformed %x\n", m.conn, m.dir, raw)
				continue
			}
			mapID(raw[4:8])
			for _, a := range msg.Attrs {
				switch a.ID {
				case ubus.AttrObjID, ubus.AttrObjType, ubus.AttrTarget:
					mapID(a.Data)
				case ubus.AttrSubscribers:
					for i := 0; i+8 <= len(a.Data); i += 8 {
						mapID(a.Data[i+4 : i+8])
					}
				case ubus.AttrData:
					mapDataIDs(a.Data, mapID)
				}
			}
			fmt.Fprintf(&out, "c%d %s %-13s %s\n", m.conn, m.dir, msg.Type, hex.EncodeToString(raw))
		}
	}
	return out.String()
}

// mapDataIDs maps the int32 blobmsg members that carry ids: "object"
// (event register) and "id" (ubus.object.add/remove).
func mapDataIDs(b []byte, mapID func([]byte)) {
	for len(b) >= 4 {
		w := binary.BigEndian.Uint32(b)
		raw := int(w & 0xffffff)
		if raw < 4 || raw > len(b) {
			return
		}
		if w&0x80000000 != 0 && (w>>24)&0x7f == 5 && raw >= 8 {
			nl := int(binary.BigEndian.Uint16(b[4:]))
			hl := (2 + nl + 1 + 3) &^ 3
			if 4+hl+4 == raw {
				name := string(b[6 : 6+nl])
				if name == "object" || name == "id" {
					mapID(b[4+hl : raw])
				}
			}
		}
		b = b[min((raw+3)&^3, len(b)):]
	}
}
