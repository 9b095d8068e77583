package netcfg

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Real dnsmasq replies decode to what the server was told to send.
func TestParseDHCPDnsmasq(t *testing.T) {
	for _, tc := range []struct {
		file string
		typ  byte
	}{{"dhcp-offer-dnsmasq.bin", dhcpOffer}, {"dhcp-ack-dnsmasq.bin", dhcpAck}} {
		m, err := parseDHCP(readTestdata(t, tc.file))
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if m.Op != bootReply || m.msgType() != tc.typ || m.Xid != 0x1234abcd || m.CHAddr.String() != "02:b2:f7:7a:00:24" {
			t.Errorf("%s: op %d type %d xid %#x chaddr %s", tc.file, m.Op, m.msgType(), m.Xid, m.CHAddr)
		}
		l, err := leaseFrom(m, netip.Addr{})
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		want := "203.0.113.121/24 router 203.0.113.1 server 203.0.113.1 dns [203.0.113.53] domain example.net 12h0m0s"
		got := l.Addr.String() + " router " + l.Router.String() + " server " + l.Server.String() + " dns " +
			fmtAddrs(l.DNS) + " domain " + l.Domain + " " + l.Duration.String()
		if got != want {
			t.Errorf("%s: lease %s, want %s", tc.file, got, want)
		}
		if l.T1 != 6*time.Hour || l.T2 != 10*time.Hour+30*time.Minute {
			t.Errorf("%s: T1 %v T2 %v", tc.file, l.T1, l.T2)
		}
	}
}

func fmtAddrs(a []netip.Addr) string {
	s := "["
	for i, x := range a {
		if i > 0 {
			s += " "
		}
		s += x.String()
	}
	return s + "]"
}

func TestDHCPRoundTrip(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:00:00:00:01")
	m := &dhcpMsg{Op: bootRequest, Xid: 42, Flags: 0x8000, CHAddr: mac, CIAddr: netip.MustParseAddr("10.0.0.5")}
	m.setOpt(optMsgType, []byte{dhcpRequest})
	m.setOpt(optHostname, bytes.Repeat([]byte("h"), 300)) // split in two (RFC 3396)
	m.setOpt(optParams, []byte{1, 3, 6})
	b, err := m.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < dhcpMinLen {
		t.Errorf("%d bytes, want at least %d", len(b), dhcpMinLen)
	}
	r, err := parseDHCP(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Xid != 42 || r.Flags != 0x8000 || r.CIAddr != m.CIAddr || r.msgType() != dhcpRequest ||
		len(r.opt(optHostname)) != 300 || !bytes.Equal(r.opt(optParams), []byte{1, 3, 6}) || r.CHAddr.String() != mac.String() {
		t.Errorf("round trip: %+v", r)
	}
	// Golden start of a DISCOVER: op, htype, hlen, hops, xid, secs, flags.
	if !bytes.Equal(b[:12], []byte{1, 1, 6, 0, 0, 0, 0, 42, 0, 0, 0x80, 0}) || !bytes.Equal(b[236:240], dhcpMagic[:]) {
		t.Errorf("header % x", b[:12])
	}
}

func TestParseDHCPRejects(t *testing.T) {
	good := readTestdata(t, "dhcp-ack-dnsmasq.bin")
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for name, b := range map[string][]byte{
		"short":     good[:200],
		"no cookie": mod(func(b []byte) []byte { b[236] = 0; return b }),
		"htype":     mod(func(b []byte) []byte { b[1] = 6; return b }),
		"hlen":      mod(func(b []byte) []byte { b[2] = 16; return b }),
		"truncated": mod(func(b []byte) []byte { return append(b[:240], 51, 4, 0) }),
		"huge":      make([]byte, 4000),
	} {
		if _, err := parseDHCP(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestLeaseFromDefaults(t *testing.T) {
	m := &dhcpMsg{Op: bootReply, YIAddr: netip.MustParseAddr("10.1.2.3")}
	m.setOpt(optMsgType, []byte{dhcpAck})
	if _, err := leaseFrom(m, netip.Addr{}); err == nil {
		t.Error("ACK without lease time accepted")
	}
	m.setOpt(optLeaseTime, []byte{0, 0, 0x0e, 0x10}) // 1 h
	m.setOpt(optT1, []byte{0, 0, 0x0e, 0x10})        // = lease: ignored
	l, err := leaseFrom(m, netip.MustParseAddr("10.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	if l.Addr.String() != "10.1.2.3/8" || l.Server.String() != "10.0.0.1" || l.T1 != 30*time.Minute || l.T2 != 52*time.Minute+30*time.Second {
		t.Errorf("lease %+v", l)
	}
	m.YIAddr = netip.IPv4Unspecified()
	if _, err := leaseFrom(m, netip.Addr{}); err == nil {
		t.Error("ACK for 0.0.0.0 accepted")
	}
}

func TestUDP4(t *testing.T) {
	src, dst := netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("255.255.255.255")
	p := buildUDP4(src, dst, 68, 67, []byte("hello"))
	if csum(0, p[:20]) != 0xffff {
		t.Error("bad IPv4 header checksum")
	}
	if got, ok := parseUDP4(p, 67); !ok || string(got) != "hello" {
		t.Errorf("parseUDP4 = %q, %v", got, ok)
	}
	if _, ok := parseUDP4(p, 68); ok {
		t.Error("wrong port accepted")
	}
	if _, ok := parseUDP4(p[:25], 67); ok {
		t.Error("truncated packet accepted")
	}
}

func TestBackoff(t *testing.T) {
	for try, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 16 * time.Second} {
		if d := backoff(try); d < want || d > want+500*time.Millisecond {
			t.Errorf("backoff(%d) = %v, want %v..+0.5s", try, d, want)
		}
	}
}

// FuzzParseDHCP: any input either fails to parse or yields a message that
// survives re-encoding and whose lease extraction does not panic.
func FuzzParseDHCP(f *testing.F) {
	f.Add(readTestdata(f, "dhcp-offer-dnsmasq.bin"))
	f.Add(readTestdata(f, "dhcp-ack-dnsmasq.bin"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseDHCP(b)
		if err != nil {
			return
		}
		leaseFrom(m, netip.Addr{})
		m.msgType()
		m.optAddrs(optDNS)
		out, err := m.marshal()
		if err != nil {
			return // too long to re-encode in one frame
		}
		m2, err := parseDHCP(out)
		if err != nil {
			t.Fatalf("re-encoded message does not parse: %v", err)
		}
		if m2.Xid != m.Xid || m2.msgType() != m.msgType() || len(m2.Opts) > len(m.Opts) {
			t.Fatalf("round trip changed the message")
		}
	})
}

// FuzzParseUDP4: the packet-socket demultiplexer never panics or returns
// bytes outside the packet.
func FuzzParseUDP4(f *testing.F) {
	f.Add(buildUDP4(netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("255.255.255.255"), 67, 68, readTestdata(f, "dhcp-offer-dnsmasq.bin")))
	f.Add([]byte{0x45})
	f.Fuzz(func(t *testing.T, p []byte) {
		if got, ok := parseUDP4(p, 68); ok && len(got) > len(p) {
			t.Fatal("payload larger than packet")
		}
	})
}
