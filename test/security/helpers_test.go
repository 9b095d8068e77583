package security

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/otok/otok/test/testenv"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var tmpDirs []string

func TestMain(m *testing.M) {
	if os.Getenv("OTOK_SEC_SLEEPER") == "1" {
		// The host-side process the probes try to reach (see
		// newHostSide): this binary re-executed under another argv[0],
		// so no /bin/sleep is needed (qemu guests).
		time.Sleep(10 * time.Minute)
		os.Exit(0)
	}
	code := m.Run()
	for _, d := range tmpDirs {
		os.RemoveAll(d)
	}
	testenv.Cleanup()
	os.Exit(code)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("security tests need root (containers, mounts, cgroups)")
	}
}

// otokBin is $OTOK_BIN or a static build of ./cmd/otok.
func otokBin(t testing.TB) string {
	t.Helper()
	return testenv.Otok(t) // $OTOK_BIN, or built once like make build
}

func goBuild(out, pkg, goarch string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH="+goarch, "GOMIPS=softfloat", "GOARM=7")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s for %s: %v\n%s", pkg, goarch, err, b)
	}
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// otok is one test's installation: private state, store and keys.
type otok struct {
	t                  testing.TB
	bin                string
	dir                string
	state, store, keys string
}

func newOtok(t *testing.T) *otok {
	t.Helper()
	requireRoot(t)
	o := &otok{t: t, bin: otokBin(t), dir: t.TempDir()}
	// Reachable by a user namespace's root (host uid 100000): the
	// container's start fifo and volumes live below.
	os.Chmod(o.dir, 0o755)
	os.Chmod(filepath.Dir(o.dir), 0o755)
	o.state = filepath.Join(o.dir, "run")
	o.store = filepath.Join(o.dir, "store")
	o.keys = filepath.Join(o.dir, "keys")
	os.MkdirAll(o.keys, 0o755)
	t.Cleanup(o.cleanup)
	return o
}

func (o *otok) args(a ...string) []string {
	return append([]string{"--state", o.state, "--store", o.store, "--keys", o.keys}, a...)
}

// run runs otok with a timeout and returns its output and exit code.
func (o *otok) run(timeout time.Duration, args ...string) (stdout, stderr string, code int) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.bin, o.args(args...)...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
		se.WriteString(err.Error())
	}
	return so.String(), se.String(), code
}

func (o *otok) must(args ...string) string {
	o.t.Helper()
	out, errOut, code := o.run(60*time.Second, args...)
	if code != 0 {
		o.t.Fatalf("otok %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

type psEntry struct {
	Status string `json:"status"`
	Pid    int    `json:"pid"`
	Spec   struct {
		Name string `json:"name"`
	} `json:"spec"`
}

func (o *otok) ps() []psEntry {
	out, _, _ := o.run(30*time.Second, "ps", "-a", "--json")
	var list []psEntry
	json.Unmarshal([]byte(out), &list)
	return list
}

// cleanup removes every container and leftover of this installation and
// reports what could not be removed.
func (o *otok) cleanup() {
	for _, c := range o.ps() {
		o.run(30*time.Second, "rm", "-f", c.Spec.Name)
	}
	o.run(30*time.Second, "gc")
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := o.leftovers()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			o.t.Errorf("leftovers:\n  %s", strings.Join(left, "\n  "))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// leftovers lists mounts under the installation's directories, container
// state and v1 cgroups of its containers.
func (o *otok) leftovers() []string {
	var p []string
	for _, m := range mountsUnder(o.dir) {
		p = append(p, "mount: "+m)
	}
	ents, _ := os.ReadDir(filepath.Join(o.state, "containers"))
	for _, e := range ents {
		if e.IsDir() && e.Name() != "rootfs" {
			p = append(p, "state: "+e.Name())
		}
	}
	return p
}

// mountsUnder lists mount points at or below dir (this mount namespace).
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 4 && (fs[4] == dir || strings.HasPrefix(fs[4], dir+"/")) {
			out = append(out, fs[4])
		}
	}
	return out
}

// cgroupsOf lists v1 and v2 cgroup directories named after a container:
// otok/NAME (default state directory) and otok/NAME@SCOPE (any other
// state directory, runtime.CgroupName).
func cgroupsOf(name string) []string {
	var out []string
	for _, c := range []string{"memory", "pids", "cpu", "cpu,cpuacct", "devices", "freezer", "blkio", "unified", ""} {
		d := filepath.Join("/sys/fs/cgroup", c, "otok", name)
		if _, err := os.Stat(d); err == nil {
			out = append(out, d)
		}
		scoped, _ := filepath.Glob(d + "@*")
		out = append(out, scoped...)
	}
	return out
}

// record appends a JSON line to $OTOK_SECURITY_OUT/<kind>.jsonl (the
// report generator's input); without the variable it does nothing.
func record(t testing.TB, kind string, v any) {
	dir := os.Getenv("OTOK_SECURITY_OUT")
	if dir == "" {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, kind+".jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(append(b, '\n'))
}
