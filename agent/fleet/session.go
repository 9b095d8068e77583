package fleet

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Session is one device's membership in the fleet: it keeps an MQTT
// connection to one of the configured brokers (own jittered reconnect,
// broker failover), announces birth and death, publishes status and events,
// executes commands and applies desired state through the Agent.
type Session struct {
	cfg   Config
	agent Agent
	// Logf reports connection changes and rejected messages (log.Printf
	// if nil). Set it before Run; SetLogf changes it at any time.
	Logf func(format string, a ...any)
	logp atomic.Pointer[func(string, ...any)]

	q     *queue
	guard *replayGuard
	seq   atomic.Uint64
	bdseq atomic.Uint64
	cmds  chan struct{} // semaphore: commands in flight

	mu     sync.Mutex
	cur    *link         // nil while offline
	upWait chan struct{} // closed when a link becomes current

	dirty chan struct{} // status changed (1-buffered)

	dmu     sync.Mutex
	docs    map[string]*Desired // scope → last accepted document
	floor   map[string]uint64   // scope → highest version ever accepted (VersionsFile)
	reached map[string]Reached  // scope → what was reached
	applyCh chan struct{}       // 1-buffered: docs changed

	connects atomic.Uint64 // successful connections (births)
	online   atomic.Bool
}

// link is one MQTT connection.
type link struct {
	c     mqtt.Client
	bdseq uint64
	down  chan struct{}
	once  sync.Once
	err   error // why the link went down (set before down is closed)
	born  atomic.Bool
}

func (l *link) lost(err error) {
	l.once.Do(func() {
		l.err = err
		close(l.down)
	})
}

// why returns what ended the link, if paho said.
func (l *link) why() error {
	select {
	case <-l.down:
		return l.err
	default:
		return nil
	}
}

// MaxInFlight is how many commands a device runs at once; more get busy.
const MaxInFlight = 4

// NewSession checks cfg and returns a session; Run starts it.
func NewSession(cfg Config, a Agent) (*Session, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Session{
		cfg: cfg, agent: a,
		q: newQueue(cfg.QueueSize), guard: newReplayGuard(),
		cmds:    make(chan struct{}, MaxInFlight),
		upWait:  make(chan struct{}),
		dirty:   make(chan struct{}, 1),
		docs:    map[string]*Desired{},
		reached: map[string]Reached{},
		applyCh: make(chan struct{}, 1),
	}
	// The birth sequence starts from the clock so that it keeps growing
	// across agent restarts without writing to flash.
	s.bdseq.Store(uint64(time.Now().UnixMilli()))
	s.loadVersions()
	return s, nil
}

// SetLogf replaces the logger, also while the session runs.
func (s *Session) SetLogf(f func(string, ...any)) { s.logp.Store(&f) }

func (s *Session) logf(format string, a ...any) {
	if p := s.logp.Load(); p != nil {
		(*p)(format, a...)
		return
	}
	log.Printf(format, a...)
}

// ID returns the device id.
func (s *Session) ID() string { return s.cfg.DeviceID }

// Online reports whether the session is connected and born.
func (s *Session) Online() bool { return s.online.Load() }

// Connects returns how many times the session connected and announced birth.
func (s *Session) Connects() uint64 { return s.connects.Load() }

// Queued returns the events waiting for a connection and the number dropped.
func (s *Session) Queued() (int, uint64) { return s.q.stats() }

