package fleet

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/otok/otok/agent/fleet"
	"github.com/otok/otok/agent/fleet/fleettest"
	"github.com/otok/otok/cose"
)

func img(name string) fleet.ImageRef {
	url := "https://images.example.net/" + name + ".otok"
	return fleet.ImageRef{Name: name, URL: url, Digest: fleet.FakeDigest(url), Version: "1"}
}

func running(d *device, name, image string) bool {
	st, _ := d.a.Status(context.Background())
	for _, c := range st.Containers {
		if c.Name == name {
			return c.State == "running" && c.Image == image
		}
	}
	return false
}

// Group deploy: a signed group document converges on every member and
// each reports the version; non-members are untouched; a bad image fails
// per item while the last good state keeps running; older versions and
// documents for another scope are refused; the device document overrides
// the group's.
func TestGroupDeploy(t *testing.T) {
	m := fleettest.StartMosquitto(t, fleettest.MosquittoOptions{})
	pub, key := newKey(t)
	keys := []ed25519.PublicKey{pub}
	var lab, other []*device
	for i := 0; i < 8; i++ {
		lab = append(lab, startDevice(t, fleet.Config{Brokers: []string{m.URL}, DeviceID: fmt.Sprintf("lab%d", i), Groups: []string{"lab"}, Keys: keys}))
	}
	for i := 0; i < 2; i++ {
		other = append(other, startDevice(t, fleet.Config{Brokers: []string{m.URL}, DeviceID: fmt.Sprintf("oth%d", i), Groups: []string{"other"}, Keys: keys}))
	}
	k := dial(t, fleet.ControllerConfig{Brokers: []string{m.URL}, Key: key})
	waitFor(t, 5*time.Second, "all online", func() bool {
		for _, d := range append(lab, other...) {
			if !online(k, d.s.ID()) {
				return false
			}
		}
		return true
	})
	ctx := context.Background()
	start := time.Now()
	v1, err := k.Deploy(ctx, &fleet.Desired{Scope: "group/lab", Images: []fleet.ImageRef{img("busybox")},
		Containers: []fleet.ContainerSpec{{Name: "web", Image: "busybox", Argv: []string{"httpd", "-f"}}}})
	if err != nil || v1 != 1 {
		t.Fatalf("deploy: %v v%d", err, v1)
	}
	waitFor(t, 10*time.Second, "v1 reached", func() bool { r := k.Progress("group/lab", v1); return r.Reached == len(lab) })
	t.Logf("group of %d converged to v1 in %s", len(lab), time.Since(start))
	for _, d := range lab {
		if !running(d, "web", "busybox") {
			t.Fatalf("%s: web not running", d.s.ID())
		}
	}
	for _, d := range other {
		if st, _ := d.a.Status(ctx); len(st.Containers) != 0 {
			t.Fatalf("%s (not in lab) got containers", d.s.ID())
		}
	}
	// v2 names an image that fails verification: every member fails that
	// item, keeps web (v1's) running, and says why.
	bad := img("adguard")
	bad.Digest = fleet.FakeDigest("something else")
	v2, err := k.Deploy(ctx, &fleet.Desired{Scope: "group/lab", Images: []fleet.ImageRef{img("busybox"), bad},
		Containers: []fleet.ContainerSpec{{Name: "web", Image: "busybox"}, {Name: "dns", Image: "adguard"}}})
	if err != nil || v2 != 2 {
		t.Fatalf("deploy v2: %v v%d", err, v2)
	}
	waitFor(t, 10*time.Second, "v2 failed everywhere", func() bool { r := k.Progress("group/lab", v2); return r.Failed == len(lab) })
	r := k.Progress("group/lab", v2)
	t.Logf("v2: %d failed, e.g. lab0: %s", r.Failed, r.Failures["lab0"])
	for _, d := range lab {
		if !running(d, "web", "busybox") {
			t.Fatalf("%s: lost web after a bad deploy", d.s.ID())
		}
	}
	// Replaying v1's document (older version) is refused, v2 still reported.
	old := fleet.Desired{Scope: "group/lab", Version: 1, Issued: 1}
	ob, _ := fleet.Marshal(old)
	sb, _ := cose.Sign(fleet.CtypeDesired, ob, key)
	k.PublishRaw(ctx, fleet.GroupTopic("lab"), true, sb)
	// A document signed for another scope, published on lab's topic.
	other3 := fleet.Desired{Scope: "group/other", Version: 9, Issued: 1}
	ob, _ = fleet.Marshal(other3)
	sb, _ = cose.Sign(fleet.CtypeDesired, ob, key)
	k.PublishRaw(ctx, fleet.GroupTopic("lab"), true, sb)
	// Unsigned and garbage documents.
	ub, _ := fleet.Marshal(fleet.Desired{Scope: "group/lab", Version: 50, Issued: 1})
	k.PublishRaw(ctx, fleet.GroupTopic("lab"), true, ub)
	k.PublishRaw(ctx, fleet.GroupTopic("lab"), true, []byte{0xd2, 0x84, 0x01})
	waitFor(t, 5*time.Second, "doc errors reported", func() bool {
		v, _ := k.Device("lab0")
		re := v.Status.Reached["group/lab"]
		return len(re.Errors) == 1 && re.Errors[0].Item == "doc"
	})
	for _, d := range lab {
		if !running(d, "web", "busybox") {
			t.Fatalf("%s: lost web after bad documents", d.s.ID())
		}
	}
	v, _ := k.Device("lab0")
	if re := v.Status.Reached["group/lab"]; re.Version != 2 {
		t.Fatalf("lab0 reports %+v after bad documents", re)
	}
	// v3 repairs the group; a device document adds and overrides.
	v3, err := k.Deploy(ctx, &fleet.Desired{Scope: "group/lab", Images: []fleet.ImageRef{img("busybox")},
		Containers: []fleet.ContainerSpec{{Name: "web", Image: "busybox"}}})
	if err != nil || v3 != 3 {
		t.Fatalf("deploy v3: %v v%d", err, v3)
	}
	dv, err := k.Deploy(ctx, &fleet.Desired{Scope: "dev/lab0", Images: []fleet.ImageRef{img("nginx")},
		Containers: []fleet.ContainerSpec{{Name: "web", Image: "nginx"}}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "v3 everywhere and lab0's own", func() bool {
		return k.Progress("group/lab", v3).Reached == len(lab) && k.Progress("dev/lab0", dv).Reached == 1
	})
	waitFor(t, 5*time.Second, "override applied", func() bool { return running(lab[0], "web", "nginx") && running(lab[1], "web", "busybox") })
	// A device that joins later gets the retained group document.
	late := startDevice(t, fleet.Config{Brokers: []string{m.URL}, DeviceID: "lab-late", Groups: []string{"lab"}, Keys: keys})
	waitFor(t, 5*time.Second, "late member converges", func() bool { return running(late, "web", "busybox") })
	waitFor(t, 5*time.Second, "late member reports v3", func() bool { return k.Progress("group/lab", v3).Reached == len(lab)+1 })
}

// Desired versions only move forward, across agent restarts too: the
// highest accepted version is kept in VersionsFile, so an older signed
// document replayed onto the retained topic while the device was down is
// refused when it comes back.
func TestDesiredReplayAfterRestart(t *testing.T) {
	m := fleettest.StartMosquitto(t, fleettest.MosquittoOptions{})
	pub, key := newKey(t)
	vf := filepath.Join(t.TempDir(), "versions.cbor")
	cfg := fleet.Config{Brokers: []string{m.URL}, DeviceID: "dev1", Keys: []ed25519.PublicKey{pub}, VersionsFile: vf}
	d := startDevice(t, cfg)
	k := dial(t, fleet.ControllerConfig{Brokers: []string{m.URL}, Key: key})
	waitFor(t, 5*time.Second, "online", func() bool { return online(k, "dev1") })
	ctx := context.Background()
	sign := func(v uint64, ctr string) []byte {
		b, _ := fleet.Marshal(fleet.Desired{Scope: "dev/dev1", Version: v, Issued: 1, Images: []fleet.ImageRef{img("busybox")}, Containers: []fleet.ContainerSpec{{Name: ctr, Image: "busybox"}}})
		s, _ := cose.Sign(fleet.CtypeDesired, b, key)
		return s
	}
	old := sign(2, "old")
	k.PublishRaw(ctx, fleet.DevTopic("dev1", "desired"), true, old)
	waitFor(t, 5*time.Second, "v2", func() bool { return running(d, "old", "busybox") })
	k.PublishRaw(ctx, fleet.DevTopic("dev1", "desired"), true, sign(3, "new"))
	waitFor(t, 5*time.Second, "v3", func() bool { return running(d, "new", "busybox") && k.Progress("dev/dev1", 3).Reached == 1 })
	d.stop()
	// While it is down, someone with broker access puts v2 back.
	k.PublishRaw(ctx, fleet.DevTopic("dev1", "desired"), true, old)
	d2 := startDevice(t, cfg)
	waitFor(t, 5*time.Second, "replay refused", func() bool {
		v, _ := k.Device("dev1")
		r := v.Status.Reached["dev/dev1"]
		return v.Online() && len(r.Errors) == 1 && r.Errors[0].Code == fleet.CodeReplay
	})
	if running(d2, "old", "busybox") {
		t.Fatal("replayed v2 applied after restart")
	}
	// The current document is applied again after a restart.
	k.PublishRaw(ctx, fleet.DevTopic("dev1", "desired"), true, sign(3, "new"))
	waitFor(t, 5*time.Second, "v3 again", func() bool { return running(d2, "new", "busybox") })
}
