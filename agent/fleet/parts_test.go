package fleet

import (
	"testing"
	"time"
)

func TestBackoffJitter(t *testing.T) {
	b := Backoff{Base: 250 * time.Millisecond, Max: 2 * time.Second}
	for k := 0; k < 8; k++ {
		lim := b.Base << k
		if lim > b.Max {
			lim = b.Max
		}
		var min, max time.Duration = lim, 0
		for i := 0; i < 2000; i++ {
			d := b.Delay(k)
			if d < 0 || d > lim {
				t.Fatalf("k=%d: delay %s outside [0, %s]", k, d, lim)
			}
			min, max = minDur(min, d), maxDur(max, d)
		}
		// Full jitter spreads over the whole window.
		if min > lim/10 || max < lim*9/10 {
			t.Errorf("k=%d: delays in [%s, %s], want spread over [0, %s]", k, min, max, lim)
		}
	}
}

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

func TestQueueDropsOldest(t *testing.T) {
	q := newQueue(3)
	for i := uint64(1); i <= 5; i++ {
		q.push(Event{Seq: i, Kind: "x"})
	}
	n, dropped := q.stats()
	if n != 3 || dropped != 2 {
		t.Fatalf("n=%d dropped=%d, want 3, 2", n, dropped)
	}
	for want := uint64(3); want <= 5; want++ {
		e, ok := q.peek()
		if !ok || e.Seq != want {
			t.Fatalf("peek = %d %v, want %d", e.Seq, ok, want)
		}
		q.pop(e.Seq)
	}
	if _, ok := q.peek(); ok {
		t.Fatal("queue not empty")
	}
}

func TestReplayGuard(t *testing.T) {
	g := newReplayGuard()
	now := time.UnixMilli(1764340000000)
	c := &Command{ID: "a", Issued: uint64(now.UnixMilli()), Deadline: uint64(now.Add(time.Minute).UnixMilli())}
	if _, err := g.admit(c, now); err != nil {
		t.Fatal(err)
	}
	g.done("a", []byte{0xa0})
	cached, err := g.admit(c, now.Add(time.Second))
	if CodeOf(err) != CodeReplay || len(cached) != 1 {
		t.Fatalf("replay: %v %x", err, cached)
	}
	exp := *c
	exp.ID = "b"
	if _, err := g.admit(&exp, now.Add(2*time.Minute)); CodeOf(err) != CodeExpired {
		t.Fatalf("expired: %v", err)
	}
	fut := &Command{ID: "c", Issued: uint64(now.Add(10 * time.Minute).UnixMilli()), Deadline: uint64(now.Add(11 * time.Minute).UnixMilli())}
	if _, err := g.admit(fut, now); CodeOf(err) != CodeExpired {
		t.Fatalf("future: %v", err)
	}
	long := &Command{ID: "d", Issued: c.Issued, Deadline: uint64(now.Add(2 * time.Hour).UnixMilli())}
	if _, err := g.admit(long, now); CodeOf(err) != CodeInvalid {
		t.Fatalf("long deadline: %v", err)
	}
	// After the window the id is forgotten (and the command is expired anyway).
	for i := 0; i < maxSeen; i++ {
		g.seen[string(rune(i))+"x"] = &seenEntry{until: now}
	}
	e := &Command{ID: "e", Issued: uint64(now.Add(time.Hour).UnixMilli()), Deadline: uint64(now.Add(time.Hour + time.Minute).UnixMilli())}
	if _, err := g.admit(e, now.Add(time.Hour)); err != nil {
		t.Fatalf("after sweep: %v", err)
	}
}

func TestTopics(t *testing.T) {
	id, leaf, ok := splitDevTopic(DevTopic("abc", "status"))
	if !ok || id != "abc" || leaf != "status" {
		t.Fatal(id, leaf, ok)
	}
	if _, _, ok := splitDevTopic("otok/v1/group/x/desired"); ok {
		t.Fatal("group topic split as device")
	}
	for _, s := range []string{"", "a/b", "+", "#", "-x", "a.b", "a b", string(make([]byte, 65))} {
		if ValidID(s) {
			t.Errorf("ValidID(%q)", s)
		}
	}
	if DeviceIDFromMAC("94:83:3C:1A:2B:3C") != "94833c1a2b3c" {
		t.Fatal("mac")
	}
}

func TestStale(t *testing.T) {
	now := time.UnixMilli(1764340000000)
	v := DeviceView{State: &State{Online: true, BdSeq: 1}, Status: &Status{BdSeq: 1, Heartbeat: 60, Time: uint64(now.Add(-time.Minute).UnixMilli())}}
	if v.Stale(now) {
		t.Fatal("fresh status stale")
	}
	if !v.Stale(now.Add(10 * time.Minute)) {
		t.Fatal("status 11 min old with a 1 min heartbeat not stale")
	}
	v.Status.Heartbeat = 0
	if v.Stale(now.Add(time.Hour)) {
		t.Fatal("no heartbeat declared: never stale")
	}
}
