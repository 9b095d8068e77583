package flash

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestOtokHeaderGolden(t *testing.T) {
	payload, _ := testManifest().Marshal()
	signed, _ := SignCOSE(payload, testKey())
	var b bytes.Buffer
	if err := WriteOtokHeader(&b, signed); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "header.otok", b.Bytes())
	got, err := ReadOtokHeader(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, signed) {
		t.Fatal("manifest differs")
	}
	if OtokSize(len(signed), 4096) != int64(b.Len())+4096 {
		t.Fatal("OtokSize")
	}
}

func TestOtokHeaderRejects(t *testing.T) {
	payload, _ := testManifest().Marshal()
	signed, _ := SignCOSE(payload, testKey())
	var b bytes.Buffer
	WriteOtokHeader(&b, signed)
	h := b.Bytes()
	for name, c := range map[string]struct {
		in   []byte
		want string
	}{
		"empty":     {nil, "truncated"},
		"magic":     {append([]byte("hsqs"), h[4:]...), "bad magic"},
		"version":   {append(append(append([]byte{}, h[:8]...), 0, 2), h[10:]...), "format version 2"},
		"flags":     {append(append(append([]byte{}, h[:10]...), 0, 1), h[12:]...), "unknown flags"},
		"huge":      {append(append(append([]byte{}, h[:12]...), 0xff, 0, 0, 0), h[16:]...), "manifest length"},
		"truncated": {h[:len(h)-3], "manifest truncated"},
	} {
		_, err := ReadOtokHeader(bytes.NewReader(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", name, err, c.want)
		}
	}
	if _, err := ReadOtokHeader(strings.NewReader("hsqs" + strings.Repeat("x", 100))); !errors.Is(err, ErrNotOtok) {
		t.Errorf("squashfs: %v", err)
	}
}

func FuzzReadOtok(f *testing.F) {
	payload, _ := testManifest().Marshal()
	signed, _ := SignCOSE(payload, testKey())
	var b bytes.Buffer
	WriteOtokHeader(&b, signed)
	f.Add(b.Bytes())
	addSeeds(f, "otok")
	kr := keyringWith(&testing.T{}, testKey())
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := ReadOtokHeader(bytes.NewReader(in))
		if err != nil {
			return
		}
		if len(s) == 0 || len(s) > MaxManifestSize {
			t.Fatalf("manifest length %d escaped the bounds", len(s))
		}
		kr.VerifyManifest(s)
	})
}
