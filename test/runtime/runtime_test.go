package runtime_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otok/otok/runtime"
)

// isolationScript prints key=value facts seen from inside a container.
const isolationScript = `
echo pid=$$
echo hostname=$(hostname)
echo dev=$(ls /dev | tr '\n' ' ')
echo nprocs=$(ls /proc | grep -c '^[0-9]')
grep -E '^(CapEff|CapBnd|CapPrm|CapInh|CapAmb|Seccomp|NoNewPrivs):' /proc/self/status | tr -d '\t' | sed 's/:/=/'
mount -t tmpfs none /mnt 2>/dev/null; echo mount=$?
mount -t tmpfs none /mnt 2>&1 | grep -q 'permission denied' && echo mount_eperm=1
umount /proc 2>&1 | grep -q 'not permitted' && echo umount_eperm=1
reboot -f 2>&1 | grep -q 'not permitted' && echo reboot_eperm=1
insmod /bin/busybox 2>&1 | grep -q 'not permitted' && echo insmod_eperm=1
touch /sys/otok-test 2>&1 | grep -q 'Read-only' && echo sys_ro=1
(echo x > /proc/sys/kernel/hostname) 2>&1 | grep -q 'Read-only' && echo procsys_ro=1
echo links=$(ip -o link | wc -l)
echo linknames=$(ip -o link | awk -F': ' '{print $2}' | tr '\n' ' ')
cat /proc/kcore 2>/dev/null | head -c 1 | wc -c | sed 's/^/kcore_bytes=/'
echo root_rw=$(touch /otok-rw && echo yes)
echo uid=$(id -u)
[ -c /dev/net/tun ] && (exec 3<>/dev/net/tun) 2>/dev/null && echo tun=open
true
`

func capMask(names []string) string {
	var m uint64
	for _, n := range names {
		switch n {
		case "CHOWN":
			m |= 1 << 0
		case "DAC_OVERRIDE":
			m |= 1 << 1
		case "FOWNER":
			m |= 1 << 3
		case "FSETID":
			m |= 1 << 4
		case "KILL":
			m |= 1 << 5
		case "SETGID":
			m |= 1 << 6
		case "SETUID":
			m |= 1 << 7
		case "SETPCAP":
			m |= 1 << 8
		case "NET_BIND_SERVICE":
			m |= 1 << 10
		case "NET_RAW":
			m |= 1 << 13
		case "SYS_CHROOT":
			m |= 1 << 18
		case "AUDIT_WRITE":
			m |= 1 << 29
		case "SETFCAP":
			m |= 1 << 31
		case "NET_ADMIN":
			m |= 1 << 12
		}
	}
	return fmt.Sprintf("%016x", m)
}

func TestIsolation(t *testing.T) {
	e := newEnv(t)
	defaultMask := capMask(runtime.DefaultCaps)
	cases := []struct {
		name string
		args []string
		want map[string]string
	}{
		{"default", []string{"--hostname", "box"}, map[string]string{
			"pid": "1", "hostname": "box",
			"dev":    "fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero",
			"CapEff": defaultMask, "CapBnd": defaultMask, "CapPrm": defaultMask, "CapInh": defaultMask,
			"CapAmb": "0000000000000000", "Seccomp": "2", "NoNewPrivs": "1",
			"mount": "1", "mount_eperm": "1", "umount_eperm": "1", "reboot_eperm": "1", "insmod_eperm": "1",
			"sys_ro": "1", "procsys_ro": "1", "links": "1", "linknames": "lo", "kcore_bytes": "0",
			"root_rw": "yes", "uid": "0",
		}},
		{"cap-add-drop", []string{"--cap-add", "net_admin", "--cap-drop", "CAP_CHOWN"}, map[string]string{
			"CapEff": capMask(append(withoutCap(runtime.DefaultCaps, "CHOWN"), "NET_ADMIN")),
		}},
		{"read-only", []string{"--read-only"}, map[string]string{"root_rw": ""}},
		{"user", []string{"-u", "user"}, map[string]string{"uid": "1000", "CapEff": "0000000000000000", "CapBnd": defaultMask}},
		{"hostname-default", []string{"--name", "iso-named"}, map[string]string{"hostname": "iso-named", "tun": ""}},
		{"privileged", []string{"--privileged"}, map[string]string{"Seccomp": "0", "NoNewPrivs": "0", "mount": "0", "sys_ro": ""}},
		{"cap-sys-admin", []string{"--cap-add", "SYS_ADMIN"}, map[string]string{"Seccomp": "2", "mount": "0"}},
		{"device", []string{"--device", "/dev/net/tun"}, map[string]string{"tun": "open",
			"dev": "fd full mqueue net null ptmx pts random shm stderr stdin stdout tty urandom zero"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"run", "--rm"}, c.args...)
			script := isolationScript
			if c.name == "privileged" {
				// reboot() would work: in a pid namespace it ends the container.
				script = strings.Replace(script, "reboot -f", "true", 1)
			}
			args = append(args, img, "sh", "-c", script)
			out, errOut, code := e.run(args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
			}
			got := kv(out)
			// PID 1, the $(…) subshell, ls and grep at most: no host processes.
			if n, _ := strconv.Atoi(got["nprocs"]); n < 2 || n > 4 {
				t.Errorf("%d processes visible", n)
			}
			for k, want := range c.want {
				if got[k] != want {
					t.Errorf("%s = %q, want %q", k, got[k], want)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s\nstderr:\n%s", out, errOut)
			}
		})
	}
}

