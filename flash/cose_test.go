package flash

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/otok/otok/cose"
)

// The COSE_Sign1 structure itself is tested in package cose; here: the
// golden manifest vector, and what the keyring makes of signed manifests.

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
	if m.Name != "busybox" || k.ID != "56475aa75463474c" {
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
	flipped := bytes.Clone(signed)
	flipped[len(flipped)-1] ^= 1
	// A payload changed after signing (size 4096 → 4097).
	tampered := bytes.Clone(signed)
	tampered[bytes.Index(tampered, []byte{0x19, 0x10, 0x00})+2] = 1
	asCommand, _ := cose.Sign("application/vnd.otok.cmd+cbor", payload, testKey())
	huge, _ := SignCOSE(append(bytes.Clone(payload), make([]byte, MaxManifestSize)...), testKey())

	cases := []struct {
		name   string
		b      []byte
		kr     *Keyring
		want   string
		verify bool // a *VerifyError
	}{
		{"unknown key", signed, keyringWith(t, otherKey()), "image busybox: signature by unknown key 56475aa75463474c (not trusted in test)", true},
		{"no keyring", signed, nil, "image busybox: signature by unknown key 56475aa75463474c (not trusted)", true},
		{"flipped signature bit", flipped, keyringWith(t, testKey()), "image busybox: bad signature (key 56475aa75463474c)", true},
		{"tampered payload", tampered, keyringWith(t, testKey()), "image busybox: bad signature", true},
		{"fleet command signature", asCommand, keyringWith(t, testKey()), `image: COSE_Sign1: content type "application/vnd.otok.cmd+cbor", want "application/vnd.otok.manifest+cbor"`, false},
		{"over the manifest limit", huge, keyringWith(t, testKey()), "image: COSE_Sign1: " + itoa(len(huge)) + " bytes, limit " + itoa(MaxManifestSize), false},
		{"trailing byte", append(bytes.Clone(signed), 0), keyringWith(t, testKey()), "image: COSE_Sign1: cbor:", false},
	}
	for _, c := range cases {
		_, _, err := c.kr.VerifyManifest(c.b)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.name, err, c.want)
			continue
		}
		var ve *VerifyError
		if errors.As(err, &ve) != c.verify {
			t.Errorf("%s: VerifyError %v, want %v", c.name, !c.verify, c.verify)
		}
	}
}
