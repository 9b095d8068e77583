package fleet

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/otok/otok/cose"
)

// Controller is the operator's side (`otok fleet …`): it watches states and
// statuses, sends signed commands and waits for replies, and publishes
// signed desired documents. It speaks the same protocol package as devices.
type Controller struct {
	c   mqtt.Client
	key ed25519.PrivateKey // nil: unsigned (devices without controller keys)

	mu      sync.Mutex
	devs    map[string]*DeviceView
	waiters map[string]*waiter
	changed chan struct{} // closed and replaced on every update
	last    time.Time     // last state/status message
	events  chan DevEvent
	desired map[string]uint64 // scope → retained desired version (unverified, for display)
}

// DeviceView is what the controller knows about one device.
type DeviceView struct {
	ID       string
	State    *State
	Status   *Status
	StatusAt time.Time // when the last status arrived
	Bad      string    // last undecodable payload, if any
}

// Online reports whether the device is online. An offline state whose
// bdseq is older than the status's is the late Will of a replaced session
// (Sparkplug's rule) and does not count.
//
// A device whose last status is older than three heartbeats (plus the
// clock skew allowance) is not online either, whatever its retained state
// says: that happens when the broker node holding its connection dies with
// it (no node is left to publish the Will), or when a broker restores
// retained "online" states from persistence after a crash.
func (v *DeviceView) Online() bool {
	if v.State == nil || v.Stale(time.Now()) {
		return false
	}
	if v.State.Online {
		return true
	}
	return v.Status != nil && v.Status.BdSeq > v.State.BdSeq
}

// Stale reports whether the device has missed three heartbeats by now
// (judged by the device's own status time).
func (v *DeviceView) Stale(now time.Time) bool {
	st := v.Status
	if st == nil || st.Heartbeat == 0 {
		return false
	}
	limit := 3*time.Duration(st.Heartbeat)*time.Second + Skew
	return now.Sub(time.UnixMilli(int64(st.Time))) > limit
}

// DevEvent is an event with the device it came from.
type DevEvent struct {
	Device string
	Event
}

type waiter struct {
	mu       sync.Mutex
	max      uint8 // replies may arrive out of order; progress only grows
	progress func(uint8)
	final    chan *Reply
}

// ControllerConfig says how to reach the brokers.
type ControllerConfig struct {
	Brokers  []string
	ClientID string // default otok-ctl-<random>
	Key      ed25519.PrivateKey
	TLS      *tls.Config
	Username string
	Password string
	// Events subscribes to device events (delivered by Events()).
	Events bool
}

