package flash

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// testKey is the fixed key of the golden vectors: seed 00 01 02 … 1f.
func testKey() ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	return ed25519.NewKeyFromSeed(seed)
}

func otherKey() ed25519.PrivateKey {
	seed := bytes.Repeat([]byte{0x42}, ed25519.SeedSize)
	return ed25519.NewKeyFromSeed(seed)
}

// testManifest is the manifest of the golden vectors.
func testManifest() *Manifest {
	return &Manifest{
		Name: "busybox", Version: "1.36.1", Arch: "mipsle", Kind: KindSquashfs,
		Digest: bytes.Repeat([]byte{0xab}, 32), Size: 4096, Created: 1767225600,
		Process: Process{Args: []string{"/bin/sh"}, Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, Cwd: "/", User: "0:0"},
		Ports:   []string{"80/tcp", "53/udp"},
		Labels:  map[string]string{"org.opencontainers.image.source": "https://example.org/busybox"},
	}
}

func keyringWith(t *testing.T, keys ...ed25519.PrivateKey) *Keyring {
	t.Helper()
	kr := &Keyring{Dir: "test", Keys: map[string]*TrustedKey{}}
	for _, k := range keys {
		pub := k.Public().(ed25519.PublicKey)
		id := fmt.Sprintf("%x", KeyID(pub))
		kr.Keys[id] = &TrustedKey{ID: id, Pub: pub}
	}
	return kr
}

// underQemu reports whether the test binary runs under qemu-user (the
// tests are run for mips and arm with -exec qemu-*-static): qemu fakes
// uname, but /proc/sys/kernel/arch still names the host's architecture.
func underQemu() bool {
	b, err := os.ReadFile("/proc/sys/kernel/arch")
	if err != nil {
		return false
	}
	if os.Getenv("OTOK_QEMU_GUEST") != "" {
		return false // a qemu-system guest: a real kernel of this arch
	}
	host := map[string]string{"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "mips": "mips", "i686": "386"}[strings.TrimSpace(string(b))]
	return host != "" && host != runtime.GOARCH && !(host == "amd64" && runtime.GOARCH == "386") &&
		!(host == "arm64" && runtime.GOARCH == "arm") && !(host == "mips" && runtime.GOARCH == "mipsle")
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("skipped: needs root (mounts)")
	}
	if underQemu() {
		t.Skip("skipped: mounts and namespaces do not work under qemu-user")
	}
}

// makeSquashfs builds a small squashfs from files (path → content; a
// content starting with "->" makes a symlink).
func makeSquashfs(t *testing.T, files map[string]string, extra ...string) string {
	t.Helper()
	dir := t.TempDir()
	out := filepath.Join(dir, "img.squashfs")
	fixture := squashfsFixture(files, extra)
	mk, err := exec.LookPath("mksquashfs")
	if err != nil {
		// No squashfs-tools (the mips qemu guest): the same image, made
		// on a host by OTOK_SQUASHFS_FIXTURES=1 go test ./flash.
		b, ferr := os.ReadFile(fixture)
		if ferr != nil {
			t.Skipf("skipped: mksquashfs not installed and no fixture %s (make them with OTOK_SQUASHFS_FIXTURES=1 go test ./flash where squashfs-tools are)", fixture)
		}
		if err := os.WriteFile(out, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return out
	}
	src := filepath.Join(dir, "src")
	for p, c := range files {
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(c, "->") {
			if err := os.Symlink(c[2:], full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	args := append([]string{src, out, "-noappend", "-no-progress", "-quiet", "-comp", "xz", "-all-root", "-mkfs-time", "0", "-all-time", "0"}, extra...)
	if o, err := exec.Command(mk, args...).CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, o)
	}
	if os.Getenv("OTOK_SQUASHFS_FIXTURES") == "1" {
		b, _ := os.ReadFile(out)
		os.MkdirAll(filepath.Dir(fixture), 0o755)
		if err := os.WriteFile(fixture, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// squashfsFixture names the stored copy of the squashfs makeSquashfs
// builds from files and extra (mksquashfs output is reproducible: fixed
// times, all root, no append).
func squashfsFixture(files map[string]string, extra []string) string {
	var keys []string
	for p := range files {
		keys = append(keys, p)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, p := range keys {
		fmt.Fprintf(h, "%s\x00%s\x00", p, files[p])
	}
	fmt.Fprintf(h, "\x01%s", strings.Join(extra, "\x00"))
	return filepath.Join("testdata", "squashfs", fmt.Sprintf("%x.sqfs", h.Sum(nil)[:8]))
}

// makeOtok signs a .otok for the squashfs at path.
func makeOtok(t *testing.T, sq string, m *Manifest, key ed25519.PrivateKey) []byte {
	t.Helper()
	data, err := os.ReadFile(sq)
	if err != nil {
		t.Fatal(err)
	}
	if m.Digest == nil {
		d := sha256.Sum256(data)
		m.Digest = d[:]
	}
	if m.Size == 0 {
		m.Size = int64(len(data))
	}
	payload, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := SignCOSE(payload, key)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteOtokHeader(&b, signed); err != nil {
		t.Fatal(err)
	}
	b.Write(data)
	return b.Bytes()
}

func imgManifest(name, version string) *Manifest {
	return &Manifest{Name: name, Version: version, Arch: runtime.GOARCH, Kind: KindSquashfs, Created: 1767225600,
		Process: Process{Args: []string{"/bin/sh"}}}
}

// snapshot lists every path in root with its size and sha256, so a failed
// import can be shown to leave the store byte for byte as before. The lock
// file and counters are included.
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			lines = append(lines, fmt.Sprintf("%s %o %d %x", rel, fi.Mode().Perm(), fi.Size(), sha256.Sum256(b)))
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			lines = append(lines, fmt.Sprintf("%s -> %s", rel, l))
		default:
			lines = append(lines, fmt.Sprintf("%s %v", rel, fi.Mode()))
		}
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func openTestStore(t *testing.T, root string, keys ...ed25519.PrivateKey) *Store {
	t.Helper()
	st, err := Open(root, Options{Keys: keyringWith(t, keys...), Comps: AllComps(), Reserve: Reserve{Bytes: -1}})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

var bg = context.Background()

// io_Reader hides everything but Read (e.g. a file's Stat).
type io_Reader interface{ Read([]byte) (int, error) }
