package fleet

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"
)

// seeds adds every golden vector (and a few edge cases) to the corpus.
func seeds(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.cbor"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xd2, 0x84, 0x40, 0xa0, 0x41, 0x00, 0x40})
	f.Add([]byte{0xa1, 0x01, 0x7a, 0xff, 0xff, 0xff, 0xff})
}

// roundTrip: whatever decodes must re-encode and decode to the same bytes.
func roundTrip[T any](t *testing.T, v *T, dec func([]byte) (*T, error)) {
	b, err := Marshal(v)
	if err != nil {
		t.Fatalf("re-encode: %v", err)
	}
	v2, err := dec(b)
	if err != nil {
		t.Fatalf("decode of re-encoding: %v", err)
	}
	b2, _ := Marshal(v2)
	if !bytes.Equal(b, b2) {
		t.Fatalf("not stable:\n%x\n%x", b, b2)
	}
}

func FuzzDecodeCommand(f *testing.F) {
	seeds(f)
	keys := []ed25519.PublicKey{testKey.Public().(ed25519.PublicKey)}
	f.Fuzz(func(t *testing.T, b []byte) {
		peekID(b)
		if p, err := Open(b, CtypeCommand, keys); err == nil {
			if c, err := DecodeCommand(p); err == nil {
				roundTrip(t, c, DecodeCommand)
			}
		}
		if c, err := DecodeCommand(b); err == nil {
			roundTrip(t, c, DecodeCommand)
		}
	})
}

func FuzzDecodeDesired(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := Open(b, CtypeDesired, nil); err == nil {
			if d, err := DecodeDesired(p); err == nil {
				roundTrip(t, d, DecodeDesired)
			}
		}
	})
}

func FuzzDecodeStatus(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := DecodeStatus(b); err == nil {
			roundTrip(t, s, DecodeStatus)
		}
		if s, err := DecodeState(b); err == nil {
			roundTrip(t, s, DecodeState)
		}
	})
}

func FuzzDecodeReplyEvent(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := DecodeReply(b); err == nil {
			roundTrip(t, r, DecodeReply)
		}
		if e, err := DecodeEvent(b); err == nil {
			roundTrip(t, e, DecodeEvent)
		}
	})
}
