package fleet

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/otok/otok/agent/fleet"
	"github.com/otok/otok/agent/fleet/fleettest"
)

// Broker restart: every device reconnects (jittered) and announces birth
// again with a new bdseq and a fresh retained status (mosquitto runs
// without persistence, so the restarted broker knows nothing).
func TestBrokerRestart(t *testing.T) {
	m := fleettest.StartMosquitto(t, fleettest.MosquittoOptions{})
	var devs []*device
	for i := 0; i < 20; i++ {
		d := startDevice(t, fleet.Config{Brokers: []string{m.URL}, DeviceID: fmt.Sprintf("d%d", i)})
		d.s.SetLogf(func(string, ...any) {})
		devs = append(devs, d)
	}
	allOnline := func() bool {
		for _, d := range devs {
			if !d.s.Online() {
				return false
			}
		}
		return true
	}
	waitFor(t, 5*time.Second, "all online", allOnline)
	k0 := dial(t, fleet.ControllerConfig{Brokers: []string{m.URL}})
	waitFor(t, 5*time.Second, "controller sees all", func() bool { return len(k0.Devices()) == len(devs) })
	before := map[string]uint64{}
	for _, v := range k0.Devices() {
		before[v.ID] = v.State.BdSeq
	}
	m.Kill()
	waitFor(t, 5*time.Second, "all offline", func() bool {
		for _, d := range devs {
			if d.s.Online() {
				return false
			}
		}
		return true
	})
	time.Sleep(300 * time.Millisecond) // a few failed attempts each
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFor(t, 10*time.Second, "all back", allOnline)
	t.Logf("%d devices back %s after the broker restarted", len(devs), time.Since(start))
	k := dial(t, fleet.ControllerConfig{Brokers: []string{m.URL}})
	waitFor(t, 5*time.Second, "re-birth seen", func() bool {
		n := 0
		for _, v := range k.Devices() {
			if v.Online() && v.Status != nil && v.State.BdSeq > before[v.ID] && v.Status.BdSeq == v.State.BdSeq {
				n++
			}
		}
		return n == len(devs)
	})
	for _, d := range devs {
		if d.s.Connects() != 2 {
			t.Errorf("%s connected %d times", d.s.ID(), d.s.Connects())
		}
	}
}

// Offline events: a device cut off from the broker (no DISCONNECT: the
// broker publishes its Will) queues events in RAM up to the bound, drops
// the oldest with a count, and delivers the rest in order on reconnect.
func TestOfflineEvents(t *testing.T) {
	m := fleettest.StartMosquitto(t, fleettest.MosquittoOptions{})
	p := newProxy(t, m.URL)
	d := startDevice(t, fleet.Config{Brokers: []string{p.URL}, DeviceID: "dev1", QueueSize: 5})
	k := dial(t, fleet.ControllerConfig{Brokers: []string{m.URL}, Events: true})
	waitFor(t, 5*time.Second, "online", func() bool { return online(k, "dev1") })
	d.a.Emit(fleet.Event{Kind: "start", Container: "c0"})
	first := <-k.Events()
	// c0 leaves the device's queue only when its PUBACK is back; cutting
	// before that would keep it queued (at least once) and shift the counts.
	waitFor(t, 5*time.Second, "c0 acknowledged", func() bool { n, _ := d.s.Queued(); return n == 0 })
	p.cut()
	waitFor(t, 5*time.Second, "Will after the link died", func() bool { v, _ := k.Device("dev1"); return !v.Online() })
	waitFor(t, 5*time.Second, "device notices", func() bool { return !d.s.Online() })
	for i := 1; i <= 8; i++ {
		d.a.Emit(fleet.Event{Kind: "exit", Container: fmt.Sprintf("c%d", i), Code: int64(i)})
	}
	// Generous: under a loaded CI machine the session may be busy in a
	// reconnect attempt; the counts, not the time, are what is tested.
	for end := time.Now().Add(15 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n, dropped := d.s.Queued()
		if n == 5 && dropped == 3 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("queue: %d queued, %d dropped after 15s; want 5 and 3", n, dropped)
		}
	}
	p.restore()
	var got []fleet.DevEvent
	timeout := time.After(10 * time.Second)
	for len(got) < 5 {
		select {
		case e := <-k.Events():
			got = append(got, e)
		case <-timeout:
			t.Fatalf("got %d of 5 queued events: %+v", len(got), got)
		}
	}
	for i, e := range got {
		want := first.Seq + 4 + uint64(i) // seqs first+1..first+3 were dropped
		if e.Seq != want || e.Container != fmt.Sprintf("c%d", i+4) {
			t.Errorf("event %d: seq %d %s, want seq %d c%d", i, e.Seq, e.Container, want, i+4)
		}
		if e.BdSeq <= first.BdSeq {
			t.Errorf("event %d sent with bdseq %d, not the new connection's", i, e.BdSeq)
		}
	}
	waitFor(t, 5*time.Second, "drop count in status", func() bool {
		v, _ := k.Device("dev1")
		return v.Online() && v.Status != nil && v.Status.Dropped == 3
	})
}