func withoutCap(caps []string, drop string) []string {
	var out []string
	for _, c := range caps {
		if c != drop {
			out = append(out, c)
		}
	}
	return out
}

func TestExitCodes(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"true", []string{"/bin/true"}, 0},
		{"exit7", []string{"sh", "-c", "exit 7"}, 7},
		{"false", []string{"false"}, 1},
		{"sigkill", []string{"--init", "sh", "-c", "kill -9 $$"}, 128 + 9},
		{"sigterm", []string{"--init", "sh", "-c", "kill -TERM $$"}, 128 + 15},
		{"pid1-sigkill-self-ignored", []string{"sh", "-c", "kill -9 $$; exit 3"}, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"run", "--rm"}
			args = append(args, c.args[:len(c.args)-len(cmdOf(c.args))]...)
			args = append(args, img)
			args = append(args, cmdOf(c.args)...)
			_, errOut, code := e.run(args...)
			if code != c.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, c.code, errOut)
			}
		})
	}
}

// cmdOf splits leading --flags from the command.
func cmdOf(args []string) []string {
	for i, a := range args {
		if !strings.HasPrefix(a, "--") {
			return args[i:]
		}
	}
	return nil
}

func TestSignalForwarded(t *testing.T) {
	e := newEnv(t)
	cmd := exec.Command(bin, "--state", e.state, "run", "--rm", "--init", "--name", "sig", img, "sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.waitStatus("sig", "running")
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 128+15 {
		t.Fatalf("otok run after SIGTERM: %v, want exit 143", err)
	}
}

func TestOOMKill(t *testing.T) {
	e := newEnv(t)
	_, errOut, code := e.run("run", "--rm", "--memory", "16M", "--memory-swap", "16M", img, "tail", "/dev/zero")
	if code != 137 || !strings.Contains(errOut, "OOM") {
		t.Fatalf("memory hog: exit %d stderr %q, want 137 and an OOM report", code, errOut)
	}
	e.must("run", "-d", "--name", "hog", "--memory", "16M", "--memory-swap", "16M", img, "tail", "/dev/zero")
	st := e.waitStatus("hog", "stopped")
	if st["oomKilled"] != true || !strings.Contains(fmt.Sprint(st["exitReason"]), "OOM") {
		t.Fatalf("inspect after OOM: oomKilled=%v reason=%v", st["oomKilled"], st["exitReason"])
	}
	if ps := e.must("ps", "-a"); !strings.Contains(ps, "OOM killed") {
		t.Errorf("ps -a does not show the OOM kill:\n%s", ps)
	}
	e.must("rm", "hog")
	e.cgroupGone("hog")
}

func TestPidsLimit(t *testing.T) {
	e := newEnv(t)
	// Start 100 sleepers with shell builtins only; the limit stops them.
	// (ash gives up on a failed fork: the subshell dies, PID 1 goes on.)
	// The container's own cgroup is /sys/fs/cgroup/pids on v1 and
	// /sys/fs/cgroup itself on v2 (the qemu guests).
	script := `(i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done) 2>/dev/null
d=/sys/fs/cgroup/pids; [ -e $d/pids.max ] || d=/sys/fs/cgroup
read n < $d/pids.current; echo pids=$n
read m < $d/pids.max; echo max=$m`
	out, errOut, code := e.run("run", "--rm", "--pids-limit", "20", img, "sh", "-c", script)
	got := kv(out)
	n, _ := strconv.Atoi(got["pids"])
	if code != 0 || got["max"] != "20" || n < 10 || n > 20 {
		t.Fatalf("pids limit: exit %d, %q (stderr %q)", code, out, errOut)
	}
	// With --init the reaper's threads are allowed on top (written by the
	// parent from the init stage's thread count).
	out, errOut, code = e.run("run", "--rm", "--init", "--pids-limit", "20", img, "sh", "-c", script)
	got = kv(out)
	n, _ = strconv.Atoi(got["pids"])
	m, _ := strconv.Atoi(got["max"])
	if code != 0 || m <= 20 || m > 40 || n < 10 || n > m {
		t.Fatalf("pids limit with --init: exit %d, %q (stderr %q)", code, out, errOut)
	}
}

func TestUserNamespace(t *testing.T) {
	// The container's host uid must be able to reach the state directory
	// (/run/otok is; a test temp dir is not).
	e := newEnvFor(t, true)
	out := e.must("run", "--rm", "--userns", "--net", "host", img, "sh", "-c", "echo uid=$(id -u); cat /proc/self/uid_map /proc/self/gid_map")
	// The image is idmapped: its root-owned files belong to container root,
	// which can change them (copied up into the writable layer). A kernel
	// that cannot idmap the image's filesystem (squashfs on 6.1, the qemu
	// guests) runs the container anyway, says so, and the files show as
	// nobody's.
	own, ownErr, code := e.run("run", "--rm", "--userns", "--net", "host", img, "sh", "-c", "echo etc_owner=$(stat -c %u /etc); touch /etc/new 2>/dev/null && echo etc_write=ok; true")
	got := kv(own)
	switch {
	case code != 0:
		t.Errorf("userns image ownership: exit %d, %q (stderr %q)", code, own, ownErr)
	case strings.Contains(ownErr, "cannot idmap the image"):
		t.Logf("this kernel cannot idmap the image: %s", strings.TrimSpace(ownErr))
		if got["etc_owner"] != "65534" || got["etc_write"] == "ok" {
			t.Errorf("userns without an idmapped image: %q", own)
		}
	case got["etc_owner"] != "0" || got["etc_write"] != "ok":
		t.Errorf("userns image ownership: %q (stderr %q)", own, ownErr)
	}
	if kv(out)["uid"] != "0" || strings.Count(strings.Join(strings.Fields(out), " "), fmt.Sprintf("0 %d %d", runtime.DefaultUserNSBase, runtime.DefaultUserNSSize)) != 2 {
		t.Fatalf("userns maps: %q", out)
	}
	e.must("run", "-d", "--name", "uns", "--userns", "--net", "host", img, "sleep", "30")
	e.waitStatus("uns", "running")
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.pid("uns")))
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("Uid:\t%d\t%d\t%d\t%d", runtime.DefaultUserNSBase, runtime.DefaultUserNSBase, runtime.DefaultUserNSBase, runtime.DefaultUserNSBase)
	if !strings.Contains(string(status), want) {
		t.Fatalf("container root on the host is not uid %d:\n%s", runtime.DefaultUserNSBase, status)
	}
	// exec'd processes join every namespace, the user namespace too.
	// Its cgroup too (v1: the memory hierarchy; v2: the one line).
	out = e.must("exec", "uns", "sh", "-c", "echo uid=$(id -u); for n in mnt pid user cgroup; do echo $n=$(readlink /proc/self/ns/$n); done; grep CapEff /proc/self/status | tr -d '\t' | sed 's/:/=/'\n"+
		"cg() { grep :memory: $1 || grep ^0:: $1; }; cg /proc/self/cgroup | sed 's/^[0-9]*:[a-z]*:/cg_self=/'; cg /proc/1/cgroup | sed 's/^[0-9]*:[a-z]*:/cg_init=/'")
	got = kv(out)
	if got["cg_self"] == "" || got["cg_self"] != got["cg_init"] {
		t.Errorf("exec in userns container: cgroup %q, init's %q", got["cg_self"], got["cg_init"])
	}
	for _, ns := range []string{"mnt", "pid", "user", "cgroup"} {
		want, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", e.pid("uns"), ns))
		if got[ns] != want {
			t.Errorf("exec in userns container: %s ns %q, init's %q", ns, got[ns], want)
		}
	}
	if got["uid"] != "0" || got["CapEff"] != capMask(runtime.DefaultCaps) {
		t.Errorf("exec in userns container: %q", out)
	}
}

