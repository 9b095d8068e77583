// Package testenv is the scaffolding the system test packages under test/
// share: the otok binary under test ($OTOK_BIN, else built once per test
// binary exactly as `make build` builds it: CGO_ENABLED=0, -trimpath,
// -s -w), the cross-built binaries ($OTOK_DIST, else built like `make
// cross`), the busybox image of test/testimage built once, skipping
// without root or under qemu-user, a state directory a user namespace's
// root can reach, running otok with its output and exit code, and
// removing what a failed test left of an installation.
//
// Its code is in ordinary .go files, not _test.go ones, so that test
// packages can import it; it is not part of otok. What only one package
// needs stays in that package.
//
// What testenv builds, and what a package keeps in testenv.TempDir for
// all its tests (an image), is removed by TestMain:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// or by testenv.Cleanup() after m.Run() next to the package's own
// clean-up.
package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// mu guards tmpDirs: the temp directories Cleanup removes.
var (
	mu      sync.Mutex
	tmpDirs []string
)

// TempDir makes a temp directory (os.MkdirTemp) that lives until Cleanup,
// for what the tests of one test binary share: built binaries, images.
func TempDir(pattern string) (string, error) {
	d, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", err
	}
	mu.Lock()
	tmpDirs = append(tmpDirs, d)
	mu.Unlock()
	return d, nil
}

// Cleanup removes the directories of TempDir (and so the binaries testenv
// built). Call it from TestMain after m.Run().
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	for _, d := range tmpDirs {
		os.RemoveAll(d)
	}
	tmpDirs = nil
}

// Main is a whole TestMain: it runs the tests, calls Cleanup and exits
// with the tests' code.
func Main(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// Build builds ./cmd/otok into out as the Makefile does (CGO_ENABLED=0,
// -trimpath, -ldflags '-s -w'; a cgo build breaks `otok exec` and health
// checks: after setns, /proc/self/exe is not found). env adds to the
// environment, e.g. GOOS=linux GOARCH=mips GOMIPS=softfloat.
func Build(out string, env ...string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "github.com/otok/otok/cmd/otok")
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0"), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build otok %s: %v\n%s", strings.Join(env, " "), err, b)
	}
	return nil
}

// built is a binary (or a directory of them) made at most once per test
// binary.
type built struct {
	once sync.Once
	path string
	err  error
}

// get returns $env when it is set, else what mk returns (made once).
func (b *built) get(t testing.TB, env string, mk func() (string, error)) string {
	t.Helper()
	if v := os.Getenv(env); v != "" {
		return v
	}
	b.once.Do(func() { b.path, b.err = mk() })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

var otok, dist built

// Otok returns the otok binary under test: $OTOK_BIN, else one built
// (once per test binary) into a temp directory that Cleanup removes.
func Otok(t testing.TB) string {
	t.Helper()
	return otok.get(t, "OTOK_BIN", func() (string, error) {
		dir, err := TempDir("otok-bin-")
		if err != nil {
			return "", err
		}
		bin := filepath.Join(dir, "otok")
		return bin, Build(bin)
	})
}

// Target is one cross build of `make cross`: the binary is
// otok-<Name> in the dist directory.
type Target struct {
	Name, GOARCH string
	Env          string // GOMIPS=… or GOARM=…, or ""
}

// Targets are the Makefile's CROSS_TARGETS.
var Targets = []Target{
	{"mipsle", "mipsle", "GOMIPS=softfloat"},
	{"mips", "mips", "GOMIPS=softfloat"},
	{"arm", "arm", "GOARM=7"},
	{"arm64", "arm64", ""},
	{"amd64", "amd64", ""},
}

// Dist returns a directory with otok-<name> for every Target: $OTOK_DIST
// (from `make cross`), else one built once per test binary into a temp
// directory that Cleanup removes.
func Dist(t testing.TB) string {
	t.Helper()
	return dist.get(t, "OTOK_DIST", func() (string, error) {
		dir, err := TempDir("otok-dist-")
		if err != nil {
			return "", err
		}
		for _, tg := range Targets {
			env := []string{"GOOS=linux", "GOARCH=" + tg.GOARCH}
			if tg.Env != "" {
				env = append(env, tg.Env)
			}
			if err := Build(filepath.Join(dir, "otok-"+tg.Name), env...); err != nil {
				return "", err
			}
		}
		return dir, nil
	})
}

// NeedRoot skips the test, saying why, unless it runs as root on a kernel
// of its own architecture: under qemu-user (go test -exec
// qemu-*-static) clone flags, mounts and namespaces do not work.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("skipped: needs root (namespaces, mounts, cgroups); running as uid %d", os.Geteuid())
	}
	if UnderQemuUser() {
		t.Skip("skipped: namespaces and mounts do not work under qemu-user")
	}
}

