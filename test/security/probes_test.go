package security

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Probe image: no busybox, only the static probe (so the same image works
// on every architecture and in the qemu guests), a setuid-root copy of it
// for the no_new_privs probe, and a symlink whose target is a host path
// (for the volume-target probe).
const volTargetEscape = "/tmp/otok-sec-volume-target-escape"

// probeImage returns a squashfs with /probe for goarch: the prebuilt
// testdata/generated/probe-<goarch>.sqfs when there is no Go toolchain
// (qemu guests) or OTOK_SECURITY_PREBUILT=1, else a fresh build.
func probeImage(t testing.TB, goarch string) string {
	t.Helper()
	pre := filepath.Join("testdata", "generated", "probe-"+goarch+".sqfs")
	_, noGo := exec.LookPath("go")
	if noGo != nil || os.Getenv("OTOK_SECURITY_PREBUILT") == "1" {
		if _, err := os.Stat(pre); err != nil {
			t.Skipf("no Go toolchain and no prebuilt %s (see test/security/README.md)", pre)
		}
		return pre
	}
	out := filepath.Join(t.TempDir(), "probe-"+goarch+".sqfs")
	if err := buildProbeImage(out, goarch); err != nil {
		t.Fatal(err)
	}
	return out
}

func buildProbeImage(out, goarch string) error {
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		return fmt.Errorf("mksquashfs not installed (apt-get install squashfs-tools)")
	}
	dir, err := os.MkdirTemp("", "otok-sec-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	root := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev", "root", "vol", "ro", "run"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.Chmod(filepath.Join(root, "tmp"), 0o1777)
	if err := goBuild(filepath.Join(root, "probe"), "github.com/otok/otok/test/security/probe", goarch); err != nil {
		return err
	}
	b, _ := os.ReadFile(filepath.Join(root, "probe"))
	os.WriteFile(filepath.Join(root, "probe-suid"), b, 0o755)
	os.Chmod(filepath.Join(root, "probe-suid"), 0o4755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/probe\nuser:x:1000:1000:user:/tmp:/probe\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nuser:x:1000:\n"), 0o644)
	os.Symlink(volTargetEscape, filepath.Join(root, "escape-link"))
	if o, err := exec.Command("mksquashfs", root, out, "-noappend", "-quiet", "-all-root", "-comp", "gzip").CombinedOutput(); err != nil {
		return fmt.Errorf("mksquashfs: %v\n%s", err, o)
	}
	return nil
}

// TestBuildProbeImages writes testdata/generated/probe-<arch>.sqfs for
// every target (for the qemu guests, which have no Go toolchain). Only
// with OTOK_SECURITY_BUILD_IMAGES=1.
func TestBuildProbeImages(t *testing.T) {
	if os.Getenv("OTOK_SECURITY_BUILD_IMAGES") != "1" {
		t.Skip("set OTOK_SECURITY_BUILD_IMAGES=1 to build the per-arch probe images")
	}
	os.MkdirAll(filepath.Join("testdata", "generated"), 0o755)
	for _, a := range []string{"mipsle", "mips", "arm", "arm64", "amd64"} {
		out := filepath.Join("testdata", "generated", "probe-"+a+".sqfs")
		if err := buildProbeImage(out, a); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s", out)
	}
}

// hostSide is what the host sets up for the probes to reach for.
type hostSide struct {
	dir                  string
	sleeper              *exec.Cmd
	hostMount            string
	abstract             string
	sockets              []string
	vol, roVol, secret   string
	ifaces               []string
	memMB, pids, tmpfsMB int
}

const sleeperMarker = "otok-sec-sleeper"

func newHostSide(t *testing.T) *hostSide {
	t.Helper()
	dir, err := os.MkdirTemp("", "otok-sec-host-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	h := &hostSide{dir: dir, memMB: 32, pids: 32, tmpfsMB: 16}

	// A process outside every container, found by its argv[0].
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h.sleeper = &exec.Cmd{Path: self, Args: []string{sleeperMarker}, Env: append(os.Environ(), "OTOK_SEC_SLEEPER=1")}
	if err := h.sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.sleeper.Process.Kill(); h.sleeper.Wait() })

	// A host-only mount point.
	h.hostMount = filepath.Join(dir, "otok-sec-hostmount-"+randHex(4))
	os.Mkdir(h.hostMount, 0o755)
	if err := unix.Mount("tmpfs", h.hostMount, "tmpfs", 0, "size=4k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(h.hostMount, unix.MNT_DETACH) })

	// Host sockets: an abstract one and path ones standing in for ubus and
	// the agent (the real default paths are probed too).
	h.abstract = "otok-sec-" + randHex(4)
	listen := func(addr string) {
		l, err := net.Listen("unix", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	listen("@" + h.abstract)
	for _, n := range []string{"ubus.sock", "otok.sock"} {
		p := filepath.Join(dir, n)
		listen(p)
		h.sockets = append(h.sockets, p)
	}

	// The host's interfaces (this test's netns).
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		// Per-namespace devices (lo, and the fallback tunnels sit0,
		// tunl0, ip6tnl0… every netns gets) have no hardware address:
		// compare name and MAC of the others.
		if mac := i.HardwareAddr.String(); mac != "" && strings.Trim(mac, "0:") != "" {
			h.ifaces = append(h.ifaces, i.Name+"="+mac)
		}
	}

	// A host secret and a volume full of links to it.
	h.secret = "otok-sec-secret-" + randHex(8)
	secretFile := filepath.Join(dir, "secret.txt")
	os.WriteFile(secretFile, []byte(h.secret+"\n"), 0o644)
	h.vol = filepath.Join(dir, "vol")
	h.roVol = filepath.Join(dir, "ro")
	os.Mkdir(h.vol, 0o755)
	os.Mkdir(h.roVol, 0o755)
	os.Symlink(secretFile, filepath.Join(h.vol, "abs-link"))
	os.Symlink(strings.Repeat("../", 12)+strings.TrimPrefix(secretFile, "/"), filepath.Join(h.vol, "rel-link"))
	os.Symlink(dir, filepath.Join(h.vol, "dir-link"))
	os.WriteFile(filepath.Join(h.roVol, "data"), []byte("read only\n"), 0o644)
	return h
}

func (h *hostSide) probeArgs(o *otok) []string {
	return []string{
		"-outside-pid", fmt.Sprint(h.sleeper.Process.Pid), "-marker", sleeperMarker,
		"-host-mount", h.hostMount, "-host-ifaces", strings.Join(h.ifaces, ";"),
		"-host-abstract", h.abstract,
		"-host-sockets", strings.Join(append(h.sockets, filepath.Join(o.state, "otok.sock")), ","),
		"-vol", "/vol", "-ro-vol", "/ro", "-secret", h.secret,
		"-mem-mb", fmt.Sprint(h.memMB), "-pids-limit", fmt.Sprint(h.pids), "-tmpfs-mb", fmt.Sprint(h.tmpfsMB),
	}
}

var probeLine = regexp.MustCompile(`^probe ([a-z0-9_]+): (blocked|allowed) \((.*)\)$`)

type probeResult struct {
	Mode    string `json:"mode"`
	Probe   string `json:"probe"`
	Verdict string `json:"verdict"`
	Detail  string `json:"detail"`
	Arch    string `json:"arch"`
}

// probeModes are the modes the issue names; strict ones fail on any
// allowed probe.
var probeModes = []struct {
	name   string
	flags  []string
	strict bool
}{
	{"default", nil, true},
	{"userns", []string{"--userns"}, true},
	{"cap-add NET_ADMIN", []string{"--cap-add", "NET_ADMIN"}, false},
}

// TestProbes runs the probe program in a container in each mode with real
// `otok run` and fails on any allowed probe in default and userns modes.
func TestProbes(t *testing.T) {
	requireRoot(t)
	img := probeImage(t, runtime.GOARCH)
	names := probeNames(t)
	for _, m := range probeModes {
		t.Run(strings.ReplaceAll(m.name, " ", "_"), func(t *testing.T) {
			o := newOtok(t)
			h := newHostSide(t)
			if m.name == "userns" {
				// Container root is host uid 100000: the volume is its own.
				os.Chown(h.vol, 100000, 100000)
			}
			name := "sec-probe-" + randHex(3)
			readOnly, pidsFlag := false, true
			build := func() []string {
				args := []string{"run", "--rm", "--name", name,
					"--memory", fmt.Sprintf("%dM", h.memMB), "--tmpfs-size", fmt.Sprintf("%dM", h.tmpfsMB),
					"-v", h.vol + ":/vol", "-v", h.roVol + ":/ro:ro"}
				if pidsFlag {
					args = append(args, "--pids-limit", fmt.Sprint(h.pids))
				}
				if readOnly {
					args = append(args, "--read-only")
				}
				args = append(args, m.flags...)
				args = append(args, img, "/probe")
				return append(args, h.probeArgs(o)...)
			}
			start := time.Now()
			out, errOut, code := o.run(5*time.Minute, build()...)
			// Known failures of otok run itself (not of the probes): work
			// around them, say so in the log and the report's notes.
			for try := 0; try < 2; try++ {
				switch {
				case m.name == "userns" && !readOnly && strings.Contains(errOut, "write /etc/hosts: value too large"):
					// netcfg writes /etc/hosts as host root into an
					// overlay mounted in the user namespace (EOVERFLOW:
					// uid 0 is not mapped there). A read-only root skips
					// that write.
					t.Logf("KNOWN BUG (netcfg writeEtcFile under --userns): %s; retrying with --read-only", strings.TrimSpace(errOut))
					record(t, "notes", map[string]string{"note": "userns mode ran with --read-only: `otok run --userns` fails with `write /etc/hosts: value too large for defined data type` (netcfg/resolv.go writeEtcFile creates the file as host root in an overlay mounted inside the user namespace)"})
					readOnly = true
				case pidsFlag && strings.Contains(errOut, "pids limit"):
					t.Logf("KNOWN BUG (--pids-limit here): %s; retrying without it (exhaust_pids is then not measured)", strings.TrimSpace(errOut))
					record(t, "notes", map[string]string{"note": fmt.Sprintf("%s: `otok run --pids-limit` failed (%s); probes ran without a pids limit", runtime.GOARCH, lastLine(errOut))})
					pidsFlag, h.pids = false, 0
				default:
					continue
				}
				out, errOut, code = o.run(5*time.Minute, build()...)
			}
			t.Logf("otok run (%s): exit %d in %v; stderr: %s", m.name, code, time.Since(start).Round(time.Millisecond), strings.TrimSpace(errOut))
			seen := map[string]bool{}
			allowedN := 0
			for _, l := range strings.Split(out, "\n") {
				mm := probeLine.FindStringSubmatch(strings.TrimSpace(l))
				if mm == nil {
					continue
				}
				seen[mm[1]] = true
				record(t, "probes", probeResult{m.name, mm[1], mm[2], mm[3], runtime.GOARCH})
				verdictLine(t, m.name, mm[1], mm[2], mm[3])
				if mm[2] == "allowed" {
					allowedN++
					if m.strict {
						t.Errorf("%s: probe %s allowed: %s", m.name, mm[1], mm[3])
					} else {
						t.Logf("%s: probe %s allowed: %s", m.name, mm[1], mm[3])
					}
				}
			}
			for _, n := range names {
				if !seen[n] {
					t.Errorf("%s: probe %s printed no verdict (exit %d)\nstdout:\n%s\nstderr:\n%s", m.name, n, code, out, errOut)
					record(t, "probes", probeResult{m.name, n, "missing", "no verdict printed", runtime.GOARCH})
					verdictLine(t, m.name, n, "missing", "no verdict printed")
				}
			}
			if len(seen) < 40 {
				t.Errorf("%s: only %d probe verdicts (exit %d): %s", m.name, len(seen), code, strings.TrimSpace(errOut))
			}
			t.Logf("%s: %d probes, %d allowed", m.name, len(seen), allowedN)
			var allowedNames []string
			for _, l := range strings.Split(out, "\n") {
				if mm := probeLine.FindStringSubmatch(strings.TrimSpace(l)); mm != nil && mm[2] == "allowed" {
					allowedNames = append(allowedNames, mm[1])
				}
			}
			// One machine-readable line per mode (report.sh collects these
			// from the qemu guests, whose records stay in the guest).
			t.Logf("SUMMARY arch=%s mode=%s probes=%d allowed=%d list=%s", runtime.GOARCH, strings.ReplaceAll(m.name, " ", "_"), len(seen), allowedN, strings.Join(allowedNames, ","))
			// Nothing of the host side was touched.
			if b, err := os.ReadFile(filepath.Join(h.dir, "secret.txt")); err != nil || string(b) != h.secret+"\n" {
				t.Errorf("host secret changed: %q %v", b, err)
			}
			if h.sleeper.ProcessState != nil || syscall.Kill(h.sleeper.Process.Pid, 0) != nil {
				t.Errorf("outside sleeper is gone")
			}
		})
	}
}

// probeNames lists the probes the program has (run on the host: -list
// does nothing else).
func probeNames(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "probe")
	if _, err := exec.LookPath("go"); err != nil {
		return nil
	}
	if err := goBuild(bin, "github.com/otok/otok/test/security/probe", runtime.GOARCH); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "-list").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))
}