func TestDetachedLogsExecStop(t *testing.T) {
	e := newEnv(t)
	if out := e.must("run", "-d", "--name", "web", "--memory", "32M", img, "sh", "-c", "echo hello-out; echo hello-err >&2; exec sleep 60"); strings.TrimSpace(out) != "web" {
		t.Fatalf("run -d printed %q", out)
	}
	e.waitStatus("web", "running")
	deadline := time.Now().Add(5 * time.Second)
	for {
		logs := e.must("logs", "web")
		if strings.Contains(logs, "hello-out") && strings.Contains(logs, "hello-err") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs: %q", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if tail := e.must("logs", "--tail", "1", "web"); strings.Count(tail, "\n") != 1 {
		t.Errorf("logs --tail 1: %q", tail)
	}
	// exec: same namespaces and cgroup as PID 1.
	out := e.must("exec", "web", "sh", "-c", `for n in mnt pid net uts ipc cgroup; do [ "$(readlink /proc/1/ns/$n)" = "$(readlink /proc/self/ns/$n)" ] && echo $n=same; done
cg() { grep :memory: $1 || grep ^0:: $1; } # v1 memory hierarchy, else v2
cg /proc/self/cgroup | sed 's/^[0-9]*:[a-z]*:/cg_self=/'; cg /proc/1/cgroup | sed 's/^[0-9]*:[a-z]*:/cg_init=/'
echo Seccomp=$(grep ^Seccomp: /proc/self/status | cut -f2)`)
	got := kv(out)
	for _, n := range []string{"mnt", "pid", "net", "uts", "ipc", "cgroup"} {
		if got[n] != "same" {
			t.Errorf("exec: %s namespace differs from PID 1's\n%s", n, out)
		}
	}
	if got["cg_self"] == "" || got["cg_self"] != got["cg_init"] || got["Seccomp"] != "2" {
		t.Errorf("exec: cgroup %q vs init %q, seccomp %q", got["cg_self"], got["cg_init"], got["Seccomp"])
	}
	if _, _, code := e.run("exec", "web", "sh", "-c", "exit 5"); code != 5 {
		t.Errorf("exec exit code %d, want 5", code)
	}
	if _, errOut, code := e.run("exec", "web", "nosuchcmd"); code != 127 || !strings.Contains(errOut, "nosuchcmd") {
		t.Errorf("exec nosuchcmd: %d %q", code, errOut)
	}
	if ps := e.must("ps"); !strings.Contains(ps, "web") || !strings.Contains(ps, "running") {
		t.Errorf("ps:\n%s", ps)
	}
	if st := e.must("stats", "web"); !strings.Contains(st, "web") || !strings.Contains(st, "32.0MiB") {
		t.Errorf("stats:\n%s", st)
	}
	// rm of a running container is refused without -f.
	if _, errOut, code := e.run("rm", "web"); code == 0 || !strings.Contains(errOut, "running") {
		t.Errorf("rm running: %d %q", code, errOut)
	}
	start := time.Now()
	e.must("stop", "-t", "1", "web") // sleep as PID 1 ignores SIGTERM: killed after 1 s
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("stop took %v", d)
	}
	st := e.waitStatus("web", "stopped")
	if st["exitCode"].(float64) != 137 {
		t.Errorf("exit code after stop: %v", st["exitCode"])
	}
	if logs := e.must("logs", "web"); !strings.Contains(logs, "hello-out") {
		t.Errorf("logs after exit: %q", logs)
	}
	if _, _, code := e.run("exec", "web", "true"); code == 0 {
		t.Error("exec into a stopped container succeeded")
	}
	e.must("rm", "web")
	e.cgroupGone("web")
	if _, _, code := e.run("inspect", "web"); code == 0 {
		t.Error("inspect after rm succeeded")
	}
}

