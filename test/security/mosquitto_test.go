package security

import (
	"context"
	"fmt"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otok/otok/agent/fleet"
	"github.com/otok/otok/agent/fleet/fleettest"
)

// TestMosquittoRestarts kills mosquitto (SIGKILL) and restarts it 20 times
// while a device session emits events every 5 ms (the fleet session with
// the fleet package's fake agent: the real MQTT, CBOR, queue and backoff
// code against the real broker). After each restart: the session did not
// die, its offline queue never held more than its bound, and a fresh
// controller sees the device online with a new birth sequence and a
// re-published status.
func TestMosquittoRestarts(t *testing.T) {
	if _, err := exec.LookPath("mosquitto"); err != nil {
		t.Skip("mosquitto not installed")
	}
	cycles := 20
	if testing.Short() {
		cycles = 5
	}
	m := fleettest.StartMosquitto(t, fleettest.MosquittoOptions{})
	const bound = 16
	a := fleet.NewFakeAgent("sec", "x86_64")
	s, err := fleet.NewSession(fleet.Config{Brokers: []string{m.URL}, DeviceID: "secdev", QueueSize: bound,
		Backoff: fleet.Backoff{Base: 50 * time.Millisecond, Max: 300 * time.Millisecond}, Debounce: 20 * time.Millisecond}, a)
	if err != nil {
		t.Fatal(err)
	}
	s.Logf = func(string, ...any) {}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	var maxQueued atomic.Int64
	stopEmit := make(chan struct{})
	var emitted atomic.Int64
	go func() {
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopEmit:
				return
			case <-tk.C:
				a.Emit(fleet.Event{Kind: "restart", Container: "c", Msg: fmt.Sprint(emitted.Add(1))})
				if n, _ := s.Queued(); int64(n) > maxQueued.Load() {
					maxQueued.Store(int64(n))
				}
			}
		}
	}()
	defer close(stopEmit)
	wait := func(d time.Duration, cond func() bool) bool {
		end := time.Now().Add(d)
		for !cond() {
			if time.Now().After(end) {
				return false
			}
			time.Sleep(10 * time.Millisecond)
		}
		return true
	}
	violations := 0
	var examples []string
	viol := func(i int, f string, args ...any) {
		violations++
		msg := fmt.Sprintf("cycle %d: %s", i, fmt.Sprintf(f, args...))
		if len(examples) < 3 {
			examples = append(examples, msg)
		}
		t.Error(msg)
	}
	if !wait(10*time.Second, s.Online) {
		t.Fatal("device never came online")
	}
	var lastBd uint64
	for i := 0; i < cycles; i++ {
		m.Kill()
		if !wait(10*time.Second, func() bool { return !s.Online() }) {
			viol(i, "session still online 10s after the broker died")
		}
		time.Sleep(150 * time.Millisecond) // events pile up offline
		if err := m.Restart(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
			viol(i, "session ended")
		default:
		}
		if !wait(15*time.Second, s.Online) {
			viol(i, "not back online 15s after the broker restarted")
			continue
		}
		k, err := fleet.DialController(context.Background(), fleet.ControllerConfig{Brokers: []string{m.URL}})
		if err != nil {
			viol(i, "controller: %v", err)
			continue
		}
		ok := wait(10*time.Second, func() bool {
			v, ok := k.Device("secdev")
			return ok && v.Online() && v.Status != nil && v.State.BdSeq > lastBd && v.Status.BdSeq == v.State.BdSeq
		})
		if v, _ := k.Device("secdev"); ok {
			lastBd = v.State.BdSeq
		} else {
			viol(i, "state/status not re-published with a new birth sequence (have %+v)", v.State)
		}
		k.Close()
		if q := maxQueued.Load(); q > bound {
			viol(i, "offline queue held %d events, bound %d", q, bound)
		}
	}
	n, dropped := s.Queued()
	detail := fmt.Sprintf("%d broker kills; %d events emitted, offline queue peak %d (bound %d), %d dropped oldest-first, %d connects; queue now %d",
		cycles, emitted.Load(), maxQueued.Load(), bound, dropped, s.Connects(), n)
	for _, e := range examples {
		detail += "; " + e
	}
	record(t, "faults", faultRec{"mosquitto killed and restarted while events flow (fleet session, real broker)", cycles, violations, detail})
	t.Log(detail)
}