// DialController connects and subscribes to states, statuses and replies.
func DialController(ctx context.Context, cfg ControllerConfig) (*Controller, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("fleet controller: no broker")
	}
	k := &Controller{key: cfg.Key, devs: map[string]*DeviceView{}, waiters: map[string]*waiter{}, changed: make(chan struct{}), desired: map[string]uint64{}}
	if cfg.Events {
		k.events = make(chan DevEvent, 1024)
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "otok-ctl-" + randomID()
	}
	subs := map[string]byte{AllDev("state"): 1, AllDev("status"): 1, AllDev("reply"): 1, AllDev("desired"): 1, Root + "group/+/desired": 1}
	if cfg.Events {
		subs[AllDev("event")] = 1
	}
	o := mqtt.NewClientOptions().SetClientID(cfg.ClientID).SetCleanSession(true).
		SetAutoReconnect(true).SetMaxReconnectInterval(5 * time.Second).
		// In order: events and progress arrive as sent, and route never
		// blocks (channel sends are non-blocking, callbacks must be quick).
		SetOrderMatters(true).
		SetConnectTimeout(opTimeout).SetWriteTimeout(opTimeout).SetKeepAlive(30 * time.Second).
		SetMessageChannelDepth(4096).SetCustomOpenConnectionFn(dialBroker)
	for _, b := range cfg.Brokers {
		o.AddBroker(b)
	}
	if cfg.TLS != nil {
		o.SetTLSConfig(cfg.TLS)
	}
	if cfg.Username != "" {
		o.SetUsername(cfg.Username).SetPassword(cfg.Password)
	}
	subscribed := make(chan error, 1)
	o.SetOnConnectHandler(func(c mqtt.Client) {
		// (Re)subscribe after every connect; a broker may refuse some
		// topics for a while (NATS while JetStream elects): retry those.
		go func() {
			todo := subs
			var err error
			for try := 0; try < 30 && len(todo) > 0; try++ {
				if try > 0 {
					time.Sleep(time.Second)
				}
				tok := c.SubscribeMultiple(todo, k.route)
				if !tok.WaitTimeout(opTimeout) || tok.Error() != nil {
					err = fmt.Errorf("subscribe: %v", tok.Error())
					continue
				}
				left := map[string]byte{}
				for t, q := range tok.(*mqtt.SubscribeToken).Result() {
					if q > 2 {
						left[t] = 1
					}
				}
				todo = left
				if len(todo) > 0 {
					err = fmt.Errorf("subscriptions refused by the broker: %v", sortedTopics(todo))
				} else {
					err = nil
				}
			}
			select {
			case subscribed <- err:
			default:
			}
		}()
	})
	k.c = mqtt.NewClient(o)
	if err := wait(ctx, k.c.Connect()); err != nil {
		return nil, fmt.Errorf("fleet controller: connect %v: %w", cfg.Brokers, err)
	}
	select {
	case err := <-subscribed:
		if err != nil {
			k.c.Disconnect(0)
			return nil, fmt.Errorf("fleet controller: %v: %w", cfg.Brokers, err)
		}
	case <-ctx.Done():
		k.c.Disconnect(0)
		return nil, fmt.Errorf("fleet controller: %v: subscribe: %w", cfg.Brokers, ctx.Err())
	}
	return k, nil
}

// Close disconnects.
func (k *Controller) Close() { k.c.Disconnect(250) }

// Events returns device events (ControllerConfig.Events).
func (k *Controller) Events() <-chan DevEvent { return k.events }

func (k *Controller) route(_ mqtt.Client, m mqtt.Message) {
	if t := m.Topic(); strings.HasSuffix(t, "/desired") {
		k.noteDesired(strings.TrimSuffix(strings.TrimPrefix(t, Root), "/desired"), m.Payload())
		return
	}
	id, leaf, ok := splitDevTopic(m.Topic())
	if !ok || !ValidID(id) {
		return
	}
	b := m.Payload()
	switch leaf {
	case "reply":
		r, err := DecodeReply(b)
		if err != nil {
			return
		}
		k.mu.Lock()
		w := k.waiters[r.ID]
		k.mu.Unlock()
		if w == nil {
			return
		}
		if r.Final {
			select {
			case w.final <- r:
			default:
			}
		} else if w.progress != nil {
			w.mu.Lock()
			if r.Progress > w.max {
				w.max = r.Progress
				w.progress(r.Progress)
			}
			w.mu.Unlock()
		}
		return
	case "event":
		if e, err := DecodeEvent(b); err == nil && k.events != nil {
			select {
			case k.events <- DevEvent{Device: id, Event: *e}:
			default:
			}
		}
		return
	}
	if len(b) == 0 { // a cleared retained message
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	v := k.devs[id]
	if v == nil {
		v = &DeviceView{ID: id}
		k.devs[id] = v
	}
	switch leaf {
	case "state":
		st, err := DecodeState(b)
		if err != nil {
			v.Bad = err.Error()
			return
		}
		v.State = st
	case "status":
		st, err := DecodeStatus(b)
		if err != nil {
			v.Bad = err.Error()
			return
		}
		v.Status, v.StatusAt = st, time.Now()
	default:
		return
	}
	k.last = time.Now()
	close(k.changed)
	k.changed = make(chan struct{})
}

func (k *Controller) noteDesired(scope string, b []byte) {
	var ver uint64
	if p, err := Open(b, CtypeDesired, nil); err == nil && len(b) > 0 {
		if d, err := DecodeDesired(p); err == nil && d.Scope == scope {
			ver = d.Version
		}
	}
	k.mu.Lock()
	if ver == 0 {
		delete(k.desired, scope)
	} else {
		k.desired[scope] = ver
	}
	k.mu.Unlock()
}

// DesiredVersion returns the version of the retained desired document of
// scope, as last seen (0: none or unreadable). It is not verified.
func (k *Controller) DesiredVersion(scope string) uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.desired[scope]
}