func TestCreateStartKill(t *testing.T) {
	e := newEnv(t)
	e.must("create", "--name", "c1", img, "sh", "-c", "echo started; exec sleep 60")
	if st := e.inspect("c1"); st["status"] != "created" || st["pid"].(float64) <= 0 {
		t.Fatalf("after create: %v pid %v", st["status"], st["pid"])
	}
	if ps := e.must("ps", "-a"); !strings.Contains(ps, "created") {
		t.Errorf("ps -a:\n%s", ps)
	}
	e.must("start", "c1")
	e.waitStatus("c1", "running")
	e.must("kill", "-s", "KILL", "c1")
	st := e.waitStatus("c1", "stopped")
	if st["exitCode"].(float64) != 137 {
		t.Errorf("exit code after kill -s KILL: %v", st["exitCode"])
	}
	// A created container that is never started can be removed too.
	e.must("create", "--name", "c2", img, "true")
	e.must("rm", "c2") // created, never started: no -f needed
	e.must("rm", "c1")
}

func TestSystemContainer(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--system", "--name", "sys", img)
	e.waitStatus("sys", "running")
	deadline := time.Now().Add(10 * time.Second)
	for {
		ps, _, _ := e.run("exec", "sys", "ps", "-o", "pid,args")
		if strings.Contains(ps, "1 init") && strings.Contains(ps, "sleep 3600") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("busybox init did not start its inittab:\n%s", ps)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out := e.must("exec", "sys", "sh", "-c", "echo container=$(tr '\\0' '\\n' < /proc/1/environ | grep ^container= | cut -d= -f2); mount | grep -E ' on /(run|tmp) type tmpfs' | wc -l | sed 's/^/tmpfs=/'")
	if got := kv(out); got["container"] != "otok" || got["tmpfs"] != "2" {
		t.Errorf("system container environment: %q", out)
	}
	e.must("stop", "-t", "10", "sys") // SIGPWR: busybox init runs ::shutdown and halts
	st := e.waitStatus("sys", "stopped")
	if logs := e.must("logs", "sys"); !strings.Contains(logs, "otok-shutdown-ran") {
		t.Errorf("shutdown action did not run; logs:\n%s (exit %v)", logs, st["exitReason"])
	}
	e.must("rm", "sys")
}

func TestVolumesAndReadOnly(t *testing.T) {
	e := newEnv(t)
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "in.txt"), []byte("from-host"), 0o644)
	ro := t.TempDir()
	out := e.must("run", "--rm", "-v", host+":/data", "-v", ro+":/ro:ro", "-e", "FOO=bar", "-w", "/data", img, "sh", "-c",
		"echo in=$(cat in.txt); echo out > out.txt; touch /ro/x 2>/dev/null; echo ro=$?; echo foo=$FOO; echo cwd=$(pwd)")
	got := kv(out)
	if got["in"] != "from-host" || got["ro"] != "1" || got["foo"] != "bar" || got["cwd"] != "/data" {
		t.Errorf("volumes: %q", out)
	}
	if b, _ := os.ReadFile(filepath.Join(host, "out.txt")); strings.TrimSpace(string(b)) != "out" {
		t.Errorf("write through volume: %q", b)
	}
	// A directory rootfs works like an image.
	out = e.must("run", "--rm", rootfsDir(t), "sh", "-c", "echo dir=ok; touch /new && echo rw=ok")
	if got := kv(out); got["dir"] != "ok" || got["rw"] != "ok" {
		t.Errorf("directory rootfs: %q", out)
	}
	if _, err := os.Stat(filepath.Join(rootfsDir(t), "new")); err == nil {
		t.Error("write in a directory rootfs reached the directory (no overlay)")
	}
}