// UnderQemuUser reports whether this process runs under qemu-user (the
// unit tests run for mips and arm with -exec qemu-*-static): qemu fakes
// uname, but /proc/sys/kernel/arch still names the host kernel's
// architecture. In the qemu-system guests of test/qemu (OTOK_QEMU_GUEST
// is set there) the kernel is the emulated architecture's own.
func UnderQemuUser() bool {
	if os.Getenv("OTOK_QEMU_GUEST") != "" {
		return false
	}
	b, err := os.ReadFile("/proc/sys/kernel/arch")
	if err != nil {
		return false
	}
	native, known := kernelRuns(strings.TrimSpace(string(b)), runtime.GOARCH)
	return known && !native
}

// kernelRuns reports whether a kernel of the machine name (uname -m) runs
// GOARCH binaries natively, and whether the machine name is known at all.
func kernelRuns(machine, goarch string) (native, known bool) {
	var arches []string
	switch {
	case machine == "x86_64":
		arches = []string{"amd64", "386"}
	case machine == "i386" || machine == "i686":
		arches = []string{"386"}
	case machine == "aarch64" || machine == "arm64":
		arches = []string{"arm64", "arm"}
	case strings.HasPrefix(machine, "arm"):
		arches = []string{"arm"}
	case machine == "mips64":
		// uname -m says mips64 (mips) for either byte order
		arches = []string{"mips64", "mips64le", "mips", "mipsle"}
	case machine == "mips":
		arches = []string{"mips", "mipsle"}
	case machine == "ppc64le":
		arches = []string{"ppc64le"}
	case machine == "riscv64":
		arches = []string{"riscv64"}
	case machine == "s390x":
		arches = []string{"s390x"}
	default:
		return false, false
	}
	for _, a := range arches {
		if a == goarch {
			return true, true
		}
	}
	return false, true
}

// StateDir returns a fresh directory for otok's --state, removed at the
// end of the test. With userns it is made under /run with mode 0755, so
// that a user namespace's root (a mapped host uid) can traverse it to its
// start fifo and volumes, as it can /run/otok; a test's temp dir under
// /tmp is not reachable for it.
func StateDir(t testing.TB, userns bool) string {
	t.Helper()
	if !userns {
		return t.TempDir()
	}
	d, err := os.MkdirTemp("/run", "otok-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// RunCmd runs cmd (stdout and stderr are collected here) and returns its
// output and exit code; it fails the test when cmd cannot run at all.
// (Each package builds cmd with its own global flags, stdin, environment
// or timeout, so there is no Run(args...) for the binary alone.)
func RunCmd(t testing.TB, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	code = ExitCode(t, cmd.Run())
	return o.String(), e.String(), code
}

// ExitCode is the exit code of a command that returned err from Run or
// Wait: 0, or the code of an *exec.ExitError (-1 when killed by a
// signal). Any other error (not started) fails the test.
func ExitCode(t testing.TB, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatal(err)
	return -1
}

// Log is an io.Writer that keeps what is written to it, safe to read
// while a child process writes (set it as a long-running command's
// Stderr: cmd.Wait returns once all of it is copied).
type Log struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Poll calls cond every 20ms until it is true (true) or timeout passes
// (false).
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// OtokForOthers copies otok where any user may run it and opens the
// directories above state to everyone, so that for a non-root caller the
// only barrier left is the agent socket's own mode. It returns the copy's
// path; the copy goes with the test.
func OtokForOthers(t testing.TB, state string) string {
	t.Helper()
	pub, err := os.MkdirTemp("", "otok-pub-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pub) })
	os.Chmod(pub, 0o755)
	bin, err := os.ReadFile(Otok(t))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(pub, "otok")
	if err := os.WriteFile(path, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := state; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	return path
}
