package ubus_test

import (
	"context"
	"errors"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otok/otok/ubus"
)

type echoArgs struct {
	Msg   string `ubus:"msg"`
	Count int    `ubus:"count,omitempty"`
}

// testObject is a published object exercising the server paths.
func testObject(t *testing.T, name string) *ubus.Object {
	return &ubus.Object{
		Name: name,
		Methods: map[string]ubus.Method{
			"echo": {
				Args: map[string]ubus.Type{"msg": ubus.TypeString, "count": ubus.TypeInt32},
				Handler: func(ctx context.Context, req *ubus.Request) error {
					var a echoArgs
					if err := req.Decode(&a); err != nil {
						return err
					}
					return req.Reply(map[string]any{"msg": a.Msg, "count": a.Count, "user": req.User})
				},
			},
			"multi": {Handler: func(ctx context.Context, req *ubus.Request) error {
				req.Reply(map[string]any{"part": 1})
				return req.Reply(map[string]any{"part": 2})
			}},
			"fail": {Handler: func(ctx context.Context, req *ubus.Request) error {
				return ubus.StatusNotSupported
			}},
			"oops": {Handler: func(ctx context.Context, req *ubus.Request) error {
				return errors.New("plain error")
			}},
			"panic": {Handler: func(ctx context.Context, req *ubus.Request) error {
				panic("handler bug")
			}},
			"defer": {Handler: func(ctx context.Context, req *ubus.Request) error {
				req.Defer()
				go func() {
					time.Sleep(20 * time.Millisecond)
					req.Reply(map[string]any{"late": true})
					req.Complete(nil)
				}()
				return nil
			}},
			"slow": {Handler: func(ctx context.Context, req *ubus.Request) error {
				select {
				case <-ctx.Done():
				case <-time.After(2 * time.Second):
				}
				return nil
			}},
		},
	}
}

func TestClientServer(t *testing.T) {
	bus := startBus(t)
	srv := dial(t, bus.Path, ubus.Options{})
	cli := dial(t, bus.Path, ubus.Options{})
	ctx := ctxT(t)

	if srv.ID() == 0 || srv.ID() == cli.ID() {
		t.Fatalf("client ids %08x %08x", srv.ID(), cli.ID())
	}
	if err := cli.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	obj := testObject(t, "otoktest")
	if err := srv.AddObject(ctx, obj); err != nil {
		t.Fatal(err)
	}
	if obj.ID() == 0 {
		t.Fatal("no object id")
	}
	// A second object with the same path is refused.
	if err := cli.AddObject(ctx, testObject(t, "otoktest")); !errors.Is(err, ubus.StatusInvalidArgument) {
		t.Fatalf("duplicate path: %v", err)
	}
	if err := srv.AddObject(ctx, testObject(t, "otoktest.two")); err != nil {
		t.Fatal(err)
	}

	// Lookup: exact, wildcard, missing.
	objs, err := cli.Lookup(ctx, "otoktest")
	if err != nil || len(objs) != 1 {
		t.Fatalf("lookup: %v %v", objs, err)
	}
	if objs[0].ID != obj.ID() || objs[0].Signature["echo"]["msg"] != ubus.TypeString ||
		objs[0].Signature["echo"]["count"] != ubus.TypeInt32 || len(objs[0].Methods()) != 7 {
		t.Fatalf("lookup info: %+v", objs[0])
	}
	objs, err = cli.Lookup(ctx, "otok*")
	if err != nil || len(objs) != 2 || objs[0].Path != "otoktest" || objs[1].Path != "otoktest.two" {
		t.Fatalf("wildcard: %+v %v", objs, err)
	}
	if _, err := cli.Lookup(ctx, "nosuch"); !errors.Is(err, ubus.StatusNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := cli.Lookup(ctx, "nosuch*"); !errors.Is(err, ubus.StatusNotFound) {
		t.Fatalf("missing wildcard: %v", err)
	}
	if all, err := cli.Lookup(ctx, ""); err != nil || len(all) < 2 {
		t.Fatalf("all: %v %v", all, err)
	}

	// Calls.
	var rep map[string]any
	if err := cli.Call(ctx, "otoktest", "echo", echoArgs{Msg: "hi", Count: 3}, &rep); err != nil {
		t.Fatal(err)
	}
	if rep["msg"] != "hi" || rep["count"] != int32(3) || rep["user"] == "" {
		t.Fatalf("echo reply: %v", rep)
	}
	if err := cli.Call(ctx, "otoktest", "echo", map[string]any{"msg": 5}, nil); !errors.Is(err, ubus.StatusInvalidArgument) {
		t.Fatalf("mistyped arg: %v", err)
	}
	if err := cli.Call(ctx, "otoktest", "echo", map[string]any{"count": "x"}, nil); !errors.Is(err, ubus.StatusInvalidArgument) {
		t.Fatalf("mistyped arg: %v", err)
	}
	if err := cli.Call(ctx, "otoktest", "nosuch", nil, nil); !errors.Is(err, ubus.StatusMethodNotFound) {
		t.Fatalf("unknown method: %v", err)
	}
	if err := cli.Call(ctx, "otoktest", "fail", nil, nil); !errors.Is(err, ubus.StatusNotSupported) {
		t.Fatalf("fail: %v", err)
	}
	if err := cli.Call(ctx, "otoktest", "oops", nil, nil); !errors.Is(err, ubus.StatusUnknownError) {
		t.Fatalf("oops: %v", err)
	}
	if err := cli.Call(ctx, "otoktest", "panic", nil, nil); !errors.Is(err, ubus.StatusUnknownError) {
		t.Fatalf("panic: %v", err)
	}
	var parts []int
	err = cli.Invoke(ctx, obj.ID(), "multi", nil, func(d []byte) error {
		var p struct{ Part int }
		p.Part = -1
		var m map[string]any
		ubus.Unmarshal(d, &m)
		parts = append(parts, int(m["part"].(int32)))
		return nil
	})
	if err != nil || !reflect.DeepEqual(parts, []int{1, 2}) {
		t.Fatalf("multi: %v %v", parts, err)
	}
	var late map[string]bool
	if err := cli.Call(ctx, "otoktest", "defer", nil, &late); err != nil || !late["late"] {
		t.Fatalf("deferred: %v %v", late, err)
	}
	if err := cli.Invoke(ctx, 0x7fff1234, "echo", nil, nil); !errors.Is(err, ubus.StatusNotFound) {
		t.Fatalf("invoke unknown id: %v", err)
	}

	// Timeout: the caller gives up, the connection stays usable.
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	start := time.Now()
	err = cli.Call(tctx, "otoktest", "slow", nil, nil)
	cancel()
	if !errors.Is(err, ubus.StatusTimeout) || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("timeout: %v after %v", err, time.Since(start))
	}
	if err := cli.Ping(ctx); err != nil {
		t.Fatal(err)
	}

	// Concurrent calls share the connection.
	var wg sync.WaitGroup
	var bad atomic.Int32
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r echoArgs
			if err := cli.Call(ctx, "otoktest", "echo", echoArgs{Msg: "x", Count: i}, &r); err != nil || r.Count != i {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d concurrent calls failed", bad.Load())
	}

	// Remove.
	if err := srv.RemoveObject(ctx, obj); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Lookup(ctx, "otoktest"); !errors.Is(err, ubus.StatusNotFound) {
		t.Fatalf("after remove: %v", err)
	}
}