func TestTmpfsSizeCap(t *testing.T) {
	e := newEnv(t)
	out, _, _ := e.run("run", "--rm", "--tmpfs-size", "1M", img, "sh", "-c", "dd if=/dev/zero of=/big bs=64k count=64 2>&1 | grep -q 'No space' && echo capped=1")
	if kv(out)["capped"] != "1" {
		t.Errorf("writable layer not capped at 1M: %q", out)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	notSquash := filepath.Join(t.TempDir(), "notsquash.img")
	os.WriteFile(notSquash, []byte("this is not a squashfs image, just text\n"), 0o644)
	full, _ := os.ReadFile(img)
	truncated := filepath.Join(t.TempDir(), "truncated.sqfs")
	os.WriteFile(truncated, full[:len(full)/3], 0o644)
	e.must("run", "-d", "--name", "taken", img, "sleep", "60")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"missing image", []string{"/nonexistent/image.sqfs", "true"}, "/nonexistent/image.sqfs"},
		{"not squashfs", []string{notSquash, "true"}, "not a squashfs"},
		{"truncated", []string{truncated, "true"}, "truncated"},
		{"unknown user", []string{"-u", "nosuchuser", img, "true"}, "nosuchuser"},
		{"bad memory", []string{"--memory", "3x", img, "true"}, "--memory 3x"},
		{"bad cpus", []string{"--cpus", "-1", img, "true"}, "--cpus"},
		{"name in use", []string{"--name", "taken", img, "true"}, "taken"},
		{"command not found", []string{img, "/bin/nosuchcommand"}, "nosuchcommand"},
		{"command not in PATH", []string{img, "nosuchcommand"}, "not found"},
		{"bad name", []string{"--name", "bad/name", img, "true"}, "bad/name"},
		{"unknown cap", []string{"--cap-add", "sys_wizard", img, "true"}, "sys_wizard"},
		{"bad volume", []string{"-v", "relative:/x", img, "true"}, "relative:/x"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, _ := os.ReadDir(filepath.Join(e.state, "containers"))
			out, errOut, code := e.run(append([]string{"run", "--rm"}, c.args...)...)
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if code == 0 || len(lines) != 1 || !strings.Contains(errOut, c.want) {
				t.Errorf("exit %d, stderr %q (want one line naming %q), stdout %q", code, errOut, c.want, out)
			}
			after, _ := os.ReadDir(filepath.Join(e.state, "containers"))
			if len(after) != len(before) {
				t.Errorf("state dirs %d → %d", len(before), len(after))
			}
			mi, _ := os.ReadFile("/proc/self/mountinfo")
			if n := strings.Count(string(mi), e.state+"/images/"); n != 1 { // only "taken"'s image
				t.Errorf("%d image mounts, want 1 (the running container's)", n)
			}
			if n := strings.Count(string(mi), e.state+"/containers"); n != 0 {
				t.Errorf("%d mounts under the containers dir", n)
			}
		})
	}
	e.must("rm", "-f", "taken")
}

