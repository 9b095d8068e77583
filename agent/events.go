package agent

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Event types.
const (
	EvCreate    = "create"
	EvStart     = "start"
	EvExit      = "exit"
	EvStop      = "stop"
	EvRestart   = "restart" // a restart is scheduled (Msg: after how long)
	EvGiveUp    = "giveup"  // restart policy exhausted
	EvRemove    = "remove"
	EvHealth    = "health"
	EvAdopt     = "adopt"
	EvError     = "error"
	EvImage     = "image" // installed / removed (Msg)
	EvReload    = "reload"
	EvAgentStop = "agent-stop"
	EvUpdate    = "update" // limits changed (Msg: the new limits)
	EvKill      = "kill"   // a signal sent through the API (Msg: which)
	EvAttach    = "attach" // a client attached to the console
)

// Event is one thing that happened, numbered in order.
type Event struct {
	Seq       uint64    `cbor:"seq" json:"seq"`
	Time      time.Time `cbor:"time" json:"time"`
	Type      string    `cbor:"type" json:"type"`
	Container string    `cbor:"container,omitempty" json:"container,omitempty"`
	Image     string    `cbor:"image,omitempty" json:"image,omitempty"`
	Exit      *ExitInfo `cbor:"exit,omitempty" json:"exit,omitempty"`
	Health    string    `cbor:"health,omitempty" json:"health,omitempty"`
	Msg       string    `cbor:"msg,omitempty" json:"msg,omitempty"`
	// State is the container's state the event left it in, when the
	// event says so (start: running); transports that show a state use
	// it rather than a later lookup.
	State string `cbor:"state,omitempty" json:"state,omitempty"`
}

// eventRing keeps the last N events in RAM and fans new ones out to
// subscribers. A subscriber that does not keep up loses events (its
// channel is bounded) and learns how many from the sequence gap.
type eventRing struct {
	mu   sync.Mutex
	buf  []Event
	next int // index to write
	full bool
	seq  uint64
	subs map[chan Event]struct{}
}

func newEventRing(n int) *eventRing {
	if n < 1 {
		n = DefaultEvents
	}
	return &eventRing{buf: make([]Event, n), subs: map[chan Event]struct{}{}}
}

// add numbers and stores e and sends it to subscribers without blocking.
func (r *eventRing) add(e Event) Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	e.Seq = r.seq
	r.buf[r.next] = e
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
	for ch := range r.subs {
		select {
		case ch <- e:
		default: // slow subscriber: drop
		}
	}
	return e
}

// since returns the kept events with Seq > seq, oldest first.
func (r *eventRing) since(seq uint64) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sinceLocked(seq)
}

func (r *eventRing) sinceLocked(seq uint64) []Event {
	var out []Event
	n := r.next
	start := 0
	if r.full {
		start = n
		n = len(r.buf)
	}
	for i := 0; i < n; i++ {
		e := r.buf[(start+i)%len(r.buf)]
		if e.Seq > seq {
			out = append(out, e)
		}
	}
	return out
}

// subscribe returns the kept events after seq and a channel of new ones,
// atomically (nothing lost or repeated in between); cancel unsubscribes.
func (r *eventRing) subscribe(seq uint64) ([]Event, chan Event, func()) {
	ch := make(chan Event, 64)
	r.mu.Lock()
	past := r.sinceLocked(seq)
	r.subs[ch] = struct{}{}
	r.mu.Unlock()
	return past, ch, func() {
		r.mu.Lock()
		delete(r.subs, ch)
		r.mu.Unlock()
	}
}

func (r *eventRing) lastSeq() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// Subscribe gives other transports (ubus notify, MQTT) the agent's events
// after seq; the returned channel is closed when ctx ends.
func (a *Agent) Subscribe(ctx context.Context, seq uint64) ([]Event, <-chan Event) {
	past, ch, cancel := a.events.subscribe(seq)
	out := make(chan Event, cap(ch))
	a.goroutine(func() {
		defer close(out)
		defer cancel()
		for {
			select {
			case <-ctx.Done():
				return
			case <-a.ctx.Done():
				return
			case e := <-ch:
				select {
				case out <- e:
				default:
				}
			}
		}
	})
	return past, out
}

// Events is the events op: kept events after r.Since, then (Follow) new
// ones until the peer goes away.
func (a *Agent) Events(ctx context.Context, r *EventsRequest, emit func(any) error) error {
	past, ch, cancel := a.events.subscribe(r.Since)
	defer cancel()
	for _, e := range past {
		if err := emit(e); err != nil {
			return err
		}
	}
	if !r.Follow {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.ctx.Done():
			return nil
		case e := <-ch:
			if err := emit(e); err != nil {
				return err
			}
		}
	}
}

func (a *Agent) event(e Event) {
	if e.Time.IsZero() {
		e.Time = a.clock.Now()
	}
	e = a.events.add(e)
	if a.log != nil {
		msg := e.Type
		if e.Container != "" {
			msg = "container " + e.Container + ": " + msg
		}
		if e.Exit != nil {
			msg += " " + exitString(e.Exit)
		}
		if e.Health != "" {
			msg += " " + e.Health
		}
		if e.Msg != "" {
			msg += ": " + strings.TrimPrefix(e.Msg, "container "+e.Container+": ")
		}
		a.log.Printf("%s", msg)
	}
}

// FormatEvent renders an event as one line for humans.
func FormatEvent(e *Event) string {
	s := e.Time.UTC().Format(time.RFC3339) + " #" + strconv.FormatUint(e.Seq, 10) + " " + e.Type
	if e.Container != "" {
		s += " " + e.Container
	}
	if e.Image != "" {
		s += " image=" + e.Image
	}
	if e.Exit != nil {
		s += " " + exitString(e.Exit)
	}
	if e.Health != "" {
		s += " " + e.Health
	}
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}
