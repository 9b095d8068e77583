package fleet

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// A broker announcing a huge packet gets the connection dropped, before
// paho allocates anything of that size.
func TestOversizedPacketDropsConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				buf := make([]byte, 4096)
				c.Read(buf)                                   // CONNECT
				c.Write([]byte{0x20, 2, 0, 0})                // CONNACK accepted
				c.Read(buf)                                   // SUBSCRIBE
				c.Write([]byte{0x30, 0xff, 0xff, 0xff, 0x7f}) // PUBLISH of 256 MiB
				time.Sleep(2 * time.Second)
			}(c)
		}
	}()
	s, err := NewSession(Config{Brokers: []string{"tcp://" + ln.Addr().String()}, DeviceID: "d1", Backoff: Backoff{Base: time.Hour, Max: time.Hour}}, NewFakeAgent("m", "a"))
	if err != nil {
		t.Fatal(err)
	}
	logs := make(chan string, 10)
	s.SetLogf(func(f string, a ...any) {
		select {
		case logs <- fmt.Sprintf(f, a...):
		default:
		}
	})
	ctx := t.Context()
	go s.Run(ctx)
	select {
	case l := <-logs:
		if !strings.Contains(l, "limit") {
			t.Fatalf("log %q", l)
		}
		t.Log(l)
	case <-time.After(5 * time.Second):
		t.Fatal("session did not give up the connection")
	}
	if s.Online() {
		t.Fatal("online after an oversized packet")
	}
}

func TestPacketLengthTracking(t *testing.T) {
	// Two small packets then a big one, fed in odd chunk sizes.
	var stream bytes.Buffer
	stream.Write([]byte{0x40, 2, 0, 1})          // PUBACK
	stream.Write([]byte{0xd0, 0})                // PINGRESP
	stream.Write([]byte{0x30, 0x80, 0x80, 0x40}) // PUBLISH, 1 MiB
	c := &bufConn{r: bufio.NewReaderSize(&chunkReader{b: stream.Bytes(), n: 3}, 16)}
	buf := make([]byte, 64)
	var err error
	for err == nil {
		_, err = c.Read(buf)
	}
	var tl errPacketTooLarge
	if !errors.As(err, &tl) || tl.n != 1<<20 {
		t.Fatalf("err %v", err)
	}
	// Exactly at the limit is fine.
	ok := &bufConn{r: bufio.NewReaderSize(&chunkReader{b: []byte{0x30, byte(MaxPacket&127 | 128), byte(MaxPacket>>7&127 | 128), byte(MaxPacket >> 14)}, n: 1}, 16)}
	for err = nil; err == nil; _, err = ok.Read(buf) {
	}
	if err != io.EOF {
		t.Fatalf("limit: %v", err)
	}
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	k := min(c.n, len(p), len(c.b))
	copy(p, c.b[:k])
	c.b = c.b[k:]
	return k, nil
}