func TestGCAfterKill9(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "orphan", img, "sleep", "60")
	st := e.waitStatus("orphan", "running")
	monitor := int(st["parentPid"].(float64))
	pid := int(st["pid"].(float64))
	// kill -9 the monitor (otok) and the container: nobody records the exit.
	signalPid(monitor, syscall.SIGKILL)
	signalPid(pid, syscall.SIGKILL)
	time.Sleep(200 * time.Millisecond)
	out := e.must("gc")
	if !strings.Contains(out, "orphan") {
		t.Errorf("gc output: %q", out)
	}
	if st := e.inspect("orphan"); st["status"] != "stopped" {
		t.Errorf("after gc: %v", st["status"])
	}
	e.cgroupGone("orphan")
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), e.state+"/images/") {
		t.Errorf("image still mounted after gc")
	}
	e.must("rm", "orphan")
}

// TestKill9ForegroundRm: kill -9 of `otok run --rm` leaves nothing once
// the next otok command has run.
func TestKill9ForegroundRm(t *testing.T) {
	e := newEnv(t)
	cmd := exec.Command(bin, "--state", e.state, "run", "--rm", "--name", "fg", img, "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.waitStatus("fg", "running")
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.must("ps", "-a") // any command sweeps
		if _, _, code := e.run("inspect", "fg"); code != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the --rm container survived its killed otok")
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.cgroupGone("fg")
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), e.state+"/images/") {
		t.Error("image still mounted")
	}
}