// TestVolumeTargetSymlink: the image has /escape-link -> a host path; a
// volume mounted on it must land inside the container's root, never on
// the host path the link names.
func TestVolumeTargetSymlink(t *testing.T) {
	requireRoot(t)
	img := probeImage(t, runtime.GOARCH)
	o := newOtok(t)
	os.RemoveAll(volTargetEscape)
	t.Cleanup(func() { os.RemoveAll(volTargetEscape) })
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "marker"), []byte("vol\n"), 0o644)
	out, errOut, code := o.run(time.Minute, "run", "--rm", "--name", "sec-voltarget-"+randHex(3),
		"-v", src+":/escape-link", img, "/probe", "-only", "none")
	verdict, detail := "blocked", fmt.Sprintf("exit %d: %s", code, strings.TrimSpace(errOut+out))
	if _, err := os.Lstat(volTargetEscape); err == nil {
		verdict, detail = "allowed", volTargetEscape+" was created on the host"
	}
	for _, m := range mountsUnder(volTargetEscape) {
		verdict, detail = "allowed", "host path mounted: "+m
	}
	record(t, "probes", probeResult{"default", "volume_target_symlink", verdict, detail, runtime.GOARCH})
	verdictLine(t, "default", "volume_target_symlink", verdict, detail)
	if verdict == "allowed" {
		t.Errorf("volume target symlink: %s", detail)
	}
	t.Logf("volume on a symlink to a host path: %s (%s)", verdict, detail)
}

// verdictLine logs one machine-readable verdict: in the qemu guests the
// records (OTOK_SECURITY_OUT) stay in the guest, so report.sh collects
// these lines from the console instead.
func verdictLine(t *testing.T, mode, probe, verdict, detail string) {
	t.Logf("VERDICT arch=%s mode=%s probe=%s verdict=%s detail=%s", runtime.GOARCH, strings.ReplaceAll(mode, " ", "+"), probe, verdict, strings.ReplaceAll(detail, "\n", " "))
}
