package security

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/otok/otok/ubus"
	"github.com/otok/otok/ubus/ubustest"
)

// TestUbusdAwayAndBack stops the bus (ubustest broker, a test double of
// ubusd) under a running agent five times: the agent must keep running
// its container, and publish its object again when the bus is back.
func TestUbusdAwayAndBack(t *testing.T) {
	a := newAgentWorld(t)
	short, err := os.MkdirTemp("", "otok-sec-ubus-") // unix socket paths are short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(short) })
	a.ubusSock = filepath.Join(short, "ubus.sock")
	b, err := ubustest.Start(a.ubusSock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	a.configFor([]string{"sentinel"})
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	sentinel := a.name("sentinel")
	pid := a.runningPid(sentinel)
	onBus := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := ubus.Dial(ctx, ubus.Options{Path: a.ubusSock, Timeout: 5 * time.Second})
		if err != nil {
			return err
		}
		defer c.Close()
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err = c.LookupID(ctx, "otok")
			if err == nil || time.Now().After(deadline) {
				return err
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if err := onBus(); err != nil {
		t.Fatalf("object otok not on the bus: %v\n%s", err, a.log)
	}
	const cycles = 5
	violations := 0
	detail := ""
	for i := 0; i < cycles; i++ {
		b.Close()
		time.Sleep(400 * time.Millisecond)
		if a.cmd.Process.Signal(syscall.Signal(0)) != nil {
			violations++
			detail += fmt.Sprintf("; cycle %d: agent exited without ubusd", i)
			break
		}
		if s := a.ps()[sentinel]; s.Status != "running" || s.Pid != pid {
			violations++
			detail += fmt.Sprintf("; cycle %d: sentinel %+v", i, s)
		}
		if b, err = ubustest.Start(a.ubusSock); err != nil {
			t.Fatal(err)
		}
		if err := onBus(); err != nil {
			violations++
			detail += fmt.Sprintf("; cycle %d: object otok not back: %v", i, err)
		}
	}
	detail = fmt.Sprintf("%d bus restarts under a running agent; container kept running, object re-published", cycles) + detail
	record(t, "faults", faultRec{"ubusd away and back (ubustest broker) under a running agent", cycles, violations, detail})
	if violations > 0 {
		t.Errorf("%s\nagent log:\n%s", detail, a.log)
	}
	t.Log(detail)
}
