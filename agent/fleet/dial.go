package fleet

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// noStore is paho's message store for sessions that never resume: every
// connection is a new client with a clean session, so in-flight QoS 1
// messages are never re-sent from a store (the session's own event queue
// re-sends what was not acknowledged). paho's MemoryStore would format a
// key and take a lock for every message in and out.
type noStore struct{}

func (noStore) Open()                             {}
func (noStore) Put(string, packets.ControlPacket) {}
func (noStore) Get(string) packets.ControlPacket  { return nil }
func (noStore) All() []string                     { return nil }
func (noStore) Del(string)                        {}
func (noStore) Close()                            {}
func (noStore) Reset()                            {}

// paho reads every packet from the socket unbuffered: one read(2) for the
// type byte, one per length byte, one for the rest — three or more system
// calls for each PUBACK. dialBroker opens the connection itself (TCP, or
// TLS for ssl://, tls://, mqtts://) and puts a small buffer in front of
// reads, so one system call takes whatever has arrived. On a MIPS router
// that is CPU; in `fleet sim` it was a third of the cost of a deploy.
func dialBroker(u *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	timeout := o.ConnectTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	host := u.Host
	var secure bool
	switch u.Scheme {
	case "tcp", "mqtt":
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "1883")
		}
	case "ssl", "tls", "mqtts", "tcps":
		secure = true
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "8883")
		}
	default:
		return nil, fmt.Errorf("broker %s: scheme %q not supported (tcp://, ssl://)", u.Redacted(), u.Scheme)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	if secure {
		cfg := o.TLSConfig
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName = u.Hostname()
		}
		t := tls.Client(c, cfg)
		if err := t.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		c = t
	}
	return &bufConn{Conn: c, r: bufio.NewReaderSize(c, 2048)}, nil
}

// MaxPacket bounds every MQTT packet read from a broker. paho allocates
// whatever length a packet header announces (MQTT allows 256 MiB), so a
// hostile or broken broker could exhaust a 64 MB router with one header;
// the connection is dropped instead. The largest payload otok expects is
// a status (MaxStatusSize) at a controller.
const MaxPacket = MaxStatusSize + 4096

// bufConn buffers reads and checks packet lengths as they stream by.
type bufConn struct {
	net.Conn
	r *bufio.Reader
	// MQTT fixed-header tracking over the bytes handed to paho.
	state     int // 0 type byte, 1 length bytes, 2 body
	lenBytes  int
	mult, rem int
}

// errPacketTooLarge ends the connection on an oversized packet.
type errPacketTooLarge struct{ n int }

func (e errPacketTooLarge) Error() string {
	return fmt.Sprintf("broker announced a packet of %d+ bytes, limit %d", e.n, MaxPacket)
}

func (b *bufConn) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	for i := 0; i < n; {
		switch b.state {
		case 0:
			b.state, b.lenBytes, b.mult, b.rem = 1, 0, 1, 0
			i++
		case 1:
			c := int(p[i])
			i++
			b.rem += (c & 127) * b.mult
			b.mult *= 128
			b.lenBytes++
			if b.rem > MaxPacket || (c&128 != 0 && b.lenBytes == 4) {
				return 0, errPacketTooLarge{b.rem}
			}
			if c&128 == 0 {
				b.state = 2
				if b.rem == 0 {
					b.state = 0
				}
			}
		case 2:
			k := min(b.rem, n-i)
			i += k
			b.rem -= k
			if b.rem == 0 {
				b.state = 0
			}
		}
	}
	return n, err
}
