package fleet

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otok/otok/agent/fleet"
	"github.com/otok/otok/agent/fleet/fleettest"
)

// otokBin is $OTOK_BIN (make system) or a fresh build.
func otokBin(t *testing.T) string {
	if b := os.Getenv("OTOK_BIN"); b != "" {
		return b
	}
	b := filepath.Join(t.TempDir(), "otok")
	cmd := exec.Command("go", "build", "-o", b, "github.com/otok/otok/cmd/otok")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build otok: %v\n%s", err, out)
	}
	return b
}

// The controller CLI end to end: keys, a simulated fleet in another
// process, ls, status, one-shot commands, a YAML deploy with --wait, a
// rejected unsigned command, watch, and death of every device when the
// simulator stops.
func TestCLI(t *testing.T) {
	m := fleettest.StartMosquitto(t, fleettest.MosquittoOptions{})
	bin := otokBin(t)
	dir := t.TempDir()
	env := append(os.Environ(), "OTOK_FLEET_BROKER="+m.URL)
	otok := func(wantCode int, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env, cmd.Dir = env, dir
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if d := time.Since(start); d > time.Second {
			t.Logf("otok %s took %s", strings.Join(args, " "), d.Round(time.Millisecond))
		}
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != wantCode {
			t.Fatalf("otok %s: exit %d, want %d\n%s", strings.Join(args, " "), code, wantCode, out)
		}
		return string(out)
	}
	out := otok(0, "fleet", "keys", "gen", "ctl")
	if !strings.Contains(out, "controller key") {
		t.Fatal(out)
	}
	otok(1, "fleet", "keys", "gen", "ctl") // never overwrites

	sim := exec.Command(bin, "fleet", "sim", "--devices", "20", "--groups", "all,ring{n%2}", "--trust", "ctl.pub")
	sim.Env, sim.Dir = env, dir
	so, _ := sim.StdoutPipe()
	sim.Stderr = os.Stderr
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Process.Kill(); sim.Wait() })
	sc := bufio.NewScanner(so)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "all 20 devices online") {
	}
	go func() {
		for sc.Scan() {
		}
	}()

	out = otok(0, "fleet", "ls", "--group", "ring1")
	if !strings.Contains(out, "10 devices, 10 online") || !strings.Contains(out, "sim1 ") {
		t.Fatalf("ls:\n%s", out)
	}
	out = otok(0, "fleet", "status", "sim3")
	if !strings.Contains(out, "device:   sim3 (online") || !strings.Contains(out, "groups:   all, ring1") {
		t.Fatalf("status:\n%s", out)
	}
	// options after DEV, as the per-device subcommands take them
	if out = otok(0, "fleet", "status", "sim3", "--json"); !strings.Contains(out, `"sim3"`) || !strings.HasPrefix(strings.TrimSpace(out), "{") {
		t.Fatalf("status DEV --json:\n%s", out)
	}
	otok(2, "fleet", "status", "sim3", "sim4")
	url := "https://images.example.net/busybox.otok"
	digest := fmt.Sprintf("%x", fleet.FakeDigest(url))
	otok(0, "fleet", "import", "--key", "ctl.key", "--digest", digest, "--name", "busybox", "sim3", url)
	otok(0, "fleet", "run", "--key", "ctl.key", "--name", "web", "sim3", "busybox", "httpd", "-f")
	if out = otok(0, "fleet", "logs", "--key", "ctl.key", "--tail", "2", "sim3", "web"); strings.Count(out, "\n") != 2 {
		t.Fatalf("logs:\n%s", out)
	}
	if out = otok(0, "fleet", "stats", "--key", "ctl.key", "sim3"); !strings.Contains(out, "web") {
		t.Fatalf("stats:\n%s", out)
	}
	otok(0, "fleet", "stop", "--key", "ctl.key", "sim3", "web")
	if out = otok(4, "fleet", "stop", "--key", "ctl.key", "sim3", "nope"); !strings.Contains(out, "not_found") { // agent's exit code for not_found
		t.Fatalf("stop missing:\n%s", out)
	}
	if out = otok(1, "fleet", "ps", "sim3"); !strings.Contains(out, "unauthorized") {
		t.Fatalf("unsigned:\n%s", out)
	}
	yaml := fmt.Sprintf("images:\n  - name: busybox\n    digest: sha256:%s\n    url: %s\ncontainers:\n  - name: ntp\n    image: busybox\n    command: [ntpd, -n]\n", digest, url)
	if err := os.WriteFile(filepath.Join(dir, "ring1.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	out = otok(0, "fleet", "deploy", "--key", "ctl.key", "--group", "ring1", "--wait", "--timeout", "20s", "ring1.yaml")
	if !strings.Contains(out, "version 1 published") || !strings.Contains(out, "10/10 reached") {
		t.Fatalf("deploy:\n%s", out)
	}
	if out = otok(0, "fleet", "watch", "--group", "ring1"); !strings.Contains(out, "10/10 reached") {
		t.Fatalf("watch:\n%s", out)
	}
	out = otok(0, "fleet", "ls", "--json")
	var rows []struct {
		Device  string            `json:"device"`
		Online  bool              `json:"online"`
		Running int               `json:"running"`
		Reached map[string]uint64 `json:"reached"`
		Desired map[string]uint64 `json:"desired"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 20 {
		t.Fatalf("ls --json: %v\n%s", err, out)
	}
	for _, r := range rows {
		ring1 := r.Device[len(r.Device)-1]%2 == 1
		if ring1 && (r.Reached["group/ring1"] != 1 || r.Desired["group/ring1"] != 1 || r.Running < 1) {
			t.Errorf("%+v", r)
		}
	}
	// A bad document: the devices refuse the unknown image digest per item.
	bad := strings.Replace(yaml, digest, strings.Repeat("0", 64), 1)
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(bad), 0o644)
	if out = otok(1, "fleet", "deploy", "--key", "ctl.key", "--group", "ring1", "--wait", "--timeout", "20s", "bad.yaml"); !strings.Contains(out, "10 devices failed") || !strings.Contains(out, "verify") {
		t.Fatalf("bad deploy:\n%s", out)
	}
	// Stopping the simulator publishes death for every device.
	sim.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- sim.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("sim did not stop on SIGTERM")
	}
	if out = otok(0, "fleet", "ls"); !strings.Contains(out, "20 devices, 0 online") {
		t.Fatalf("after sim stop:\n%s", out)
	}
}
