package main

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otok/otok/agent"
	"github.com/otok/otok/agent/fleet"
	"github.com/otok/otok/agent/fleet/fleettest"
	"github.com/otok/otok/flash"
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
	wait := startFleet(ctx, a, conf, dir, filepath.Join(dir, "store"), filepath.Join(dir, "keys"), "", func(string, ...any) {})
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

// importURL: a signed .otok served over HTTP lands in the store with
// progress; a digest other than the desired one is refused and removed;
// an unsigned (untrusted) image is refused.
func TestFleetImportURL(t *testing.T) {
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		t.Skip("mksquashfs not installed (squashfs-tools)")
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "rootfs")
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	os.WriteFile(filepath.Join(root, "bin", "hello"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	keys := filepath.Join(dir, "keys")
	os.MkdirAll(keys, 0o755)
	if _, err := flash.GenerateKey(filepath.Join(keys, "img")); err != nil {
		t.Fatal(err)
	}
	kb, _ := os.ReadFile(filepath.Join(keys, "img.key"))
	key, err := flash.ParsePrivateKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(keys, "img.key")) // the device has only the public key
	out := filepath.Join(dir, "hello.otok")
	res, err := flash.Build(context.Background(), flash.BuildOptions{From: root, Name: "hello", Version: "1", Key: key, Out: out, Comp: "gzip", TmpDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	store := filepath.Join(dir, "store")
	imp := importURL(store, keys)
	digest := res.Manifest.Digest
	var prog []uint8
	if err := imp(context.Background(), srv.URL+"/hello.otok", digest, "hello", func(p uint8) { prog = append(prog, p) }); err != nil {
		t.Fatal(err)
	}
	if len(prog) == 0 || prog[len(prog)-1] != 100 {
		t.Errorf("progress %v", prog)
	}
	if err := imp(context.Background(), srv.URL+"/hello.otok", digest, "hello", nil); err != nil {
		t.Fatalf("second import (already there): %v", err)
	}
	other := make([]byte, 32)
	err = imp(context.Background(), srv.URL+"/hello.otok", other, "hello", nil)
	if fleet.CodeOf(err) != fleet.CodeVerify || !strings.Contains(err.Error(), "desired") {
		t.Fatalf("wrong digest: %v", err)
	}
	if err := imp(context.Background(), srv.URL+"/missing.otok", other, "x", nil); fleet.CodeOf(err) != fleet.CodeUnavailable {
		t.Fatalf("404: %v", err)
	}
	// A store that trusts no key refuses the image.
	err = importURL(filepath.Join(dir, "store2"), filepath.Join(dir, "nokeys"))(context.Background(), srv.URL+"/hello.otok", digest, "hello", nil)
	if err == nil {
		t.Fatal("untrusted image imported")
	}
	t.Logf("untrusted: %v", err)
}