// Devices returns a snapshot of every device seen, sorted by id.
func (k *Controller) Devices() []DeviceView {
	k.mu.Lock()
	out := make([]DeviceView, 0, len(k.devs))
	for _, v := range k.devs {
		out = append(out, *v)
	}
	k.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Count returns how many devices were seen, how many have a status, and
// how many are online — cheaper than Devices for a large fleet.
func (k *Controller) Count() (devices, withStatus, online int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, v := range k.devs {
		if v.Status != nil {
			withStatus++
		}
		if v.Online() {
			online++
		}
	}
	return len(k.devs), withStatus, online
}

// Device returns one device's view.
func (k *Controller) Device(id string) (DeviceView, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v := k.devs[id]
	if v == nil {
		return DeviceView{}, false
	}
	return *v, true
}

// Changed returns a channel closed at the next state or status update.
func (k *Controller) Changed() <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.changed
}

// Settle waits until retained messages stop arriving: quiet for `quiet`,
// or max at most.
func (k *Controller) Settle(ctx context.Context, quiet, max time.Duration) {
	end := time.Now().Add(max)
	start := time.Now()
	for time.Now().Before(end) {
		k.mu.Lock()
		last := k.last
		k.mu.Unlock()
		if last.IsZero() {
			last = start
		}
		if time.Since(last) >= quiet {
			return
		}
		if !sleepCtx(ctx, quiet/4) {
			return
		}
	}
}

func randomID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// NewCommand builds a command for dev with a fresh request id.
func NewCommand(dev, op string, args Args, timeout time.Duration) *Command {
	now := time.Now()
	return &Command{ID: randomID(), To: dev, Issued: uint64(now.UnixMilli()), Deadline: uint64(now.Add(timeout).UnixMilli()), Op: op, Args: args}
}

// Encode returns the wire form of c: signed when the controller has a key.
func (k *Controller) Encode(c *Command) ([]byte, error) {
	b, err := encMode.Marshal(c)
	if err != nil {
		return nil, err
	}
	if k.key != nil {
		return cose.Sign(CtypeCommand, b, k.key)
	}
	return b, nil
}

// Send publishes raw bytes on dev's cmd topic and waits for the final
// reply to id (progress replies go to progress). Tests use it to send
// crafted payloads.
func (k *Controller) Send(ctx context.Context, dev, id string, payload []byte, progress func(uint8)) (*Reply, error) {
	w := &waiter{progress: progress, final: make(chan *Reply, 1)}
	if id != "" {
		k.mu.Lock()
		k.waiters[id] = w
		k.mu.Unlock()
		defer func() {
			k.mu.Lock()
			delete(k.waiters, id)
			k.mu.Unlock()
		}()
	}
	if err := wait(ctx, k.c.Publish(DevTopic(dev, "cmd"), 1, false, payload)); err != nil {
		return nil, fmt.Errorf("device %s: publish command: %w", dev, err)
	}
	if id == "" {
		return nil, nil
	}
	select {
	case r := <-w.final:
		return r, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("device %s: command %s: no reply: %w", dev, id, ctx.Err())
	}
}

// Do sends a command and waits for its final reply (until the command's
// deadline). A reply with an error code is returned as the reply, not as
// an error; err is for transport failures.
func (k *Controller) Do(ctx context.Context, c *Command, progress func(uint8)) (*Reply, error) {
	b, err := k.Encode(c)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithDeadline(ctx, time.UnixMilli(int64(c.Deadline)).Add(2*time.Second))
	defer cancel()
	return k.Send(ctx, c.To, c.ID, b, progress)
}

// PublishRaw publishes payload on topic (tests: crafted messages).
func (k *Controller) PublishRaw(ctx context.Context, topic string, retained bool, payload []byte) error {
	return wait(ctx, k.c.Publish(topic, 1, retained, payload))
}

