// Package ubus speaks OpenWrt's ubus wire protocol natively: the blob and
// blobmsg codec, the message framing, a client and an object server over
// ubusd's Unix socket.
//
// It owns the protocol only. It knows nothing of containers, the agent or
// its commands: the agent maps its command API onto an Object's methods and
// its events onto Send and Notify.
//
// # Wire format
//
// A message is an 8-byte header (version 0, type, big-endian seq and peer)
// followed by one blob_attr with id 0 whose payload lists the UBUS_ATTR_*
// attributes. Method arguments and replies travel in UBUS_ATTR_DATA as
// blobmsg table content. Everything is big endian on every CPU. Decoding is
// bounded: messages are at most MaxMessageSize (1 MiB, like ubusd), nesting
// at most MaxDepth, and nothing is allocated from a length that was not
// checked against the bytes actually present. Errors give the byte offset.
//
// # Client
//
//	c, err := ubus.Dial(ctx, ubus.Options{}) // default socket path
//	if err != nil { ... }
//	defer c.Close()
//	var board struct {
//		Model string `ubus:"model"`
//	}
//	err = c.Call(ctx, "system", "board", nil, &board)
//
// # Object server
//
//	obj := &ubus.Object{
//		Name: "demo",
//		Methods: map[string]ubus.Method{
//			"hello": {
//				Args: map[string]ubus.Type{"name": ubus.TypeString},
//				Handler: func(ctx context.Context, req *ubus.Request) error {
//					var a struct{ Name string `ubus:"name"` }
//					if err := req.Decode(&a); err != nil {
//						return err // UBUS_STATUS_INVALID_ARGUMENT
//					}
//					return req.Reply(map[string]any{"msg": "hello " + a.Name})
//				},
//			},
//		},
//	}
//	err = c.AddObject(ctx, obj)
//
// A handler that cannot answer at once calls req.Defer, keeps req, and later
// calls req.Reply and req.Complete from any goroutine.
//
// With Options.Reconnect the client survives ubusd restarts: it redials with
// backoff and registers its objects, event listeners and subscriptions again.
// FindSocket tells whether ubus runs here at all (DefaultSocket, then
// FallbackSocket).
//
// # Files
//
//	blob.go      blob_attr: header word, padding, iteration, building
//	blobmsg.go   blobmsg types, name header, generic decoding
//	values.go    Marshal/Unmarshal between Go values and blobmsg
//	msg.go       message header, UBUS_ATTR_*, framing
//	status.go    UBUS_STATUS_* as Go errors
//	conn.go      socket paths, one connection, reader, reconnect
//	client.go    Client: lookup, invoke, call, ping
//	server.go    Object, Method, Request: publishing and serving
//	events.go    send, listen, subscribe
//
// Tests run against ubustest.Broker, a test double of ubusd whose bytes are
// checked against a transcript recorded from the real ubusd
// (testdata/transcript.golden), and optionally against OpenWrt's own ubusd
// and ubus binaries (see testdata/README.md).
package ubus
