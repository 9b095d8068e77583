package fleet

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/otok/otok/agent/fleet"
	"github.com/otok/otok/agent/fleet/fleettest"
)

// The same fleet on a 3-node NATS JetStream cluster through its MQTT
// listeners: devices spread over nodes 1 and 2 by their broker lists (each
// lists the other nodes for failover), the controller on node 3. Retained
// status, Wills, commands and group deploys work across nodes; killing
// node 1 makes its devices fail over and announce birth again.
func TestNATSCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the NATS cluster test takes ~20 s")
	}
	c := fleettest.StartNATSCluster(t)
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	pub, key := newKey(t)
	keys := []ed25519.PublicKey{pub}
	// Controller on node 3 (retries while JetStream elects its leaders).
	var k *fleet.Controller
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var err error
		k, err = fleet.DialController(ctx, fleet.ControllerConfig{Brokers: []string{n3.URL}, Key: key, Events: true})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("controller on %s: %v\n%s", n3.Name, err, c.Log(n3))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Cleanup(k.Close)
	start := time.Now()
	var devs []*device
	for i := 0; i < 10; i++ {
		brokers := []string{n1.URL, n2.URL, n3.URL}
		if i%2 == 1 {
			brokers = []string{n2.URL, n3.URL, n1.URL}
		}
		d := startDevice(t, fleet.Config{Brokers: brokers, DeviceID: fmt.Sprintf("nd%d", i), Groups: []string{"edge"}, Keys: keys, KeepAlive: 5 * time.Second})
		if i != 0 || os.Getenv("V") == "" {
			d.s.SetLogf(func(string, ...any) {})
		}
		devs = append(devs, d)
	}
	// One more device behind a relay to node 1, to cut it for its Will.
	p := newProxy(t, n1.URL)
	wd := startDevice(t, fleet.Config{Brokers: []string{p.URL}, DeviceID: "willdev", Keys: keys, KeepAlive: 5 * time.Second})
	wd.s.SetLogf(func(string, ...any) {})
	all := func() bool {
		for _, d := range append(devs, wd) {
			if !online(k, d.s.ID()) {
				return false
			}
		}
		return true
	}
	waitFor(t, 45*time.Second, "every device's retained state and status on node 3", all)
	t.Logf("11 devices online across nodes 1 and 2, seen from node 3, after %s", time.Since(start))

	// A late controller on node 2 reads every retained status.
	k2 := dial(t, fleet.ControllerConfig{Brokers: []string{n2.URL}})
	waitFor(t, 10*time.Second, "retained statuses from node 2", func() bool { return len(k2.Devices()) >= 11 })

	// Commands across nodes.
	for _, d := range []*device{devs[0], devs[1]} {
		url := "https://images.example.net/busybox.otok"
		r, err := k.Do(context.Background(), fleet.NewCommand(d.s.ID(), "import", fleet.Args{Name: "busybox", URL: url, Digest: fleet.FakeDigest(url)}, 15*time.Second), nil)
		if err != nil || r.Code != "" {
			t.Fatalf("%s: import across nodes: %v %+v", d.s.ID(), err, r)
		}
	}
	// Group deploy across nodes.
	v, err := k.Deploy(context.Background(), &fleet.Desired{Scope: "group/edge", Version: 1, Images: []fleet.ImageRef{img("busybox")},
		Containers: []fleet.ContainerSpec{{Name: "web", Image: "busybox"}}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "group deploy converged", func() bool { return k.Progress("group/edge", v).Reached == len(devs) })

	// Will across nodes: the link to node 1 dies; node 1 publishes the
	// Will, node 3's subscriber sees it.
	p.cut()
	waitFor(t, 20*time.Second, "Will of willdev via node 1", func() bool { v, _ := k.Device("willdev"); return !v.Online() })

	// Kill node 1: its devices fail over to node 2 and are born again.
	before := map[string]uint64{}
	for _, d := range devs {
		before[d.s.ID()] = d.s.Connects()
	}
	killed := time.Now()
	c.Kill(n1)
	waitFor(t, 60*time.Second, "devices of node 1 back via other nodes", func() bool {
		for i, d := range devs {
			if i%2 == 0 && (d.s.Connects() <= before[d.s.ID()] || !d.s.Online()) {
				return false
			}
		}
		return all2(k, devs)
	})
	t.Logf("node 1 killed: its 5 devices re-announced through nodes 2/3 within %s", time.Since(killed))
	// The fleet still works: a second deploy converges everywhere.
	v2, err := k.Deploy(context.Background(), &fleet.Desired{Scope: "group/edge", Version: 2, Images: []fleet.ImageRef{img("busybox")},
		Containers: []fleet.ContainerSpec{{Name: "web2", Image: "busybox"}}})
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(30 * time.Second)
	for k.Progress("group/edge", v2).Reached != len(devs) {
		if time.Now().After(end) {
			for _, d := range k.Devices() {
				t.Logf("%s online=%v reached=%+v", d.ID, d.Online(), d.Status.Reached)
			}
			t.Fatalf("deploy after failover: %+v\n%s", k.Progress("group/edge", v2), c.Log(n2))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if os.Getenv("V") != "" {
		t.Log(c.Log(n2))
	}
}

// all2: every device online (by bdseq rules) at the controller.
func all2(k *fleet.Controller, devs []*device) bool {
	for _, d := range devs {
		if !online(k, d.s.ID()) {
			return false
		}
	}
	return true
}
