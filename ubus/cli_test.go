package ubus_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/otok/otok/ubus"
)

// TestCLI drives a published object and events with OpenWrt's own `ubus`
// command (libubus as the peer) when UBUS_CLI names it. It runs against the
// test double, or the real ubusd with UBUSD_BIN. Neither is in Debian, so
// CI skips it; see testdata/README.md for how it was run.
func TestCLI(t *testing.T) {
	cliBin := os.Getenv("UBUS_CLI")
	if cliBin == "" {
		t.Skip("UBUS_CLI not set: no OpenWrt ubus command to test against")
	}
	bus := startBus(t)
	ctx := ctxT(t)
	srv := dial(t, bus.Path, ubus.Options{})
	obj := testObject(t, "otoktest")
	if err := srv.AddObject(ctx, obj); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, int) {
		t.Helper()
		out, err := exec.CommandContext(ctx, cliBin, append([]string{"-s", bus.Path}, args...)...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		t.Logf("ubus %s → %d\n%s", strings.Join(args, " "), code, out)
		return string(out), code
	}
	out, code := run("-v", "list", "otoktest")
	if code != 0 || !strings.Contains(out, `"echo":{"count":"Integer","msg":"String"}`) {
		t.Fatalf("list: %d %s", code, out)
	}
	out, code = run("call", "otoktest", "echo", `{"msg":"hi","count":3}`)
	if code != 0 || !strings.Contains(out, `"msg": "hi"`) || !strings.Contains(out, `"count": 3`) {
		t.Fatalf("call: %d %s", code, out)
	}
	out, code = run("call", "otoktest", "echo", `{"msg":5}`)
	if code == 0 || !strings.Contains(out, "Invalid argument") {
		t.Fatalf("mistyped call: %d %s", code, out)
	}
	out, code = run("call", "otoktest", "nosuch")
	if code == 0 || !strings.Contains(out, "Method not found") {
		t.Fatalf("unknown method: %d %s", code, out)
	}
	out, code = run("call", "otoktest", "defer")
	if code != 0 || !strings.Contains(out, `"late": true`) {
		t.Fatalf("deferred: %d %s", code, out)
	}
	out, code = run("-t", "1", "call", "otoktest", "slow")
	if code == 0 || !strings.Contains(out, "Request timed out") {
		t.Fatalf("timeout: %d %s", code, out)
	}

	// ubus listen sees our events; our listener sees ubus send.
	got := make(chan ubus.Event, 1)
	if _, err := srv.Listen(ctx, "otok.test", func(ev ubus.Event) { got <- ev }); err != nil {
		t.Fatal(err)
	}
	lctx, lcancel := context.WithCancel(ctx)
	defer lcancel()
	listen := exec.CommandContext(lctx, cliBin, "-s", bus.Path, "listen", "otok.container")
	lout, _ := listen.StdoutPipe()
	if err := listen.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(lout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	deadline := time.After(5 * time.Second)
	for sent := false; !sent; {
		// ubus listen registers asynchronously: resend until seen.
		srv.Send(ctx, "otok.container", map[string]any{"name": "dns", "state": "running"})
		select {
		case l := <-lines:
			if l != `{ "otok.container": {"name":"dns","state":"running"} }` {
				t.Fatalf("listen printed %q", l)
			}
			sent = true
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatal("ubus listen saw nothing")
		}
	}
	lcancel()
	listen.Wait()
	if _, code := run("send", "otok.test", `{"a":1}`); code != 0 {
		t.Fatal("send failed")
	}
	select {
	case ev := <-got:
		var d map[string]any
		if ev.Decode(&d) != nil || d["a"] != int32(1) {
			t.Fatalf("event from ubus send: %v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event from ubus send")
	}
}