// Run keeps the session until ctx is done, then publishes death
// explicitly and disconnects. It returns ctx's error.
func (s *Session) Run(ctx context.Context) error {
	if s.Logf != nil && s.logp.Load() == nil {
		s.SetLogf(s.Logf)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, f := range []func(context.Context){s.eventLoop, s.statusLoop, s.pumpLoop, s.applyLoop} {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	k, idx := 0, 0
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		broker := s.cfg.Brokers[idx%len(s.cfg.Brokers)]
		l, err := s.connect(ctx, broker)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.logf("fleet %s: connect %s: %v", s.cfg.DeviceID, broker, err)
			idx++ // fail over to the next broker
			if !sleepCtx(ctx, s.cfg.Backoff.Delay(k)) {
				return ctx.Err()
			}
			k++
			continue
		}
		up := time.Now()
		select {
		case <-ctx.Done():
			s.setLink(nil)
			s.goodbye(l)
			return ctx.Err()
		case <-l.down:
		}
		s.setLink(nil)
		s.logf("fleet %s: connection to %s lost: %v", s.cfg.DeviceID, broker, l.why())
		// A link that held for a while resets the backoff; one that drops
		// at once (overloaded broker) keeps growing it.
		if time.Since(up) > 30*time.Second {
			k = 0
		}
		if !sleepCtx(ctx, s.cfg.Backoff.Delay(k)) {
			return ctx.Err()
		}
		k++
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

const opTimeout = 10 * time.Second

func wait(ctx context.Context, t mqtt.Token) error {
	tm := time.NewTimer(opTimeout)
	defer tm.Stop()
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return errors.New("timed out")
	}
}

// connect dials broker with a new birth sequence, subscribes, and
// announces birth and full status.
func (s *Session) connect(ctx context.Context, broker string) (*link, error) {
	id := s.cfg.DeviceID
	l := &link{bdseq: s.bdseq.Add(1), down: make(chan struct{})}
	will, err := encMode.Marshal(State{Online: false, BdSeq: l.bdseq})
	if err != nil {
		return nil, err
	}
	o := mqtt.NewClientOptions().AddBroker(broker).SetClientID("otok-"+id).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetKeepAlive(s.cfg.KeepAlive).SetPingTimeout(10*time.Second).
		SetConnectTimeout(opTimeout).SetWriteTimeout(opTimeout).SetOrderMatters(false).
		SetBinaryWill(DevTopic(id, "state"), will, 1, true).SetCustomOpenConnectionFn(dialBroker).SetStore(noStore{}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) { l.lost(err) })
	if s.cfg.Username != "" {
		o.SetUsername(s.cfg.Username).SetPassword(s.cfg.Password)
	}
	if s.cfg.TLS != nil {
		o.SetTLSConfig(s.cfg.TLS)
	}
	l.c = mqtt.NewClient(o)
	if s.cfg.Gate != nil {
		select {
		case s.cfg.Gate <- struct{}{}:
			defer func() { <-s.cfg.Gate }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err := wait(ctx, l.c.Connect()); err != nil {
		l.c.Disconnect(0)
		return nil, err
	}
	// Subscriptions are QoS 0 on purpose. With a clean session a QoS 1
	// subscription guarantees nothing more (whatever is in flight when
	// the link drops is discarded with the session either way; commands
	// are retried by the controller, desired documents are retained), and
	// on NATS every QoS 1 subscription is a replicated JetStream consumer
	// created and deleted on each connect — four per device, which made
	// failover after a node loss take a minute in the cluster test.
	// Everything the device publishes is QoS 1.
	subs := map[string]byte{
		DevTopic(id, "cmd"):     0,
		DevTopic(id, "desired"): 0,
		DevTopic(id, "state"):   0,
	}
	for _, g := range s.cfg.Groups {
		subs[GroupTopic(g)] = 0
	}
	fail := func(what string, err error) (*link, error) {
		select { // paho reports why the link died on its own goroutine
		case <-l.down:
		case <-time.After(100 * time.Millisecond):
		}
		l.c.Disconnect(0)
		if why := l.why(); why != nil {
			return nil, fmt.Errorf("%s: %w (%v)", what, err, why)
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	st := l.c.SubscribeMultiple(subs, func(_ mqtt.Client, m mqtt.Message) { s.route(l, m) })
	if err := wait(ctx, st); err != nil {
		return fail("subscribe", err)
	}
	// A broker may refuse a subscription in the SUBACK (0x80) and still
	// keep the connection: NATS does while JetStream elects a leader.
	// Without every subscription the device would miss commands; retry.
	if t, ok := st.(*mqtt.SubscribeToken); ok {
		for topic, q := range t.Result() {
			if q > 2 {
				return fail("subscribe", fmt.Errorf("%s refused by the broker (SUBACK 0x%02x)", topic, q))
			}
		}
	}
	if err := s.birth(ctx, l); err != nil {
		return fail("birth", err)
	}
	s.connects.Add(1)
	s.setLink(l)
	if err := s.publishStatus(ctx, l); err != nil {
		s.setLink(nil)
		return fail("status", err)
	}
	s.logf("fleet %s: online via %s (bdseq %d)", id, broker, l.bdseq)
	return l, nil
}

func (s *Session) birth(ctx context.Context, l *link) error {
	b, err := encMode.Marshal(State{Online: true, BdSeq: l.bdseq, Time: nowMs()})
	if err != nil {
		return err
	}
	if err := wait(ctx, l.c.Publish(DevTopic(s.cfg.DeviceID, "state"), 1, true, b)); err != nil {
		return err
	}
	l.born.Store(true)
	return nil
}

// goodbye publishes death with the link's bdseq and disconnects cleanly
// (a clean DISCONNECT discards the Will, so death is sent explicitly).
func (s *Session) goodbye(l *link) {
	if b, err := encMode.Marshal(State{Online: false, BdSeq: l.bdseq}); err == nil {
		l.c.Publish(DevTopic(s.cfg.DeviceID, "state"), 1, true, b).WaitTimeout(2 * time.Second)
	}
	l.c.Disconnect(250)
}

func (s *Session) setLink(l *link) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = l
	s.online.Store(l != nil)
	if l != nil {
		close(s.upWait)
	} else {
		select {
		case <-s.upWait:
			s.upWait = make(chan struct{})
		default:
		}
	}
}

// waitLink returns the current link, waiting for one.
func (s *Session) waitLink(ctx context.Context) (*link, error) {
	for {
		s.mu.Lock()
		l, w := s.cur, s.upWait
		s.mu.Unlock()
		if l != nil {
			return l, nil
		}
		select {
		case <-w:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *Session) link() *link {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

func (s *Session) publish(ctx context.Context, l *link, leaf string, retained bool, v any) error {
	b, err := encMode.Marshal(v)
	if err != nil {
		return err
	}
	return wait(ctx, l.c.Publish(DevTopic(s.cfg.DeviceID, leaf), 1, retained, b))
}

// route dispatches an incoming message (paho calls it on its own goroutine
// per message, as order does not matter).
func (s *Session) route(l *link, m mqtt.Message) {
	defer func() {
		// Nothing a message carries may take the agent down: a decoder
		// bug becomes an event, and the last good state stays.
		if p := recover(); p != nil {
			s.logf("fleet %s: message on %s: panic: %v", s.cfg.DeviceID, m.Topic(), p)
			s.emit(Event{Kind: "error", Msg: truncate(fmt.Sprintf("message on %s: internal error: %v", m.Topic(), p), 512)})
		}
	}()
	id := s.cfg.DeviceID
	switch t := m.Topic(); t {
	case DevTopic(id, "cmd"):
		s.handleCommand(l, m.Payload())
	case DevTopic(id, "state"):
		// Our own state topic: a Will of an older session that the broker
		// published after our birth (session takeover race) would leave the
		// retained state offline. Sparkplug's bdseq tells it apart; re-born.
		st, err := DecodeState(m.Payload())
		if err == nil && !st.Online && st.BdSeq != l.bdseq && l.born.Load() {
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			defer cancel()
			if err := s.birth(ctx, l); err != nil {
				s.logf("fleet %s: re-birth: %v", id, err)
			}
		}
	default:
		s.handleDesired(t, m.Payload())
	}
}

// eventLoop numbers agent events and queues them.
func (s *Session) eventLoop(ctx context.Context) {
	ch := s.agent.Events(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-ch:
			if !ok {
				return
			}
			s.emit(e)
			s.markDirty()
		}
	}
}

// emit numbers an event and queues it for publishing.
func (s *Session) emit(e Event) {
	e.Seq = s.seq.Add(1)
	if e.Time == 0 {
		e.Time = nowMs()
	}
	e.BdSeq = 0
	s.q.push(e)
}

// pumpLoop publishes queued events in order whenever a link is up.
func (s *Session) pumpLoop(ctx context.Context) {
	for {
		e, ok := s.q.peek()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-s.q.wake:
				continue
			}
		}
		l, err := s.waitLink(ctx)
		if err != nil {
			return
		}
		// While we waited for a link the queue may have dropped e (full,
		// oldest first): publish what is at the head now instead.
		if cur, ok := s.q.peek(); !ok || cur.Seq != e.Seq {
			continue
		}
		e.BdSeq = l.bdseq
		if err := s.publish(ctx, l, "event", false, e); err != nil {
			select { // the link is going down; wait for the next one
			case <-l.down:
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		s.q.pop(e.Seq)
	}
}

func (s *Session) markDirty() {
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

// statusLoop publishes the status after changes and on every heartbeat.
// A burst of changes (an apply emits several events) is coalesced: the
// status goes out once the changes pause for statusQuiet, and at the
// latest Debounce after the first of them.
func (s *Session) statusLoop(ctx context.Context) {
	hb := time.NewTicker(s.cfg.Heartbeat)
	defer hb.Stop()
	quiet := min(statusQuiet, s.cfg.Debounce)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hb.C:
		case <-s.dirty:
			limit := time.NewTimer(s.cfg.Debounce)
		gather:
			for {
				t := time.NewTimer(quiet)
				select {
				case <-ctx.Done():
					t.Stop()
					limit.Stop()
					return
				case <-s.dirty:
					t.Stop()
					continue
				case <-t.C:
				case <-limit.C:
					t.Stop()
				}
				break gather
			}
			limit.Stop()
		}
		if l := s.link(); l != nil {
			if err := s.publishStatus(ctx, l); err != nil && ctx.Err() == nil {
				s.logf("fleet %s: status: %v", s.cfg.DeviceID, err)
			}
		}
	}
}

// statusQuiet is the pause that ends a burst of changes.
const statusQuiet = 5 * time.Millisecond

// StatusDoc returns the full status document as it would be published now.
func (s *Session) StatusDoc(ctx context.Context) (Status, error) {
	st, err := s.agent.Status(ctx)
	if err != nil {
		return st, err
	}
	st.Device = s.cfg.DeviceID
	st.Time = nowMs()
	if l := s.link(); l != nil {
		st.BdSeq = l.bdseq
	}
	st.Groups = s.cfg.Groups
	st.Heartbeat = uint32(s.cfg.Heartbeat / time.Second)
	_, st.Dropped = s.q.stats()
	s.dmu.Lock()
	if len(s.reached) > 0 {
		st.Reached = make(map[string]Reached, len(s.reached))
		for k, v := range s.reached {
			st.Reached[k] = v
		}
	}
	s.dmu.Unlock()
	return st, nil
}

func (s *Session) publishStatus(ctx context.Context, l *link) error {
	st, err := s.StatusDoc(ctx)
	if err != nil {
		return err
	}
	st.BdSeq = l.bdseq
	return s.publish(ctx, l, "status", true, st)
}

func nowMs() uint64 { return uint64(time.Now().UnixMilli()) }
