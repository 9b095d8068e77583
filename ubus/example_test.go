package ubus_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/otok/otok/ubus"
	"github.com/otok/otok/ubus/ubustest"
)

// An object with one method, called like `ubus call demo hello
// '{"name":"router"}'` would call it. The test double stands in for ubusd;
// on a device, Dial with ubus.Options{} finds /var/run/ubus/ubus.sock.
func Example() {
	dir, _ := os.MkdirTemp("", "ubus-example")
	defer os.RemoveAll(dir)
	bus, err := ubustest.Start(filepath.Join(dir, "ubus.sock"))
	if err != nil {
		panic(err)
	}
	defer bus.Close()
	ctx := context.Background()

	srv, err := ubus.Dial(ctx, ubus.Options{Path: bus.Path, Reconnect: true})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	err = srv.AddObject(ctx, &ubus.Object{
		Name: "demo",
		Methods: map[string]ubus.Method{
			"hello": {
				Args: map[string]ubus.Type{"name": ubus.TypeString},
				Handler: func(ctx context.Context, req *ubus.Request) error {
					var a struct {
						Name string `ubus:"name"`
					}
					if err := req.Decode(&a); err != nil {
						return err // UBUS_STATUS_INVALID_ARGUMENT
					}
					return req.Reply(map[string]any{"msg": "hello " + a.Name})
				},
			},
		},
	})
	if err != nil {
		panic(err)
	}

	cli, err := ubus.Dial(ctx, ubus.Options{Path: bus.Path})
	if err != nil {
		panic(err)
	}
	defer cli.Close()
	var reply struct {
		Msg string `ubus:"msg"`
	}
	err = cli.Call(ctx, "demo", "hello", map[string]any{"name": "router"}, &reply)
	fmt.Println(reply.Msg, err)
	err = cli.Call(ctx, "demo", "hello", map[string]any{"name": 42}, nil)
	fmt.Println(err)
	// Output:
	// hello router <nil>
	// ubus call demo hello: Invalid argument
}
