package fleet

import (
	"context"
	"crypto/ed25519"
	"os"
	"runtime/debug"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/otok/otok/agent/fleet"
	"github.com/otok/otok/agent/fleet/fleettest"
)

// 1,000 simulated devices (real sessions, fake runtime) on one mosquitto:
// all online, a signed group deploy reported by all with p99 ≤ 1 s, a
// broker restart with every device back. OTOK_FLEET_SCALE overrides the
// count; -short skips it. The numbers to compare come from
// `go run ./test/fleet/bench` (see there).
func TestScale(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the scale test starts 1,000 MQTT sessions")
	}
	n := 1000
	if s := os.Getenv("OTOK_FLEET_SCALE"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	old := debug.SetGCPercent(400) // one heap for N devices: see test/fleet/bench
	t.Cleanup(func() { debug.SetGCPercent(old) })
	m := fleettest.StartMosquitto(t, fleettest.MosquittoOptions{})
	pub, key := newKey(t)
	ctx, cancel := context.WithCancel(context.Background())
	start := time.Now()
	sim, err := fleet.StartSim(ctx, fleet.SimConfig{Devices: n, Brokers: []string{m.URL}, Keys: []ed25519.PublicKey{pub},
		Backoff: fleet.Backoff{Base: 250 * time.Millisecond, Max: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); sim.Wait() })
	waitFor(t, 20*time.Second, "all online", func() bool { return sim.Online() == n })
	t.Logf("%d devices online in %s", n, time.Since(start))
	k := dial(t, fleet.ControllerConfig{Brokers: []string{m.URL}, Key: key})
	waitFor(t, 10*time.Second, "controller sees all", func() bool { return len(k.Devices()) == n })
	time.Sleep(1200 * time.Millisecond) // past the births' status rate limit

	sent := time.Now()
	v, err := k.Deploy(ctx, &fleet.Desired{Scope: "group/all", Version: 1, Images: []fleet.ImageRef{img("busybox")},
		Containers: []fleet.ContainerSpec{{Name: "web", Image: "busybox"}, {Name: "ntp", Image: "busybox"}}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "every device reports the version", func() bool { return k.Progress("group/all", v).Reached == n })
	// StatusAt is when the controller received each device's status.
	var lat []time.Duration
	for _, d := range k.Devices() {
		lat = append(lat, d.StatusAt.Sub(sent))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	t.Logf("group deploy reported by all %d: p50 %s p99 %s", n, p50.Round(time.Millisecond), p99.Round(time.Millisecond))
	// The target is p99 ≤ 1 s, reported by the benchmark next to
	// the raw-paho floor of the same run. On a shared 2-core machine the
	// absolute figure swings with the load, so the test guards against
	// regressions at twice the target (OTOK_FLEET_P99 overrides).
	limit := 2 * time.Second
	if s := os.Getenv("OTOK_FLEET_P99"); s != "" {
		if d, err := time.ParseDuration(s); err == nil {
			limit = d
		}
	}
	if p99 > limit {
		t.Errorf("deploy p99 %s > %s", p99, limit)
	}
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	waitFor(t, 20*time.Second, "all back after a broker restart", func() bool {
		c := 0
		for _, s := range sim.Sessions {
			if s.Connects() >= 2 && s.Online() {
				c++
			}
		}
		return c == n
	})
	t.Logf("broker restart: all %d back in %s", n, time.Since(restarted).Round(time.Millisecond))
}
