package flash

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestManifestRoundTrip(t *testing.T) {
	m := testManifest()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := got.Marshal()
	if !bytes.Equal(again, b) {
		t.Fatal("re-encoding differs")
	}
	if got.Ports[0] != "53/udp" {
		t.Fatalf("ports not sorted: %v", got.Ports)
	}
}

func TestManifestGolden(t *testing.T) {
	b, err := testManifest().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "manifest.cbor", b)
}

// checkGolden compares b with testdata/name; OTOK_UPDATE_GOLDEN=1 rewrites.
func checkGolden(t *testing.T, name string, b []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if os.Getenv("OTOK_UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with OTOK_UPDATE_GOLDEN=1 to create)", err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("%s differs from golden:\n got %s\nwant %s", name, hex.EncodeToString(b), hex.EncodeToString(want))
	}
}

func TestManifestRejects(t *testing.T) {
	good, _ := testManifest().Marshal()
	for name, mutate := range map[string]func(*Manifest){
		"bad name":     func(m *Manifest) { m.Name = "Bad/Name" },
		"bad version":  func(m *Manifest) { m.Version = "" },
		"short digest": func(m *Manifest) { m.Digest = m.Digest[:31] },
		"zero size":    func(m *Manifest) { m.Size = 0 },
		"bad kind":     func(m *Manifest) { m.Kind = "tarball" },
		"bad env":      func(m *Manifest) { m.Process.Env = []string{"NOEQUALS"} },
		"relative cwd": func(m *Manifest) { m.Process.Cwd = "tmp" },
	} {
		m := testManifest()
		mutate(m)
		if _, err := m.Marshal(); err == nil {
			t.Errorf("%s: Marshal accepted it", name)
		}
	}
	// Non-deterministic encodings of the same data are refused.
	var m map[string]any
	if err := decMode.Unmarshal(good, &m); err != nil {
		t.Fatal(err)
	}
	// An unknown field.
	m["extra"] = 1
	b, _ := encMode.Marshal(m)
	if _, err := DecodeManifest(b); err == nil || !strings.Contains(err.Error(), "unknown field") {
		t.Errorf("unknown field: %v", err)
	}
	// Trailing garbage.
	if _, err := DecodeManifest(append(append([]byte{}, good...), 0)); err == nil {
		t.Error("trailing byte accepted")
	}
	// Non-minimal integer (size 4096 encoded as uint64).
	i := bytes.Index(good, []byte{0x19, 0x10, 0x00})
	if i < 0 {
		t.Fatal("size not found")
	}
	nm := append(append(append([]byte{}, good[:i]...), 0x1b, 0, 0, 0, 0, 0, 0, 0x10, 0), good[i+3:]...)
	if _, err := DecodeManifest(nm); err == nil || !strings.Contains(err.Error(), "deterministic") {
		t.Errorf("non-minimal int: %v", err)
	}
}

func TestCompareVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.10", "1.9", 1}, {"1.9", "1.10", -1}, {"1.0", "1.0", 0}, {"2.0-rc1", "2.0-rc2", -1},
		{"1.0", "1.0.1", -1}, {"010", "10", 0}, {"a", "b", -1}, {"1.36.1", "1.36.1-r2", -1},
	} {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%q,%q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

func FuzzDecodeManifest(f *testing.F) {
	good, _ := testManifest().Marshal()
	f.Add(good)
	addSeeds(f, "manifest")
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeManifest(b)
		if err != nil {
			return
		}
		again, err := m.Marshal()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted input does not re-encode to itself: %v", err)
		}
	})
}

// addSeeds adds testdata/fuzz-seeds/<prefix>-* files to the corpus.
func addSeeds(f *testing.F, prefix string) {
	ms, _ := filepath.Glob(filepath.Join("testdata", "seeds", prefix+"-*"))
	for _, p := range ms {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
}

func TestValidNameVersion(t *testing.T) {
	names := map[string]bool{
		"adguard": true, "a": true, "0x": true, "my-app_1.2": true,
		"": false, "-a": false, ".a": false, "Adguard": false, "a b": false, "a/b": false,
		strings.Repeat("a", 64): true, strings.Repeat("a", 65): false,
	}
	for s, want := range names {
		if got := ValidName(s); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", s, got, want)
		}
	}
	versions := map[string]bool{
		"1.0": true, "2024.1+git-3_x": true, "V1": true,
		"": false, "+1": false, "1 0": false, "1/0": false, strings.Repeat("1", 65): false,
	}
	for s, want := range versions {
		if got := ValidVersion(s); got != want {
			t.Errorf("ValidVersion(%q) = %v, want %v", s, got, want)
		}
	}
	for s, want := range map[string]bool{"mipsle": true, "arm64": true, "": false, "MIPS": false, "x86_64": false} {
		if got := validArch(s); got != want {
			t.Errorf("validArch(%q) = %v, want %v", s, got, want)
		}
	}
}
