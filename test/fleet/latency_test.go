package fleet

import (
	"context"
	"testing"
	"time"

	"github.com/otok/otok/agent/fleet"
	"github.com/otok/otok/agent/fleet/fleettest"
)

func TestDeployLatencyOne(t *testing.T) {
	m := fleettest.StartMosquitto(t, fleettest.MosquittoOptions{})
	d := startDevice(t, fleet.Config{Brokers: []string{m.URL}, DeviceID: "dev1", Groups: []string{"all"}, Debounce: time.Second})
	k := dial(t, fleet.ControllerConfig{Brokers: []string{m.URL}})
	waitFor(t, 5*time.Second, "online", func() bool { return online(k, "dev1") })
	time.Sleep(1500 * time.Millisecond)
	for v := uint64(1); v <= 3; v++ {
		start := time.Now()
		k.Deploy(context.Background(), &fleet.Desired{Scope: "group/all", Version: v, Images: []fleet.ImageRef{img("busybox"), img("adguard")}, Containers: []fleet.ContainerSpec{{Name: "web", Image: "busybox"}, {Name: "a", Image: "busybox"}, {Name: "b", Image: "busybox"}, {Name: "c", Image: "busybox"}, {Name: "dns", Image: "adguard"}}})
		pub := time.Since(start)
		waitFor(t, 5*time.Second, "reached", func() bool { return k.Progress("group/all", v).Reached == 1 })
		t.Logf("v%d: publish %s, reached %s", v, pub, time.Since(start))
		time.Sleep(100 * time.Millisecond)
	}
	_ = d
}
