package cose

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

const (
	ctypeManifest = "application/vnd.otok.manifest+cbor"
	ctypeCommand  = "application/vnd.otok.cmd+cbor"
)

// seedKey is the key whose seed is 32 times b, or 00 01 … 1f when b < 0.
func seedKey(b int) ed25519.PrivateKey {
	seed := bytes.Repeat([]byte{byte(b)}, ed25519.SeedSize)
	if b < 0 {
		for i := range seed {
			seed[i] = byte(i)
		}
	}
	return ed25519.NewKeyFromSeed(seed)
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// The golden vectors are copies of the ones the users of this package
// test byte for byte: flash's image manifest (flash/FORMAT.md, key seed
// 00 01 … 1f, kid 56475aa75463474c) and agent/fleet's signed command (key
// seed 07 × 32). Parsing, verifying and signing the payload again must give
// the same bytes.
var golden = []struct {
	file, ctype string
	key         ed25519.PrivateKey
	kid         string
}{
	{"manifest.cose", ctypeManifest, seedKey(-1), "56475aa75463474c"},
	{"command.cose", ctypeCommand, seedKey(7), ""},
}

func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGoldenVectors(t *testing.T) {
	for _, g := range golden {
		t.Run(g.file, func(t *testing.T) {
			b := readGolden(t, g.file)
			if !IsSign1(b) {
				t.Fatal("IsSign1 = false")
			}
			msg, err := Parse(b, g.ctype)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(msg.KeyID, KeyID(pubOf(g.key))) {
				t.Errorf("kid %x, want %x", msg.KeyID, KeyID(pubOf(g.key)))
			}
			if g.kid != "" && string(hexOf(msg.KeyID)) != g.kid {
				t.Errorf("kid %x, want %s", msg.KeyID, g.kid)
			}
			if err := msg.Verify(pubOf(g.key)); err != nil {
				t.Fatal(err)
			}
			again, err := Sign(g.ctype, msg.Payload, g.key)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, b) {
				t.Fatalf("signing the payload again differs:\n got %x\nwant %x", again, b)
			}
			if p, ok := PeekPayload(b); !ok || !bytes.Equal(p, msg.Payload) {
				t.Errorf("PeekPayload = %x %v", p, ok)
			}
		})
	}
}

func hexOf(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return out
}

// parts is a COSE_Sign1 taken apart, to be mutated and put together again.
type parts struct {
	prot   []byte
	unprot map[int64]cbor.RawMessage
	pay    []byte
	sig    []byte
}

