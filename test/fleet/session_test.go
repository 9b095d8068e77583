package fleet

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/otok/otok/agent/fleet"
	"github.com/otok/otok/agent/fleet/fleettest"
	"github.com/otok/otok/cose"
)

// Birth: state online with the connection's bdseq and a full status, both
// retained, seen by a controller that subscribes after the fact.
func TestBirthAndLateSubscriber(t *testing.T) {
	m := fleettest.StartMosquitto(t, fleettest.MosquittoOptions{})
	d := startDevice(t, fleet.Config{Brokers: []string{m.URL}, DeviceID: "dev1", Groups: []string{"lab"}})
	waitFor(t, 5*time.Second, "device online", d.s.Online)
	start := time.Now()
	k := dial(t, fleet.ControllerConfig{Brokers: []string{m.URL}})
	waitFor(t, 5*time.Second, "retained state and status", func() bool { return online(k, "dev1") })
	t.Logf("late subscriber had state and status after %s", time.Since(start))
	v, _ := k.Device("dev1")
	if !v.State.Online || v.State.BdSeq != v.Status.BdSeq || v.State.Time == 0 {
		t.Fatalf("state %+v, status bdseq %d", v.State, v.Status.BdSeq)
	}
	if v.Status.Board.Model != "test" || v.Status.Agent.Version == "" || len(v.Status.Groups) != 1 || v.Status.Flash == nil {
		t.Fatalf("status %+v", v.Status)
	}
	// A clean stop publishes death with the same bdseq.
	bd := v.State.BdSeq
	d.stop()
	waitFor(t, 5*time.Second, "death", func() bool { v, _ := k.Device("dev1"); return !v.Online() })
	v, _ = k.Device("dev1")
	if v.State.BdSeq != bd {
		t.Fatalf("death bdseq %d, birth %d", v.State.BdSeq, bd)
	}
}

// Will: kill -9 of the device process makes the broker publish the
// retained offline state registered at CONNECT, with the birth's bdseq.
func TestWillOnKill9(t *testing.T) {
	m := fleettest.StartMosquitto(t, fleettest.MosquittoOptions{})
	k := dial(t, fleet.ControllerConfig{Brokers: []string{m.URL}})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "OTOK_FLEET_TEST_DEVICE="+m.URL+",child1")
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "online" {
		t.Fatalf("device said %q", line)
	}
	waitFor(t, 5*time.Second, "birth", func() bool { return online(k, "child1") })
	v, _ := k.Device("child1")
	bd := v.State.BdSeq
	killed := time.Now()
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "Will", func() bool { v, _ := k.Device("child1"); return !v.Online() })
	v, _ = k.Device("child1")
	t.Logf("Will seen %s after kill -9", time.Since(killed))
	if v.State.Online || v.State.BdSeq != bd {
		t.Fatalf("will %+v, birth bdseq %d", v.State, bd)
	}
	// And a late subscriber sees the retained offline state.
	k2 := dial(t, fleet.ControllerConfig{Brokers: []string{m.URL}})
	waitFor(t, 5*time.Second, "retained Will", func() bool { v, ok := k2.Device("child1"); return ok && v.State != nil && !v.Online() })
}

func do(t *testing.T, k *fleet.Controller, dev, op string, a fleet.Args) *fleet.Reply {
	t.Helper()
	r, err := k.Do(context.Background(), fleet.NewCommand(dev, op, a, 10*time.Second), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", op, a.Name, err)
	}
	return r
}

