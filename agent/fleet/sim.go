package fleet

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"fmt"
	"sync"
)

// SimConfig describes a simulated fleet: N devices in one process, each a
// real Session (own MQTT connection, Will, subscriptions) over a FakeAgent.
type SimConfig struct {
	Devices int
	Prefix  string // device ids are <prefix><n>, n from 0; default "sim"
	// Brokers are assigned round-robin as each device's first broker, the
	// others following as failover (a cluster spreads its devices).
	Brokers []string
	// Groups returns the groups of device n (nil: every device in "all").
	Groups    func(n int) []string
	Keys      []ed25519.PublicKey
	Backoff   Backoff
	Heartbeat Config // only Heartbeat, Debounce, KeepAlive, QueueSize are used
	TLS       *tls.Config
	Username  string
	Password  string
	Logf      func(string, ...any) // nil: silent
	// Handshakes is how many devices may be connecting at once (default
	// 64): N devices starting in the same millisecond would overflow the
	// broker's listen queue (mosquitto listens with a backlog of 100) and
	// wait a full SYN retransmission (1 s), which real fleets, whose boots
	// are spread out, do not do.
	Handshakes int
}

// Sim is a running simulated fleet.
type Sim struct {
	Sessions []*Session
	Agents   []*FakeAgent
	wg       sync.WaitGroup
}

// StartSim builds the sessions and runs them until ctx is done; Wait
// returns when all have said goodbye.
func StartSim(ctx context.Context, sc SimConfig) (*Sim, error) {
	if sc.Prefix == "" {
		sc.Prefix = "sim"
	}
	if len(sc.Brokers) == 0 {
		return nil, fmt.Errorf("fleet sim: no broker")
	}
	sim := &Sim{}
	if sc.Handshakes <= 0 {
		sc.Handshakes = 64
	}
	gate := make(chan struct{}, sc.Handshakes)
	verified := NewVerifyCache()
	models := []string{"GL.iNet GL-MT6000", "Linksys E8450", "TP-Link Archer C7 v5", "Netgear R7800"}
	arches := []string{"aarch64_cortex-a53", "aarch64_cortex-a53", "mips_24kc", "arm_cortex-a15_neon-vfpv4"}
	for n := 0; n < sc.Devices; n++ {
		groups := []string{"all"}
		if sc.Groups != nil {
			groups = sc.Groups(n)
		}
		brokers := make([]string, 0, len(sc.Brokers))
		for i := range sc.Brokers {
			brokers = append(brokers, sc.Brokers[(n+i)%len(sc.Brokers)])
		}
		a := NewFakeAgent(models[n%len(models)], arches[n%len(arches)])
		s, err := NewSession(Config{
			Brokers: brokers, DeviceID: fmt.Sprintf("%s%d", sc.Prefix, n), Groups: groups, Keys: sc.Keys,
			Heartbeat: sc.Heartbeat.Heartbeat, Debounce: sc.Heartbeat.Debounce, KeepAlive: sc.Heartbeat.KeepAlive,
			QueueSize: sc.Heartbeat.QueueSize, Backoff: sc.Backoff, TLS: sc.TLS,
			Username: sc.Username, Password: sc.Password, Version: "sim", Gate: gate, Verified: verified,
		}, a)
		if err != nil {
			return nil, err
		}
		s.SetLogf(func(string, ...any) {})
		if sc.Logf != nil {
			s.SetLogf(sc.Logf)
		}
		sim.Sessions = append(sim.Sessions, s)
		sim.Agents = append(sim.Agents, a)
	}
	for _, s := range sim.Sessions {
		sim.wg.Add(1)
		go func() { defer sim.wg.Done(); s.Run(ctx) }()
	}
	return sim, nil
}

// Online counts the devices that are connected and born.
func (s *Sim) Online() int {
	n := 0
	for _, x := range s.Sessions {
		if x.Online() {
			n++
		}
	}
	return n
}

// Wait returns when every session has stopped.
func (s *Sim) Wait() { s.wg.Wait() }