func TestEventsAndNotify(t *testing.T) {
	bus := startBus(t)
	srv := dial(t, bus.Path, ubus.Options{})
	cli := dial(t, bus.Path, ubus.Options{})
	ctx := ctxT(t)

	events := make(chan ubus.Event, 16)
	l, err := cli.Listen(ctx, "otok.*", func(ev ubus.Event) { events <- ev })
	if err != nil {
		t.Fatal(err)
	}
	objEvents := make(chan ubus.Event, 16)
	if _, err := cli.Listen(ctx, "ubus.object.add", func(ev ubus.Event) { objEvents <- ev }); err != nil {
		t.Fatal(err)
	}
	if err := srv.Send(ctx, "otok.container", map[string]any{"name": "dns", "state": "running"}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Send(ctx, "other.event", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Send(ctx, "otok.image", map[string]any{"n": 1}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Send(ctx, "ubus.fake", nil); !errors.Is(err, ubus.StatusPermissionDenied) {
		t.Fatalf("reserved event id: %v", err)
	}
	for i, want := range []string{"otok.container", "otok.image"} {
		select {
		case ev := <-events:
			if ev.Type != want {
				t.Fatalf("event %d: %s, want %s", i, ev.Type, want)
			}
			if i == 0 {
				var d struct{ Name, State string }
				if err := ev.Decode(&d); err != nil || d.Name != "dns" || d.State != "running" {
					t.Fatalf("event data %+v %v", d, err)
				}
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no event")
		}
	}
	// A listener does not get its own client's events.
	if err := cli.Send(ctx, "otok.self", nil); err != nil {
		t.Fatal(err)
	}

	// Object notifications to subscribers.
	var active atomic.Int32
	obj := testObject(t, "otoktest")
	obj.OnSubscribe = func(a bool) {
		if a {
			active.Add(1)
		} else {
			active.Add(-1)
		}
	}
	if err := srv.AddObject(ctx, obj); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-objEvents:
		var d struct {
			ID   uint32 `ubus:"id"`
			Path string `ubus:"path"`
		}
		if err := ev.Decode(&d); err != nil || d.Path != "otoktest" || d.ID != obj.ID() {
			t.Fatalf("ubus.object.add: %+v %v", d, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no ubus.object.add")
	}
	if err := obj.Notify(ctx, "early", nil); err != nil {
		t.Fatalf("notify without subscribers: %v", err)
	}
	notes := make(chan ubus.Event, 16)
	sub, err := cli.Subscribe(ctx, "otoktest", func(ev ubus.Event) { notes <- ev })
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "subscriber seen", func() bool { return obj.HasSubscribers() && active.Load() == 1 })
	if err := obj.Notify(ctx, "state", map[string]any{"n": 7}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-notes:
		var d map[string]any
		if ev.Type != "state" || ev.Decode(&d) != nil || d["n"] != int32(7) {
			t.Fatalf("notification %s %v", ev.Type, d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no notification")
	}
	if err := sub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "subscriber gone", func() bool { return !obj.HasSubscribers() && active.Load() == 0 })
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Send(ctx, "otok.container", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		t.Fatalf("event after Close: %v", ev)
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := cli.Subscribe(ctx, "nosuch", func(ubus.Event) {}); !errors.Is(err, ubus.StatusNotFound) {
		t.Fatalf("subscribe missing: %v", err)
	}
}

func TestReconnect(t *testing.T) {
	bus := startBus(t)
	ctx := ctxT(t)
	srv := dial(t, bus.Path, ubus.Options{Reconnect: true, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	obj := testObject(t, "otoktest")
	if err := srv.AddObject(ctx, obj); err != nil {
		t.Fatal(err)
	}
	events := make(chan ubus.Event, 4)
	if _, err := srv.Listen(ctx, "otok.ping", func(ev ubus.Event) { events <- ev }); err != nil {
		t.Fatal(err)
	}
	oldID := srv.ID()

	bus.restart()

	// While down, calls fail fast with CONNECTION_FAILED.
	waitFor(t, "reconnect", func() bool { id := srv.ID(); return id != 0 && id != oldID })
	cli := dial(t, bus.Path, ubus.Options{})
	waitFor(t, "object re-added", func() bool {
		var r echoArgs
		return cli.Call(ctx, "otoktest", "echo", echoArgs{Msg: "again"}, &r) == nil && r.Msg == "again"
	})
	if obj.ID() == 0 {
		t.Fatal("object has no id after reconnect")
	}
	waitFor(t, "listener re-registered", func() bool {
		cli.Send(ctx, "otok.ping", nil)
		select {
		case <-events:
			return true
		case <-time.After(20 * time.Millisecond):
			return false
		}
	})
}

func TestNoReconnect(t *testing.T) {
	bus := startBus(t)
	ctx := ctxT(t)
	c := dial(t, bus.Path, ubus.Options{})
	bus.stop()
	waitFor(t, "disconnect", func() bool { return c.ID() == 0 })
	if err := c.Ping(ctx); !errors.Is(err, ubus.StatusConnectionFailed) {
		t.Fatalf("ping while down: %v", err)
	}
	bus.start()
}

func TestCloseStopsGoroutines(t *testing.T) {
	bus := startBus(t)
	ctx := ctxT(t)
	before := runtime.NumGoroutine()
	c := dial(t, bus.Path, ubus.Options{Reconnect: true})
	c.AddObject(ctx, testObject(t, "otoktest"))
	c.Listen(ctx, "x", func(ubus.Event) {})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
	if err := c.Ping(ctx); !errors.Is(err, ubus.StatusConnectionFailed) {
		t.Fatalf("ping after close: %v", err)
	}
}

func TestSubscribeFollowsRestartedObject(t *testing.T) {
	bus := startBus(t)
	ctx := ctxT(t)
	srv := dial(t, bus.Path, ubus.Options{})
	cli := dial(t, bus.Path, ubus.Options{})
	obj := testObject(t, "otoktest")
	if err := srv.AddObject(ctx, obj); err != nil {
		t.Fatal(err)
	}
	notes := make(chan ubus.Event, 4)
	if _, err := cli.Subscribe(ctx, "otoktest", func(ev ubus.Event) { notes <- ev }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "subscribed", obj.HasSubscribers)
	// The service restarts: object removed and published again.
	if err := srv.RemoveObject(ctx, obj); err != nil {
		t.Fatal(err)
	}
	obj2 := testObject(t, "otoktest")
	if err := srv.AddObject(ctx, obj2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "subscribed again", obj2.HasSubscribers)
	if err := obj2.Notify(ctx, "back", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-notes:
		if ev.Type != "back" {
			t.Fatalf("got %s", ev.Type)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no notification after the object came back")
	}
}