// TLS: mutual TLS with certificates generated for this test; a client
// certificate from another CA and no client certificate are refused.
func TestMutualTLS(t *testing.T) {
	m := fleettest.StartMosquitto(t, fleettest.MosquittoOptions{TLS: true})
	c := m.Certs
	tlsCfg, err := fleet.TLSFiles(c.CA, c.ClientCert, c.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	startDevice(t, fleet.Config{Brokers: []string{m.TLSURL}, DeviceID: "tls1", TLS: tlsCfg})
	k := dial(t, fleet.ControllerConfig{Brokers: []string{m.TLSURL}, TLS: tlsCfg})
	waitFor(t, 5*time.Second, "online over mTLS", func() bool { return online(k, "tls1") })
	if r := do(t, k, "tls1", "ps", fleet.Args{}); r.Code != "" {
		t.Fatalf("ps over TLS: %+v", r)
	}
	rogue, _ := fleet.TLSFiles(c.CA, c.RogueCert, c.RogueKey)
	noCert, _ := fleet.TLSFiles(c.CA, "", "")
	wrongCA, _ := fleet.TLSFiles(c.RogueCert, c.ClientCert, c.ClientKey)
	for name, cfg := range map[string]*fleet.Config{
		"rogue client certificate": {Brokers: []string{m.TLSURL}, DeviceID: "rogue", TLS: rogue},
		"no client certificate":    {Brokers: []string{m.TLSURL}, DeviceID: "nocert", TLS: noCert},
		"server not trusted":       {Brokers: []string{m.TLSURL}, DeviceID: "wrongca", TLS: wrongCA},
		"plain TCP to TLS port":    {Brokers: []string{"tcp" + m.TLSURL[3:]}, DeviceID: "plain"},
	} {
		refused(t, k, name, cfg)
	}
	if os.Getenv("V") != "" {
		t.Log(m.Log())
	}
}

// Username and password: the right ones connect, wrong ones and none are
// refused by the broker.
func TestPassword(t *testing.T) {
	m := fleettest.StartMosquitto(t, fleettest.MosquittoOptions{Users: map[string]string{"dev1": "s3cret", "ctl": "ctlpw"}})
	startDevice(t, fleet.Config{Brokers: []string{m.URL}, DeviceID: "dev1", Username: "dev1", Password: "s3cret"})
	k := dial(t, fleet.ControllerConfig{Brokers: []string{m.URL}, Username: "ctl", Password: "ctlpw"})
	waitFor(t, 5*time.Second, "online with a password", func() bool { return online(k, "dev1") })
	for name, cfg := range map[string]fleet.Config{
		"wrong password": {Brokers: []string{m.URL}, DeviceID: "dev2", Username: "dev1", Password: "nope"},
		"anonymous":      {Brokers: []string{m.URL}, DeviceID: "dev3"},
	} {
		refused(t, k, name, &cfg)
	}
}

// refused starts a device with cfg and checks that it logs a connection
// error within 5 s, is not online, and that the controller k never saw it.
func refused(t *testing.T, k *fleet.Controller, name string, cfg *fleet.Config) {
	t.Helper()
	d := startDevice(t, *cfg)
	errs := make(chan string, 10)
	d.s.SetLogf(func(f string, a ...any) {
		select {
		case errs <- fmt.Sprintf(f, a...):
		default:
		}
	})
	select {
	case e := <-errs:
		t.Logf("%s: %s", name, e)
	case <-time.After(5 * time.Second):
		t.Errorf("%s: no connection error", name)
	}
	if d.s.Online() {
		t.Errorf("%s: device online", name)
	}
	if _, ok := k.Device(cfg.DeviceID); ok {
		t.Errorf("%s: controller saw it", name)
	}
}
