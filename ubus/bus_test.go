package ubus_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/otok/otok/ubus"
	"github.com/otok/otok/ubus/ubustest"
)

// testBus is the bus the client tests run against: the in-process test
// double by default, or a real ubusd when UBUSD_BIN names its binary (it
// then runs with `-s` on a socket in a temporary directory).
type testBus struct {
	t    *testing.T
	Path string
	stop func()
}

func startBus(t *testing.T) *testBus {
	t.Helper()
	dir, err := os.MkdirTemp("", "ubus")
	if err != nil {
		t.Fatal(err)
	}
	b := &testBus{t: t, Path: filepath.Join(dir, "ubus.sock")}
	b.start()
	t.Cleanup(func() {
		b.stop()
		os.RemoveAll(dir)
	})
	return b
}

func (b *testBus) real() bool { return os.Getenv("UBUSD_BIN") != "" }

func (b *testBus) start() {
	b.t.Helper()
	if bin := os.Getenv("UBUSD_BIN"); bin != "" {
		cmd := exec.Command(bin, "-s", b.Path)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.t.Fatal(err)
		}
		b.stop = func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
			os.Remove(b.Path)
		}
		for range 100 {
			if _, err := os.Stat(b.Path); err == nil {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		b.t.Fatal("ubusd did not create its socket")
	}
	br, err := ubustest.Start(b.Path)
	if err != nil {
		b.t.Fatal(err)
	}
	b.stop = br.Close
}

// restart stops the bus and starts a fresh one on the same path.
func (b *testBus) restart() {
	b.stop()
	b.start()
}

func dial(t *testing.T, path string, opts ubus.Options) *ubus.Client {
	t.Helper()
	opts.Path = path
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := ubus.Dial(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