func TestManyContainersShareImage(t *testing.T) {
	e := newEnv(t)
	names := []string{"s1", "s2", "s3"}
	for _, n := range names {
		e.must("run", "-d", "--name", n, img, "sleep", "60")
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if n := strings.Count(string(mi), e.state+"/images/"); n != 1 {
		t.Errorf("%d image mounts for 3 containers of one image, want 1", n)
	}
	sort.Strings(names)
	for _, n := range names {
		e.must("rm", "-f", n)
	}
}

// TestInteractiveTTY drives `run -it` and `exec -it` through a real pty
// (script(1) from util-linux): a working shell, the window size, the exit
// code.
func TestInteractiveTTY(t *testing.T) {
	e := newEnv(t)
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("script(1) not installed")
	}
	drive := func(cmdline, input string) string {
		t.Helper()
		cmd := exec.Command("script", "-qfc", "stty cols 91 rows 21; "+cmdline+"; echo otok-rc=$?", "/dev/null")
		pr, pw, _ := os.Pipe()
		cmd.Stdin = pr
		go func() {
			time.Sleep(500 * time.Millisecond)
			pw.Write([]byte(input))
			time.Sleep(2 * time.Second)
			pw.Close()
		}()
		out, _ := cmd.CombinedOutput()
		pr.Close()
		return strings.ReplaceAll(string(out), "\r", "")
	}
	base := fmt.Sprintf("%s --state %s", bin, e.state)
	out := drive(base+" run --rm -it --name tty1 "+img+" sh", "stty size; tty; echo inside-$((6*7))\nexit 3\n")
	for _, want := range []string{"21 91", "/dev/console", "inside-42", "otok-rc=3"} {
		if !strings.Contains(out, want) {
			t.Errorf("run -it: no %q in:\n%s", want, out)
		}
	}
	e.must("run", "-d", "--name", "tty2", img, "sleep", "60")
	out = drive(base+" exec -it tty2 sh", "stty size; echo exec-$((6*7))\nexit 4\n")
	for _, want := range []string{"21 91", "exec-42", "otok-rc=4"} {
		if !strings.Contains(out, want) {
			t.Errorf("exec -it: no %q in:\n%s", want, out)
		}
	}
	e.must("rm", "-f", "tty2")
}

// TestCgroupV2Unified runs containers on the cgroup v2 code path for real,
// using the (controller-less) v2 tree of a hybrid host: clone into the
// cgroup, cgroup namespace, cgroup2 mount inside, exec joining, removal.
func TestCgroupV2Unified(t *testing.T) {
	const root = "/sys/fs/cgroup/unified"
	var st syscall.Statfs_t
	if err := syscall.Statfs(root, &st); err != nil || st.Type != 0x63677270 {
		t.Skip("no cgroup v2 tree at " + root)
	}
	e := newEnv(t)
	e.extra = []string{"OTOK_CGROUP_ROOT=" + root}
	out := e.must("run", "--rm", "--name", "v2", img, "sh", "-c", "grep ^0:: /proc/self/cgroup; echo procs=$(head -1 /sys/fs/cgroup/cgroup.procs)")
	if !strings.Contains(out, "0::/\n") || kv(out)["procs"] != "1" {
		t.Errorf("inside a v2 cgroup: %q", out)
	}
	e.must("run", "-d", "--name", "v2d", img, "sleep", "30")
	procs, err := os.ReadFile(filepath.Join(root, "otok", runtime.CgroupName(e.state, "v2d"), "cgroup.procs"))
	if err != nil || strings.TrimSpace(string(procs)) != fmt.Sprint(e.pid("v2d")) {
		t.Errorf("v2 cgroup procs %q (%v), init %d", procs, err, e.pid("v2d"))
	}
	out = e.must("exec", "v2d", "sh", "-c", "grep ^0:: /proc/self/cgroup")
	if strings.TrimSpace(out) != "0::/" {
		t.Errorf("exec not in the container's v2 cgroup: %q", out)
	}
	e.must("rm", "-f", "v2d")
	// --pids-limit: pids.max is written by the parent (v2 refuses the
	// init's own write from inside its cgroup namespace). This host's v2
	// tree has no pids controller (v1 has it): a clear refusal, nothing
	// left behind; with the controller, the limit holds inside.
	ctrls, _ := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	script := `(i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done) 2>/dev/null
read n < /sys/fs/cgroup/pids.current; echo pids=$n
read m < /sys/fs/cgroup/pids.max; echo max=$m`
	out, errOut, code := e.run("run", "--rm", "--name", "v2p", "--pids-limit", "20", img, "sh", "-c", script)
	if slices.Contains(strings.Fields(string(ctrls)), "pids") {
		got := kv(out)
		n, _ := strconv.Atoi(got["pids"])
		if code != 0 || got["max"] != "20" || n < 10 || n > 20 {
			t.Errorf("v2 pids limit: exit %d, %q (stderr %q)", code, out, errOut)
		}
	} else if code == 0 || !strings.Contains(errOut, "pids controller") {
		t.Errorf("v2 pids limit without the pids controller: exit %d, %q (stderr %q)", code, out, errOut)
	}
	for _, n := range []string{"v2", "v2d", "v2p"} {
		if _, err := os.Stat(filepath.Join(root, "otok", runtime.CgroupName(e.state, n))); err == nil {
			t.Errorf("v2 cgroup %s left behind", n)
		}
	}
}
