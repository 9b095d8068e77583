package main

import (
	"context"
	"io"
	"log"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/otok/otok/agent"
	"github.com/otok/otok/agent/fleet"
	"github.com/otok/otok/agent/fleet/fleettest"
)

// The agent's fleet hook: a `config fleet` section makes the agent a fleet
// member (birth, status), and stopping it publishes death.
func TestStartFleet(t *testing.T) {
	m := fleettest.StartMosquitto(t, fleettest.MosquittoOptions{})
	dir := t.TempDir()
	conf := filepath.Join(dir, "otok")
	uci := "config agent\n\noption state '" + dir + "'\n\nconfig fleet\n\tlist broker '" + m.URL + "'\n\toption device_id 'hook1'\n\tlist group 'lab'\n"
	if err := os.WriteFile(conf, []byte(uci), 0o600); err != nil {
		t.Fatal(err)
	}
	a := agent.New(agent.Options{ConfigPath: conf, StateDir: dir, Socket: filepath.Join(dir, "sock"), Version: "hooktest", Log: log.New(io.Discard, "", 0)})
	a.Load()
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	wait := startFleet(ctx, a, conf, dir, "", func(string, ...any) {})
	kctx, kcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer kcancel()
	k, err := fleet.DialController(kctx, fleet.ControllerConfig{Brokers: []string{m.URL}})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if v, ok := k.Device("hook1"); ok && v.Online() && v.Status != nil && v.Status.Agent.Version == "hooktest" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("agent never came online in the fleet")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wait()
	deadline = time.Now().Add(5 * time.Second)
	for {
		if v, _ := k.Device("hook1"); !v.Online() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no death after the agent stopped")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
