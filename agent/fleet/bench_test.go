package fleet

import (
	"crypto/ed25519"
	"testing"

	"github.com/otok/otok/cose"
)

func BenchmarkEncodeStatus(b *testing.B) {
	st := sampleStatus()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(st); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeStatus(b *testing.B) {
	p, _ := Marshal(sampleStatus())
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if _, err := DecodeStatus(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenSignedDesired(b *testing.B) {
	d, _ := Marshal(sampleDesired())
	s, _ := cose.Sign(CtypeDesired, d, testKey)
	keys := []ed25519.PublicKey{testKey.Public().(ed25519.PublicKey)}
	b.ReportAllocs()
	for b.Loop() {
		p, err := Open(s, CtypeDesired, keys)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeDesired(p); err != nil {
			b.Fatal(err)
		}
	}
}
