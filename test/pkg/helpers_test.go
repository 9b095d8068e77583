package pkg

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/otok/otok/test/testenv"
)

// arches: OpenWrt package arch → make cross name.
var arches = []struct{ arch, cross string }{
	{"mipsel_24kc", "mipsle"},
	{"mips_24kc", "mips"},
	{"arm_cortex-a7_neon-vfpv4", "arm"},
	{"aarch64_cortex-a53", "arm64"},
	{"x86_64", "amd64"},
}

const epoch = "1700000000"

var (
	setupOnce sync.Once
	setupErr  error
	mkpkgBin  string // built openwrt-feed/mkpkg
	distDir   string // otok-<cross> binaries (testenv.Dist)
	filesDir  string // package files (otok.init, otok.config, ...)
	repoRoot  string
	tmpRoot   string
)

func TestMain(m *testing.M) { testenv.Main(m) }

func setup(t *testing.T) {
	t.Helper()
	setupOnce.Do(func() { setupErr = doSetup() })
	if setupErr != nil {
		t.Fatal(setupErr)
	}
	distDir = testenv.Dist(t)
}

func doSetup() error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %v", err)
	}
	repoRoot = filepath.Dir(strings.TrimSpace(string(out)))
	tmpRoot, err = testenv.TempDir("otok-pkg-test-")
	if err != nil {
		return err
	}
	mkpkgBin = filepath.Join(tmpRoot, "mkpkg")
	cmd := exec.Command("go", "build", "-o", mkpkgBin, "./openwrt-feed/mkpkg")
	cmd.Dir, cmd.Env = repoRoot, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build mkpkg: %v\n%s", err, out)
	}

	filesDir = filepath.Join(repoRoot, "openwrt-feed/otok/files")
	return nil
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// mkpkg runs the builder with the test's binaries and files.
func mkpkg(t *testing.T, dist string, args ...string) (string, error) {
	t.Helper()
	full := append([]string{"-files", filesDir, "-dist", dist, "-epoch", epoch}, args...)
	cmd := exec.Command(mkpkgBin, full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return errb.String(), err
	}
	return strings.TrimSpace(out.String()), nil
}

func buildPkg(t *testing.T, format, arch, cross, version string, extra ...string) string {
	t.Helper()
	dist := t.TempDir()
	out, err := mkpkg(t, dist, append([]string{"-format", format, "-arch", arch,
		"-bin", filepath.Join(distDir, "otok-"+cross), "-version", version,
		"-commit", "0123456789abcdef0123456789abcdef01234567"}, extra...)...)
	if err != nil {
		t.Fatalf("mkpkg %s %s: %v\n%s", format, arch, err, out)
	}
	return out
}

// tarMember is one tar entry read back.
type tarMember struct {
	hdr  *tar.Header
	data []byte
}

func readTarGz(t *testing.T, b []byte) []tarMember {
	t.Helper()
	return readTar(t, gunzip(t, b))
}

func readTar(t *testing.T, raw []byte) []tarMember {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(raw))
	var ms []tarMember
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return ms
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		d, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("tar %s: %v", h.Name, err)
		}
		ms = append(ms, tarMember{h, d})
	}
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("gzip: %v", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return raw
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
