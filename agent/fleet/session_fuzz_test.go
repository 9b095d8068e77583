package fleet

import (
	"crypto/ed25519"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/otok/otok/cose"
)

// stubClient is an MQTT client that records what the session publishes,
// so that message handling can be driven without a broker.
type stubClient struct {
	mqtt.Client // unused methods panic
	mu          sync.Mutex
	pubs        map[string][][]byte
}

type doneToken struct{}

func (doneToken) Wait() bool                     { return true }
func (doneToken) WaitTimeout(time.Duration) bool { return true }
func (doneToken) Done() <-chan struct{}          { c := make(chan struct{}); close(c); return c }
func (doneToken) Error() error                   { return nil }

func (c *stubClient) Publish(topic string, qos byte, retained bool, payload any) mqtt.Token {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pubs == nil {
		c.pubs = map[string][][]byte{}
	}
	c.pubs[topic] = append(c.pubs[topic], payload.([]byte))
	return doneToken{}
}

type stubMsg struct {
	mqtt.Message
	topic   string
	payload []byte
}

func (m stubMsg) Topic() string   { return m.topic }
func (m stubMsg) Payload() []byte { return m.payload }

func newStubSession(t testing.TB, keys []ed25519.PublicKey) (*Session, *link, *stubClient) {
	s, err := NewSession(Config{Brokers: []string{"tcp://127.0.0.1:1"}, DeviceID: "dev1", Groups: []string{"lab"}, Keys: keys}, NewFakeAgent("m", "a"))
	if err != nil {
		t.Fatal(err)
	}
	s.SetLogf(func(f string, a ...any) {
		if strings.Contains(f, "panic") {
			t.Fatalf(f, a...)
		}
	})
	c := &stubClient{}
	l := &link{c: c, bdseq: 1, down: make(chan struct{})}
	l.born.Store(true)
	return s, l, c
}

// Whatever arrives on the device's topics, handling it never panics, and a
// command whose id can be read is always answered.
func FuzzSessionInput(f *testing.F) {
	seeds(f)
	keys := []ed25519.PublicKey{testKey.Public().(ed25519.PublicKey)}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, l, c := newStubSession(t, keys)
		for _, topic := range []string{DevTopic("dev1", "cmd"), DevTopic("dev1", "desired"), GroupTopic("lab"), DevTopic("dev1", "state")} {
			s.route(l, stubMsg{topic: topic, payload: b})
		}
		s.applyOnce(t.Context())
		c.mu.Lock()
		replies := c.pubs[DevTopic("dev1", "reply")]
		c.mu.Unlock()
		for _, r := range replies {
			if _, err := DecodeReply(r); err != nil {
				t.Fatalf("device sent an undecodable reply: %v", err)
			}
		}
		if id := peekID(b); id != "" && len(b) <= MaxCommandSize && len(replies) == 0 {
			t.Fatalf("command with readable id %q got no reply", id)
		}
	})
}

// A signed command through the stub: one final reply, replay answered
// with the first result.
func TestSessionStubCommand(t *testing.T) {
	keys := []ed25519.PublicKey{testKey.Public().(ed25519.PublicKey)}
	s, l, c := newStubSession(t, keys)
	cmd := NewCommand("dev1", "ps", Args{}, time.Minute)
	b, _ := Marshal(cmd)
	sb, _ := cose.Sign(CtypeCommand, b, testKey)
	s.route(l, stubMsg{topic: DevTopic("dev1", "cmd"), payload: sb})
	s.route(l, stubMsg{topic: DevTopic("dev1", "cmd"), payload: sb})
	replies := c.pubs[DevTopic("dev1", "reply")]
	if len(replies) != 2 {
		t.Fatalf("%d replies", len(replies))
	}
	r1, _ := DecodeReply(replies[0])
	r2, _ := DecodeReply(replies[1])
	if !r1.Final || r1.Code != "" || r2.Code != CodeReplay {
		t.Fatalf("%+v %+v", r1, r2)
	}
}
