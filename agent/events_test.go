package agent

import (
	"testing"
)

func TestEventRing(t *testing.T) {
	r := newEventRing(4)
	for i := range 6 {
		r.add(Event{Type: EvStart, Msg: string(rune('a' + i))})
	}
	got := r.since(0)
	if len(got) != 4 || got[0].Seq != 3 || got[3].Seq != 6 || got[3].Msg != "f" {
		t.Fatalf("ring %+v", got)
	}
	if got := r.since(5); len(got) != 1 || got[0].Seq != 6 {
		t.Fatalf("since 5: %+v", got)
	}
	past, ch, cancel := r.subscribe(6)
	if len(past) != 0 {
		t.Fatal(past)
	}
	r.add(Event{Type: EvStop})
	if e := <-ch; e.Seq != 7 || e.Type != EvStop {
		t.Fatal(e)
	}
	// a subscriber that does not read loses events, the ring does not block
	for range 200 {
		r.add(Event{Type: EvExit})
	}
	cancel()
	if r.lastSeq() != 207 {
		t.Fatal(r.lastSeq())
	}
	e := FormatEvent(&Event{Seq: 3, Type: EvExit, Container: "dns", Exit: &ExitInfo{Code: 137, Signal: "SIGKILL"}})
	if e != "0001-01-01T00:00:00Z #3 exit dns (killed by SIGKILL)" {
		t.Errorf("%q", e)
	}
}

func TestParseNetDevAndStat(t *testing.T) {
	rx, tx := parseNetDev([]byte(`Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0:    2000      20    0    0    0     0          0         0     3000      30    0    0    0     0       0          0
  veth1:     5       1    0    0    0     0          0         0        7       1    0    0    0     0       0          0
`))
	if rx != 2005 || tx != 3007 {
		t.Errorf("rx %d tx %d", rx, tx)
	}
	st, err := parseStatStartTime([]byte("1234 (we) ird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 100"))
	if err != nil || st != 98765 {
		t.Errorf("start time %d %v", st, err)
	}
	if _, err := parseStatStartTime([]byte("garbage")); err == nil {
		t.Error("garbage stat accepted")
	}
}