// CurrentDesired reads the retained document of scope (nil if none) without
// verifying it (the controller only needs its version).
func (k *Controller) CurrentDesired(ctx context.Context, scope string) (*Desired, error) {
	ch := make(chan []byte, 1)
	topic := ScopeTopic(scope)
	tok := k.c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case ch <- m.Payload():
		default:
		}
	})
	if err := wait(ctx, tok); err != nil {
		return nil, err
	}
	defer k.c.Unsubscribe(topic)
	select {
	case b := <-ch:
		if len(b) == 0 {
			return nil, nil
		}
		p, err := Open(b, CtypeDesired, nil)
		if err != nil {
			return nil, err
		}
		return DecodeDesired(p)
	case <-time.After(500 * time.Millisecond): // retained messages come with the SUBACK
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Deploy publishes d (retained) on its scope's topic. Version 0 means one
// above the version currently retained there. It returns the version.
func (k *Controller) Deploy(ctx context.Context, d *Desired) (uint64, error) {
	if d.Version == 0 {
		// One above both the retained document (if it can be read: a
		// broken one is replaced) and anything a device reports.
		cur, _ := k.CurrentDesired(ctx, d.Scope)
		if cur != nil {
			d.Version = cur.Version
		}
		k.mu.Lock()
		for _, v := range k.devs {
			if v.Status != nil {
				r := v.Status.Reached[d.Scope]
				d.Version = max(d.Version, r.Version, r.Applying)
			}
		}
		k.mu.Unlock()
		d.Version++
	}
	if d.Issued == 0 {
		d.Issued = nowMs()
	}
	if err := d.check(); err != nil {
		return 0, err
	}
	b, err := encMode.Marshal(d)
	if err != nil {
		return 0, err
	}
	if k.key != nil {
		if b, err = cose.Sign(CtypeDesired, b, k.key); err != nil {
			return 0, err
		}
	}
	if len(b) > MaxDesiredSize {
		return 0, fmt.Errorf("desired %s: %d bytes, limit %d", d.Scope, len(b), MaxDesiredSize)
	}
	if err := wait(ctx, k.c.Publish(ScopeTopic(d.Scope), 1, true, b)); err != nil {
		return 0, fmt.Errorf("desired %s: publish: %w", d.Scope, err)
	}
	return d.Version, nil
}

// Rollout counts devices of a scope by how far they got to version.
type Rollout struct {
	Total, Reached, Failed, Pending, Offline int
	Failures                                 map[string]string // device → first error
}

// Progress computes the rollout of version in scope ("group/<g>" or
// "dev/<id>") from the statuses seen.
func (k *Controller) Progress(scope string, version uint64) Rollout {
	r := Rollout{Failures: map[string]string{}}
	k.mu.Lock()
	defer k.mu.Unlock()
	for id, v := range k.devs {
		if !inScope(v, id, scope) {
			continue
		}
		r.Total++
		var got Reached
		if v.Status != nil {
			got = v.Status.Reached[scope]
		}
		switch {
		case got.Version >= version && len(got.Errors) == 0:
			r.Reached++
		case got.Version >= version || (len(got.Errors) > 0 && got.Errors[0].Item == "doc" && got.Applying < version):
			r.Failed++
			if len(got.Errors) > 0 {
				r.Failures[id] = fmt.Sprintf("%s %s: %s", got.Errors[0].Item, got.Errors[0].Code, got.Errors[0].Msg)
			}
		case !v.Online():
			r.Offline++
		default:
			r.Pending++
		}
	}
	return r
}

func inScope(v *DeviceView, id, scope string) bool {
	if d, ok := strings.CutPrefix(scope, "dev/"); ok {
		return d == id
	}
	if v.Status == nil {
		return false
	}
	g, ok := strings.CutPrefix(scope, "group/")
	if !ok {
		return false
	}
	for _, x := range v.Status.Groups {
		if x == g {
			return true
		}
	}
	return false
}

func sortedTopics(m map[string]byte) []string {
	out := make([]string, 0, len(m))
	for t := range m {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
