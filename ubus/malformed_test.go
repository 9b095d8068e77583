package ubus_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/otok/otok/ubus"
)

// TestMalformedFromBus: a hostile "ubusd" answers a ping with broken
// messages before the real answer. Broken but framed messages are dropped;
// lost framing drops the connection. Nothing panics.
func TestMalformedFromBus(t *testing.T) {
	path := filepath.Join(t.TempDir(), "evil.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		hello := &ubus.Message{Type: ubus.MsgHello, Peer: 0x1234}
		b, _ := hello.Marshal()
		nc.Write(b)
		for round := 0; ; round++ {
			m, _, err := ubus.ReadMessage(nc)
			if err != nil {
				return
			}
			if round == 0 {
				// version 1; status attr of 1 byte; unknown type;
				// then the real answer.
				bad1 := []byte{1, 1, 0, byte(m.Seq), 0, 0, 0, 0, 0, 0, 0, 4}
				bad1[2], bad1[3] = byte(m.Seq>>8), byte(m.Seq)
				nc.Write(bad1)
				bad2 := []byte{0, 1, byte(m.Seq >> 8), byte(m.Seq), 0, 0, 0, 0, 0, 0, 0, 12, 1, 0, 0, 5, 0, 0, 0, 0}
				nc.Write(bad2)
				odd := &ubus.Message{Type: 99, Seq: m.Seq}
				b, _ := odd.Marshal()
				nc.Write(b)
				ok := &ubus.Message{Type: ubus.MsgStatus, Seq: m.Seq}
				ok.PutU32(ubus.AttrStatus, 0)
				b, _ = ok.Marshal()
				nc.Write(b)
				continue
			}
			// Framing lost: a 16 MiB length word.
			nc.Write([]byte{0, 1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff})
		}
	}()
	ctx := ctxT(t)
	c, err := ubus.Dial(ctx, ubus.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.ID() != 0x1234 {
		t.Fatalf("id %x", c.ID())
	}
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping through garbage: %v", err)
	}
	if err := c.Ping(ctx); !errors.Is(err, ubus.StatusConnectionFailed) {
		t.Fatalf("ping after lost framing: %v", err)
	}
}

// TestMistypedArgsNoSideEffect: a call whose arguments do not match the
// signature never reaches the handler.
func TestMistypedArgsNoSideEffect(t *testing.T) {
	bus := startBus(t)
	ctx := ctxT(t)
	srv := dial(t, bus.Path, ubus.Options{})
	cli := dial(t, bus.Path, ubus.Options{})
	var calls atomic.Int32
	obj := &ubus.Object{Name: "otoktest", Methods: map[string]ubus.Method{
		"run": {Args: map[string]ubus.Type{"name": ubus.TypeString, "command": ubus.TypeArray, "n": ubus.TypeInt8},
			Handler: func(ctx context.Context, r *ubus.Request) error { calls.Add(1); return nil }},
	}}
	if err := srv.AddObject(ctx, obj); err != nil {
		t.Fatal(err)
	}
	for _, args := range []map[string]any{
		{"name": 1},
		{"command": "not an array"},
		{"name": map[string]any{}},
		{"n": 300},
	} {
		if err := cli.Call(ctx, "otoktest", "run", args, nil); !errors.Is(err, ubus.StatusInvalidArgument) {
			t.Fatalf("%v: %v", args, err)
		}
	}
	if calls.Load() != 0 {
		t.Fatalf("handler ran %d times", calls.Load())
	}
	// Compatible values pass: ints of other widths, unknown extra args.
	for _, args := range []map[string]any{
		{"name": "x", "command": []string{"a"}, "n": true},
		{"n": int64(5), "extra": 1.5},
		{},
	} {
		if err := cli.Call(ctx, "otoktest", "run", args, nil); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	// No data attribute at all: INVALID_ARGUMENT, as libubus answers.
	nc, err := net.Dial("unix", bus.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, _, err := ubus.ReadMessage(nc); err != nil { // hello
		t.Fatal(err)
	}
	inv := &ubus.Message{Type: ubus.MsgInvoke, Seq: 7, Peer: obj.ID()}
	inv.PutU32(ubus.AttrObjID, obj.ID())
	inv.PutString(ubus.AttrMethod, "run")
	b, _ := inv.Marshal()
	nc.Write(b)
	st, _, err := ubus.ReadMessage(nc)
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := st.U32(ubus.AttrStatus); st.Type != ubus.MsgStatus || st.Seq != 7 || ubus.Status(code) != ubus.StatusInvalidArgument {
		t.Fatalf("invoke without data: %v status %d", st, code)
	}
	if calls.Load() != 3 {
		t.Fatalf("handler ran %d times, want 3", calls.Load())
	}
}
