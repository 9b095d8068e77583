package netcfg

import (
	"bytes"
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

func TestNlAttrs(t *testing.T) {
	var a nlAttrs
	a.str(unix.NFTA_TABLE_NAME, "otok")
	want := binary.NativeEndian.AppendUint16(nil, 9)
	want = binary.NativeEndian.AppendUint16(want, unix.NFTA_TABLE_NAME)
	want = append(want, 'o', 't', 'o', 'k', 0, 0, 0, 0) // NUL, padded to 4
	if !bytes.Equal(a, want) {
		t.Errorf("attrs % x, want % x", []byte(a), want)
	}
	var n nlAttrs
	n.u32(unix.NFTA_HOOK_PRIORITY, uint32(0xffffff9b)) // -101, big endian on the wire
	if !bytes.Equal(n[4:], []byte{0xff, 0xff, 0xff, 0x9b}) {
		t.Errorf("u32 % x", []byte(n))
	}
	var outer nlAttrs
	outer.nest(unix.NFTA_CHAIN_HOOK, n)
	if typ := binary.NativeEndian.Uint16(outer[2:]); typ != unix.NFTA_CHAIN_HOOK|unix.NLA_F_NESTED {
		t.Errorf("nested type %#x", typ)
	}
	if got, ok := attrString(append(append(nlAttrs{}, n...), a...), unix.NFTA_TABLE_NAME); !ok || got != "otok" {
		t.Errorf("attrString = %q, %v", got, ok)
	}
	for _, bad := range [][]byte{{1}, {3, 0, 1, 0}, {200, 0, 1, 0, 'x'}} {
		if _, ok := attrString(bad, 1); ok {
			t.Errorf("attrString(% x) found something", bad)
		}
	}
}

func TestNftBatchFraming(t *testing.T) {
	msgs := []nftMsg{nftNewTable("otok-web"), nftDelTable("otok-old")}
	b := nftBatch(unix.NFPROTO_IPV4, 10, msgs)
	var types []uint16
	var seqs []uint32
	for len(b) > 0 {
		l := binary.NativeEndian.Uint32(b)
		if l < unix.NLMSG_HDRLEN+4 || int(l) > len(b) || l%4 != 0 {
			t.Fatalf("bad message length %d", l)
		}
		types = append(types, binary.NativeEndian.Uint16(b[4:]))
		seqs = append(seqs, binary.NativeEndian.Uint32(b[8:]))
		b = b[l:]
	}
	sub := uint16(unix.NFNL_SUBSYS_NFTABLES) << 8
	want := []uint16{unix.NFNL_MSG_BATCH_BEGIN, sub | unix.NFT_MSG_NEWTABLE, sub | unix.NFT_MSG_DELTABLE, unix.NFNL_MSG_BATCH_END}
	if len(types) != 4 || types[0] != want[0] || types[1] != want[1] || types[2] != want[2] || types[3] != want[3] {
		t.Errorf("types %#x, want %#x", types, want)
	}
	if seqs[0] != 10 || seqs[1] != 11 || seqs[2] != 12 || seqs[3] != 13 {
		t.Errorf("seqs %v", seqs)
	}
}

func TestNftRuleShape(t *testing.T) {
	p := Publish{HostPort: 8080, CtrPort: 80, Proto: "tcp"}
	m := nftNewRule("otok-web", "prerouting", dnatRule(p, OtokSubnet.Addr().Next().Next())...)
	for _, want := range [][]byte{[]byte("fib\x00"), []byte("nat\x00"), {0x1f, 0x90}, {10, 213, 0, 2}} {
		if !bytes.Contains(m.attrs, want) {
			t.Errorf("DNAT rule lacks % x", want)
		}
	}
	if len(dnatRule(p, OtokSubnet.Addr())) != 9 || len(hairpinRule(p, OtokSubnet.Addr())) != 10 || len(masqueradeSubnet(OtokSubnet, OtokBridge)) != 6 {
		t.Error("rule expression counts changed")
	}
	if !bytes.Equal(netipMask4(24), []byte{255, 255, 255, 0}) || !bytes.Equal(netipMask4(0), []byte{0, 0, 0, 0}) {
		t.Error("netipMask4")
	}
}

// FuzzAttrString: the table-dump parser never panics or reads past its
// input.
func FuzzAttrString(f *testing.F) {
	var a nlAttrs
	a.str(unix.NFTA_TABLE_NAME, "otok-web")
	f.Add([]byte(a))
	f.Add([]byte{4, 0, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, ok := attrString(b, unix.NFTA_TABLE_NAME); ok && len(s) > len(b) {
			t.Fatal("name longer than input")
		}
	})
}
