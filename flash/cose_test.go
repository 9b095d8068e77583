package flash

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
)

func TestCOSESignVerify(t *testing.T) {
	payload, _ := testManifest().Marshal()
	signed, err := SignCOSE(payload, testKey())
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "manifest.cose", signed)
	kr := keyringWith(t, testKey())
	m, k, err := kr.VerifyManifest(signed)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "busybox" || k.ID == "" {
		t.Fatalf("got %v %v", m, k)
	}
	// Deterministic: signing again gives the same bytes.
	again, _ := SignCOSE(payload, testKey())
	if !bytes.Equal(again, signed) {
		t.Fatal("signing is not deterministic")
	}
}

func TestCOSERejects(t *testing.T) {
	payload, _ := testManifest().Marshal()
	signed, _ := SignCOSE(payload, testKey())
	kr := keyringWith(t, testKey())

	// Unknown key.
	_, _, err := keyringWith(t, otherKey()).VerifyManifest(signed)
	var ve *VerifyError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "image busybox: signature by unknown key") {
		t.Errorf("unknown key: %v", err)
	}
	// A flipped bit in the signature.
	bad := append([]byte{}, signed...)
	bad[len(bad)-1] ^= 1
	if _, _, err := kr.VerifyManifest(bad); err == nil || !strings.Contains(err.Error(), "image busybox: bad signature") {
		t.Errorf("bad signature: %v", err)
	}
	// A payload changed after signing (size 4096 → 4097).
	i := bytes.Index(signed, []byte{0x19, 0x10, 0x00})
	bad = append([]byte{}, signed...)
	bad[i+2] = 1
	if _, _, err := kr.VerifyManifest(bad); err == nil || !strings.Contains(err.Error(), "bad signature") {
		t.Errorf("tampered payload: %v", err)
	}
	// Signed with a different key but claiming the trusted kid.
	other, _ := SignCOSE(payload, otherKey())
	msg, _ := ParseCOSE(other)
	good, _ := ParseCOSE(signed)
	if err := (&Sign1{Protected: good.Protected, Payload: msg.Payload, Signature: msg.Signature}).Verify(testKey().Public().(ed25519.PublicKey)); err == nil {
		t.Error("forged signature verified")
	}
	// Not tag 18.
	if _, err := ParseCOSE(signed[1:]); err == nil {
		t.Error("untagged accepted")
	}
	if _, err := ParseCOSE(append(append([]byte{}, signed...), 0)); err == nil {
		t.Error("trailing byte accepted")
	}
}

func FuzzParseCOSE(f *testing.F) {
	payload, _ := testManifest().Marshal()
	signed, _ := SignCOSE(payload, testKey())
	f.Add(signed)
	addSeeds(f, "cose")
	kr := &Keyring{Keys: map[string]*TrustedKey{}}
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := ParseCOSE(b)
		if err == nil {
			msg.Verify(testKey().Public().(ed25519.PublicKey))
		}
		kr.VerifyManifest(b)
	})
}
