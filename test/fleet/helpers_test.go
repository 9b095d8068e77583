// Package fleet holds the fleet system tests: real mosquitto (and a 3-node
// NATS cluster) started on free loopback ports, devices running the real
// agent/fleet session over a fake runtime, and the controller.
package fleet

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/otok/otok/agent/fleet"
)

// TestMain doubles as a device process for the kill -9 test:
// OTOK_FLEET_TEST_DEVICE=<broker>,<id> runs one session until killed.
func TestMain(m *testing.M) {
	if spec := os.Getenv("OTOK_FLEET_TEST_DEVICE"); spec != "" {
		broker, id, _ := strings.Cut(spec, ",")
		s, err := fleet.NewSession(fleet.Config{Brokers: []string{broker}, DeviceID: id, KeepAlive: 2 * time.Second}, fleet.NewFakeAgent("child", "x86_64"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		s.Logf = func(string, ...any) {}
		go s.Run(context.Background())
		for !s.Online() {
			time.Sleep(10 * time.Millisecond)
		}
		fmt.Println("online")
		select {}
	}
	os.Exit(m.Run())
}

type device struct {
	s      *fleet.Session
	a      *fleet.FakeAgent
	cancel context.CancelFunc
	done   chan struct{}
}

func (d *device) stop() {
	d.cancel()
	<-d.done
}

// startDevice runs one device session until the test ends.
func startDevice(t *testing.T, cfg fleet.Config) *device {
	t.Helper()
	if cfg.Backoff.Base == 0 {
		cfg.Backoff = fleet.Backoff{Base: 100 * time.Millisecond, Max: 500 * time.Millisecond}
	}
	if cfg.Debounce == 0 {
		cfg.Debounce = 50 * time.Millisecond
	}
	a := fleet.NewFakeAgent("test", "x86_64")
	s, err := fleet.NewSession(cfg, a)
	if err != nil {
		t.Fatal(err)
	}
	s.Logf = func(f string, v ...any) { t.Logf("%s: "+f, append([]any{time.Now().Format("15:04:05.000")}, v...)...) }
	ctx, cancel := context.WithCancel(context.Background())
	d := &device{s: s, a: a, cancel: cancel, done: make(chan struct{})}
	go func() { s.Run(ctx); close(d.done) }()
	t.Cleanup(func() { s.SetLogf(func(string, ...any) {}); d.stop() })
	return d
}

func dial(t *testing.T, cfg fleet.ControllerConfig) *fleet.Controller {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	k, err := fleet.DialController(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func online(k *fleet.Controller, id string) bool {
	v, ok := k.Device(id)
	return ok && v.Online() && v.Status != nil
}

func newKey(t *testing.T) (ed25519.PublicKey, ed25519.PrivateKey) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return pub, priv
}

// proxy is a TCP relay to a broker that a test can cut (both sides closed
// without an MQTT DISCONNECT, as a dead link or a killed process) and
// restore.
type proxy struct {
	URL    string
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	down   bool
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: strings.TrimPrefix(target, "tcp://"), URL: "tcp://" + ln.Addr().String()}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go func() { io.Copy(u, c); u.Close() }()
		go func() { io.Copy(c, u); c.Close() }()
	}
}

// cut closes every relayed connection and refuses new ones.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *proxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}
