package runtime_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otok/otok/test/testenv"
)

// restartScript counts its runs in a volume, says whether the writable
// layer still holds the previous run's file, prints the DNS server the
// recorded network options give it, then waits.
const restartScript = `n=$(cat /data/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/n
echo run=$n
[ -e /layer-mark ] && echo layer=kept || echo layer=fresh
touch /layer-mark
echo dns=$(grep -o '192.0.2.53' /etc/resolv.conf)
exec sleep 60`

// TestStartStopped: `otok start` (no agent) creates a stopped container
// again from its recorded spec and starts it: same image, volume and
// network options, a new init, a new monitor and an empty writable layer.
func TestStartStopped(t *testing.T) {
	e := newEnv(t)
	data := t.TempDir()
	e.must("run", "-d", "--name", "rstweb", "-v", data+":/data", "--dns", "192.0.2.53", img, "sh", "-c", restartScript)
	e.waitStatus("rstweb", "running")
	pid1 := e.pid("rstweb")
	e.waitLogs("rstweb", "run=1")

	// Starting a running one is a one-line error.
	out, errOut, code := e.run("start", "rstweb")
	if code != 1 || strings.TrimSpace(errOut) != "otok: container rstweb: already running" || out != "" {
		t.Errorf("start of a running container: exit %d, stdout %q, stderr %q; want 1 and 'otok: container rstweb: already running'", code, out, errOut)
	}

	e.must("stop", "-t", "1", "rstweb")
	e.waitStatus("rstweb", "stopped")
	if out := e.must("start", "rstweb"); strings.TrimSpace(out) != "rstweb" {
		t.Errorf("start printed %q, want the name", out)
	}
	e.waitStatus("rstweb", "running")
	pid2 := e.pid("rstweb")
	if pid2 == pid1 {
		t.Errorf("started again with the same pid %d", pid1)
	}
	e.waitLogs("rstweb", "run=2")
	// The script's last line: the whole second run's output is in (a slow
	// guest had printed only the first lines when run=2 showed).
	logs := e.waitLogs("rstweb", "dns=")
	for _, want := range []string{"layer=fresh", "dns=192.0.2.53"} {
		if !strings.Contains(logs, want) {
			t.Errorf("second run's logs lack %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "layer=kept") {
		t.Errorf("the writable layer survived the stop:\n%s", logs)
	}
	if b, _ := os.ReadFile(filepath.Join(data, "n")); strings.TrimSpace(string(b)) != "2" {
		t.Errorf("volume counter %q, want 2", b)
	}

	// A container that exits by itself starts again too, and keeps its
	// exit code.
	e.must("run", "-d", "--name", "rstonce", "-v", data+":/data", img, "sh", "-c", "echo once-$(cat /data/n); echo x > /data/n; exit 3")
	if st := e.waitStatus("rstonce", "stopped"); st["exitCode"].(float64) != 3 {
		t.Errorf("once: exit code %v (reason %q, status %v), want 3", st["exitCode"], st["exitReason"], st["status"])
		e.diagnose("rstonce")
	}
	os.WriteFile(filepath.Join(data, "n"), []byte("second\n"), 0o644)
	e.must("start", "rstonce")
	if !testenv.Poll(20*time.Second, func() bool {
		o, _, _ := e.run("logs", "rstonce")
		return strings.Contains(o, "once-second")
	}) {
		o, _, _ := e.run("logs", "rstonce")
		t.Errorf("once: logs after start lack the second run:\n%s", o)
	}
	if st := e.waitStatus("rstonce", "stopped"); st["exitCode"].(float64) != 3 {
		t.Errorf("once: second exit code %v, want 3", st["exitCode"])
	}

	// rm cleans everything; a removed container cannot be started.
	e.must("rm", "-f", "rstweb", "rstonce")
	e.cgroupGone("rstweb")
	e.cgroupGone("rstonce")
	if !testenv.Poll(5*time.Second, func() bool { return len(e.leftovers()) == 0 }) {
		t.Errorf("leftovers after rm:\n  %s", strings.Join(e.leftovers(), "\n  "))
	}
	out, errOut, code = e.run("start", "rstweb")
	if code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "container rstweb: no such container") {
		t.Errorf("start of a removed container: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestStartCreatedThenAgain: create + start, then start once more after
// it stopped.
func TestStartCreatedThenAgain(t *testing.T) {
	e := newEnv(t)
	e.must("create", "--name", "rstc", img, "sh", "-c", "echo hi-$$; exec sleep 60")
	e.must("start", "rstc")
	e.waitStatus("rstc", "running")
	pid1 := e.pid("rstc")
	e.waitLogs("rstc", "hi-1")
	e.must("kill", "rstc")
	e.waitStatus("rstc", "stopped")
	e.must("start", "rstc")
	e.waitStatus("rstc", "running")
	if pid2 := e.pid("rstc"); pid2 == pid1 {
		t.Errorf("same pid %d after start", pid1)
	}
	e.waitLogs("rstc", "hi-1")
	e.must("rm", "-f", "rstc")
}

// TestStartStoppedFails: when the container cannot be created again (its
// volume is gone), start fails with one line and the stopped container
// stays as it was, removable.
func TestStartStoppedFails(t *testing.T) {
	e := newEnv(t)
	vol := filepath.Join(t.TempDir(), "vol")
	os.Mkdir(vol, 0o755)
	e.must("run", "-d", "--name", "rstvol", "-v", vol+":/data", img, "sh", "-c", "echo first; exec sleep 60")
	e.waitStatus("rstvol", "running")
	e.waitLogs("rstvol", "first")
	e.must("stop", "-t", "1", "rstvol")
	before := e.waitStatus("rstvol", "stopped")
	os.Remove(vol)
	out, errOut, code := e.run("start", "rstvol")
	if code != 1 || strings.TrimSpace(errOut) != "otok: container rstvol: volume "+vol+": no such file or directory" {
		t.Errorf("start with its volume gone: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if st := e.waitStatus("rstvol", "stopped"); st["exitCode"] != before["exitCode"] || st["finished"] != before["finished"] {
		t.Errorf("after a failed start: exit %v finished %v, want the first run's %v %v", st["exitCode"], st["finished"], before["exitCode"], before["finished"])
	}

	// Fails after the old record was moved aside (the image is no longer
	// a squashfs): the record is put back.
	cp := filepath.Join(t.TempDir(), "img.sqfs")
	if b, err := os.ReadFile(img); err != nil || os.WriteFile(cp, b, 0o644) != nil {
		t.Fatal(err)
	}
	e.must("run", "-d", "--name", "rstimg", cp, "sh", "-c", "echo first; exec sleep 60")
	e.waitStatus("rstimg", "running")
	e.must("stop", "-t", "1", "rstimg")
	before = e.waitStatus("rstimg", "stopped")
	os.WriteFile(cp, []byte("not a squashfs"), 0o644)
	out, errOut, code = e.run("start", "rstimg")
	if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, cp) {
		t.Errorf("start with its image broken: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	t.Logf("start with its image broken: %s", strings.TrimSpace(errOut))
	if st := e.waitStatus("rstimg", "stopped"); st["exitCode"] != before["exitCode"] || st["finished"] != before["finished"] {
		t.Errorf("after a failed start: exit %v finished %v, want the first run's %v %v", st["exitCode"], st["finished"], before["exitCode"], before["finished"])
	}
	if ents, _ := os.ReadDir(filepath.Join(e.state, "containers")); len(ents) != 2 {
		t.Errorf("state after failed starts: %v, want rstvol and rstimg", ents)
	}
	e.must("rm", "rstvol", "rstimg")
	e.cgroupGone("rstvol")
	e.cgroupGone("rstimg")
	if !testenv.Poll(5*time.Second, func() bool { return len(e.leftovers()) == 0 }) {
		t.Errorf("leftovers after rm:\n  %s", strings.Join(e.leftovers(), "\n  "))
	}
}

// waitLogs polls `otok logs NAME` until it contains want and returns it.
func (e *env) waitLogs(name, want string) string {
	e.t.Helper()
	var out string
	if !testenv.Poll(20*time.Second, func() bool {
		out, _, _ = e.run("logs", name)
		return strings.Contains(out, want)
	}) {
		e.t.Fatalf("logs %s: no %q in:\n%s", name, want, out)
	}
	return out
}