// Commands: every op round-trips; errors come back with their code;
// progress replies precede the final one.
func TestCommandRoundTrip(t *testing.T) {
	m := fleettest.StartMosquitto(t, fleettest.MosquittoOptions{})
	pub, key := newKey(t)
	d := startDevice(t, fleet.Config{Brokers: []string{m.URL}, DeviceID: "dev1", Keys: []ed25519.PublicKey{pub}})
	k := dial(t, fleet.ControllerConfig{Brokers: []string{m.URL}, Key: key})
	waitFor(t, 5*time.Second, "online", func() bool { return online(k, "dev1") })

	url := "https://images.example.net/busybox.otok"
	var prog []uint8
	start := time.Now()
	r, err := k.Do(context.Background(), fleet.NewCommand("dev1", "import", fleet.Args{Name: "busybox", URL: url, Digest: fleet.FakeDigest(url)}, 10*time.Second), func(p uint8) { prog = append(prog, p) })
	if err != nil || r.Code != "" {
		t.Fatalf("import: %v %+v", err, r)
	}
	if len(prog) == 0 || prog[len(prog)-1] != 100 {
		t.Errorf("import progress %v", prog)
	}
	t.Logf("import round trip %s, progress %v", time.Since(start), prog)

	start = time.Now()
	if r := do(t, k, "dev1", "run", fleet.Args{Spec: &fleet.ContainerSpec{Name: "web", Image: "busybox"}}); r.Code != "" {
		t.Fatalf("run: %+v", r)
	}
	t.Logf("run round trip %s", time.Since(start))
	r = do(t, k, "dev1", "ps", fleet.Args{})
	var ps []fleet.Container
	if err := cbor.Unmarshal(r.Result, &ps); err != nil || len(ps) != 1 || ps[0].State != "running" {
		t.Fatalf("ps: %v %+v", err, ps)
	}
	r = do(t, k, "dev1", "logs", fleet.Args{Name: "web", Tail: 3})
	var logs []byte
	if err := cbor.Unmarshal(r.Result, &logs); err != nil || strings.Count(string(logs), "\n") != 3 {
		t.Fatalf("logs: %v %q", err, logs)
	}
	r = do(t, k, "dev1", "stats", fleet.Args{Name: "web"})
	var st []fleet.Container
	if err := cbor.Unmarshal(r.Result, &st); err != nil || len(st) != 1 || st[0].Usage == nil {
		t.Fatalf("stats: %v %+v", err, st)
	}
	for _, op := range []string{"stop", "start", "restart"} {
		if r := do(t, k, "dev1", op, fleet.Args{Name: "web"}); r.Code != "" {
			t.Fatalf("%s: %+v", op, r)
		}
	}
	if r := do(t, k, "dev1", "rm", fleet.Args{Name: "web"}); r.Code != fleet.CodeConflict {
		t.Fatalf("rm running: %+v", r)
	}
	if r := do(t, k, "dev1", "rm", fleet.Args{Name: "web", Force: true}); r.Code != "" {
		t.Fatalf("rm -f: %+v", r)
	}
	if r := do(t, k, "dev1", "stop", fleet.Args{Name: "web"}); r.Code != fleet.CodeNotFound || !strings.Contains(r.Msg, "web") {
		t.Fatalf("stop missing: %+v", r)
	}
	r = do(t, k, "dev1", "status", fleet.Args{})
	var sd fleet.Status
	if err := cbor.Unmarshal(r.Result, &sd); err != nil || sd.Device != "dev1" {
		t.Fatalf("status: %v %+v", err, sd)
	}
	// The status document followed the changes (debounced publish).
	waitFor(t, 5*time.Second, "status shows the image", func() bool {
		v, _ := k.Device("dev1")
		return v.Status != nil && len(v.Status.Images) == 1
	})
	_ = d
}