func (p parts) encode(t *testing.T) []byte {
	t.Helper()
	b, err := encMode.Marshal(cbor.Tag{Number: tagSign1, Content: sign1{Protected: p.prot, Unprotected: p.unprot, Payload: p.pay, Signature: p.sig}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func enc(t *testing.T, v any) []byte {
	t.Helper()
	b, err := encMode.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseRejects(t *testing.T) {
	key := seedKey(-1)
	kid := KeyID(pubOf(key))
	good, err := Sign(ctypeManifest, []byte{0xa0}, key)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := Parse(good, ctypeManifest)
	if err != nil {
		t.Fatal(err)
	}
	base := parts{prot: msg.Protected, unprot: map[int64]cbor.RawMessage{}, pay: msg.Payload, sig: msg.Signature}
	with := func(f func(*parts)) []byte {
		p := base
		f(&p)
		return p.encode(t)
	}
	hdr := func(h map[int64]any) func(*parts) {
		return func(p *parts) { p.prot = enc(t, h) }
	}
	cases := []struct {
		name   string
		b      []byte
		want   string
		header bool // a *HeaderError
	}{
		{"empty", nil, "COSE_Sign1: EOF", false},
		{"untagged", good[1:], "COSE_Sign1: cbor: cannot unmarshal array", false},
		{"tag 17", append([]byte{0xd1}, good[1:]...), "tag 17, want 18", false},
		{"trailing byte", append(bytes.Clone(good), 0), "extraneous data", false},
		{"array of 3", append([]byte{0xd2, 0x83}, good[2:len(good)-66]...), "COSE_Sign1: cbor:", false},
		{"indefinite array", append(append([]byte{0xd2, 0x9f}, good[2:]...), 0xff), "indefinite-length array", false},
		{"unprotected header", with(func(p *parts) { p.unprot = map[int64]cbor.RawMessage{4: enc(t, kid)} }), "unprotected headers are not accepted", false},
		{"empty payload", with(func(p *parts) { p.pay = []byte{} }), "empty or detached payload", false},
		{"detached payload", with(func(p *parts) { p.pay = nil }), "empty or detached payload", false},
		{"short signature", with(func(p *parts) { p.sig = p.sig[:63] }), "signature is 63 bytes, want 64", false},
		{"protected not a map", with(func(p *parts) { p.prot = enc(t, 1) }), "protected header: cbor: cannot unmarshal", false},
		{"critical header", with(hdr(map[int64]any{1: -8, 2: []int{4}, 3: ctypeManifest, 4: kid})), "critical headers are not supported", false},
		{"unknown header", with(hdr(map[int64]any{1: -8, 3: ctypeManifest, 4: kid, 5: []byte{1}})), "unknown protected header 5", false},
		{"duplicate header", with(func(p *parts) { p.prot = append([]byte{0xa4, 0x01, 0x27}, p.prot[1:]...) }), "duplicate map key", false},
		{"ES256", with(hdr(map[int64]any{1: -7, 3: ctypeManifest, 4: kid})), "algorithm -7, want EdDSA (-8)", true},
		{"no algorithm", with(hdr(map[int64]any{3: ctypeManifest, 4: kid})), "algorithm 0, want EdDSA (-8)", true},
		{"other content type", with(hdr(map[int64]any{1: -8, 3: ctypeCommand, 4: kid})), `content type "application/vnd.otok.cmd+cbor", want "application/vnd.otok.manifest+cbor"`, true},
		{"short kid", with(hdr(map[int64]any{1: -8, 3: ctypeManifest, 4: kid[:4]})), "key id is 4 bytes, want 8", true},
		{"no kid", with(hdr(map[int64]any{1: -8, 3: ctypeManifest})), "key id is 0 bytes, want 8", true},
		// 0x58 0x01 is a one-byte bstr written with a one-byte length: valid CBOR, not the shortest form.
		{"long-form payload length", bytes.Replace(good, []byte{0x41, 0xa0}, []byte{0x58, 0x01, 0xa0}, 1), "not in deterministic CBOR encoding", false},
		{"unsorted protected header", with(func(p *parts) {
			p.prot = append(append([]byte{0xa3, 0x03}, enc(t, ctypeManifest)...), append([]byte{0x01, 0x27, 0x04}, enc(t, kid)...)...)
		}), "protected header not in deterministic CBOR encoding", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.b, ctypeManifest)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			var he *HeaderError
			if errors.As(err, &he) != c.header {
				t.Errorf("HeaderError: %v, want %v", !c.header, c.header)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	key, other := seedKey(-1), seedKey(0x42)
	signed, _ := Sign(ctypeManifest, []byte("payload"), key)
	msg, err := Parse(signed, ctypeManifest)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := Sign(ctypeManifest, []byte("payload"), other)
	fmsg, _ := Parse(forged, ctypeManifest)
	flipped := bytes.Clone(msg.Signature)
	flipped[0] ^= 1
	cases := []struct {
		name string
		msg  Sign1
		pub  ed25519.PublicKey
		ok   bool
	}{
		{"good", *msg, pubOf(key), true},
		{"other key", *msg, pubOf(other), false},
		{"flipped signature bit", Sign1{Protected: msg.Protected, Payload: msg.Payload, Signature: flipped}, pubOf(key), false},
		{"tampered payload", Sign1{Protected: msg.Protected, Payload: []byte("paylobd"), Signature: msg.Signature}, pubOf(key), false},
		// Signed by another key, presented with the trusted key's header.
		{"forged kid", Sign1{Protected: msg.Protected, Payload: fmsg.Payload, Signature: fmsg.Signature}, pubOf(key), false},
		// The protected header is signed too: the same signature under another content type fails.
		{"other protected header", Sign1{Protected: enc(t, protected{Alg: algEdDSA, Ctype: ctypeCommand, Kid: msg.KeyID}), Payload: msg.Payload, Signature: msg.Signature}, pubOf(key), false},
	}
	for _, c := range cases {
		err := c.msg.Verify(c.pub)
		if (err == nil) != c.ok {
			t.Errorf("%s: Verify = %v, want ok %v", c.name, err, c.ok)
		}
		if err != nil && err.Error() != "bad signature" {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestIsSign1PeekPayload(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
		is   bool
		peek []byte // nil: PeekPayload fails
	}{
		{"empty", nil, false, nil},
		{"bare map", []byte{0xa1, 0x01, 0x02}, false, nil},
		{"tag 18 of garbage", []byte{0xd2, 0x01}, true, nil},
		// Unverifiable (no signature at all) but shaped like one: the payload is read.
		{"unsigned shape", []byte{0xd2, 0x84, 0x40, 0xa0, 0x42, 0xa1, 0x01, 0x40}, true, []byte{0xa1, 0x01}},
	}
	for _, c := range cases {
		if got := IsSign1(c.b); got != c.is {
			t.Errorf("%s: IsSign1 = %v", c.name, got)
		}
		p, ok := PeekPayload(c.b)
		if ok != (c.peek != nil) || !bytes.Equal(p, c.peek) {
			t.Errorf("%s: PeekPayload = %x %v, want %x", c.name, p, ok, c.peek)
		}
	}
}

// FuzzParse: arbitrary bytes never panic; whatever parses re-encodes to
// the input (one valid encoding) and fails to verify with a key that did
// not sign it.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.cose"))
	for _, p := range files {
		f.Add(readGolden(f, filepath.Base(p)))
	}
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0x41, 0x00, 0x40})
	stranger := pubOf(seedKey(0x55))
	f.Fuzz(func(t *testing.T, b []byte) {
		PeekPayload(b)
		for _, ctype := range []string{ctypeManifest, ctypeCommand} {
			msg, err := Parse(b, ctype)
			if err != nil {
				continue
			}
			again := parts{prot: msg.Protected, unprot: map[int64]cbor.RawMessage{}, pay: msg.Payload, sig: msg.Signature}.encode(t)
			if !bytes.Equal(again, b) {
				t.Fatalf("parsed message re-encodes differently:\n%x\n%x", b, again)
			}
			if msg.Verify(stranger) == nil {
				t.Fatal("verified with a stranger's key")
			}
		}
	})
}