// Rejected commands: each gets an error reply with its code (when the id
// is readable) and a "reject" event; nothing runs.
func TestCommandRejects(t *testing.T) {
	m := fleettest.StartMosquitto(t, fleettest.MosquittoOptions{})
	pub, key := newKey(t)
	_, rogue := newKey(t)
	d := startDevice(t, fleet.Config{Brokers: []string{m.URL}, DeviceID: "dev1", Keys: []ed25519.PublicKey{pub}})
	k := dial(t, fleet.ControllerConfig{Brokers: []string{m.URL}, Key: key, Events: true})
	unsigned := dial(t, fleet.ControllerConfig{Brokers: []string{m.URL}})
	bad := dial(t, fleet.ControllerConfig{Brokers: []string{m.URL}, Key: rogue})
	waitFor(t, 5*time.Second, "online", func() bool { return online(k, "dev1") })
	ctx := context.Background()
	url := "https://images.example.net/a.otok"
	importArgs := fleet.Args{Name: "a", URL: url, Digest: fleet.FakeDigest(url)}

	send := func(name string, via *fleet.Controller, c *fleet.Command, want fleet.Code) *fleet.Reply {
		t.Helper()
		r, err := via.Do(ctx, c, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if r.Code != want {
			t.Fatalf("%s: reply %+v, want code %q", name, r, want)
		}
		t.Logf("%s → %s: %s", name, r.Code, r.Msg)
		return r
	}
	send("unsigned", unsigned, fleet.NewCommand("dev1", "import", importArgs, 5*time.Second), fleet.CodeUnauthorized)
	send("signed by an untrusted key", bad, fleet.NewCommand("dev1", "import", importArgs, 5*time.Second), fleet.CodeUnauthorized)
	// Sent to dev1's topic but addressed (and signed) for dev2.
	c := fleet.NewCommand("dev2", "ps", fleet.Args{}, 5*time.Second)
	b, _ := k.Encode(c)
	if r, err := k.Send(ctx, "dev1", c.ID, b, nil); err != nil || r.Code != fleet.CodeUnauthorized {
		t.Fatalf("redirected command: %v %+v", err, r)
	}
	// Expired: deadline passed in transit.
	exp := fleet.NewCommand("dev1", "ps", fleet.Args{}, time.Second)
	exp.Issued -= 60_000
	exp.Deadline = exp.Issued + 1000
	b, _ = k.Encode(exp)
	if r, _ := k.Send(ctxT(t, 5*time.Second), "dev1", exp.ID, b, nil); r == nil || r.Code != fleet.CodeExpired {
		t.Fatalf("expired: %+v", r)
	}
	// Issued far in the future (a controller clock off, or a forged one).
	fut := fleet.NewCommand("dev1", "ps", fleet.Args{}, time.Second)
	fut.Issued += 3_600_000
	fut.Deadline = fut.Issued + 10_000
	b, _ = k.Encode(fut)
	if r, _ := k.Send(ctxT(t, 5*time.Second), "dev1", fut.ID, b, nil); r == nil || r.Code != fleet.CodeExpired {
		t.Fatalf("future: %+v", r)
	}
	// Replay: the same signed bytes again are not run again; the reply
	// carries the first result.
	imp := fleet.NewCommand("dev1", "import", importArgs, 10*time.Second)
	b, _ = k.Encode(imp)
	r1, err := k.Send(ctxT(t, 5*time.Second), "dev1", imp.ID, b, nil)
	if err != nil || r1.Code != "" {
		t.Fatalf("first: %v %+v", err, r1)
	}
	r2, err := k.Send(ctxT(t, 5*time.Second), "dev1", imp.ID, b, nil)
	if err != nil || r2.Code != fleet.CodeReplay {
		t.Fatalf("replayed: %v %+v", err, r2)
	}
	var first fleet.Reply
	if err := cbor.Unmarshal(r2.Result, &first); err != nil || first.ID != imp.ID || !first.Final || first.Code != "" {
		t.Fatalf("replay result %v %+v", err, first)
	}
	// Malformed: unknown op, wrong type, unknown field, garbage, oversized.
	send("unknown op", k, fleet.NewCommand("dev1", "format-flash", fleet.Args{}, 5*time.Second), fleet.CodeUnknownCommand)
	raw := func(name string, m map[int]any, want fleet.Code) {
		t.Helper()
		p, _ := cbor.Marshal(m)
		b, _ := cose.Sign(fleet.CtypeCommand, p, key)
		r, err := k.Send(ctxT(t, 5*time.Second), "dev1", m[1].(string), b, nil)
		if err != nil || r.Code != want {
			t.Fatalf("%s: %v %+v", name, err, r)
		}
		t.Logf("%s → %s: %s", name, r.Code, r.Msg)
	}
	now := uint64(time.Now().UnixMilli())
	raw("wrong type", map[int]any{1: "w1", 2: "dev1", 3: now, 4: "later", 5: "ps", 6: map[int]any{}}, fleet.CodeInvalid)
	raw("unknown field", map[int]any{1: "w2", 2: "dev1", 3: now, 4: now + 5000, 5: "ps", 6: map[int]any{}, 42: "x"}, fleet.CodeInvalid)
	raw("missing name", map[int]any{1: "w3", 2: "dev1", 3: now, 4: now + 5000, 5: "stop", 6: map[int]any{}}, fleet.CodeInvalid)
	before := countRejects(k, 0)
	k.PublishRaw(ctx, fleet.DevTopic("dev1", "cmd"), false, []byte("\xff\x00garbage"))
	k.PublishRaw(ctx, fleet.DevTopic("dev1", "cmd"), false, make([]byte, fleet.MaxCommandSize+1))
	waitFor(t, 5*time.Second, "reject events for unanswerable commands", func() bool { return countRejects(k, before) >= 2 })
	st, _ := d.a.Status(ctx)
	if len(st.Images) != 1 {
		t.Fatalf("images after rejects: %+v (only the one good import may have run)", st.Images)
	}
	// The device is still fine.
	if r := do(t, k, "dev1", "ps", fleet.Args{}); r.Code != "" {
		t.Fatalf("ps after bad input: %+v", r)
	}
}

var rejects int

// countRejects drains the controller's event channel and returns the
// number of reject events seen so far (plus base).
func countRejects(k *fleet.Controller, base int) int {
	for {
		select {
		case e := <-k.Events():
			if e.Kind == "reject" {
				rejects++
			}
		default:
			return rejects
		}
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
