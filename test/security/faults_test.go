package security

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otok/otok/test/testimage"
)

// trials is OTOK_SECURITY_TRIALS (make security-report: 100), else 10.
func trials() int {
	if n, err := strconv.Atoi(os.Getenv("OTOK_SECURITY_TRIALS")); err == nil && n > 0 {
		return n
	}
	return 10
}

// agentWorld is a running `otok agent` with a UCI file, its own state
// dir, containers from the busybox squashfs (by path) and a private
// bridge for network setup.
type agentWorld struct {
	t                      *testing.T
	bin, dir, state, store string
	keys, config           string
	img                    string
	bridge                 string
	prefix                 string
	cmd                    *exec.Cmd
	log                    *bytes.Buffer
	ubusSock               string // option ubus_socket, if set
}

func newAgentWorld(t *testing.T) *agentWorld {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	a := &agentWorld{t: t, bin: otokBin(t), dir: dir, state: filepath.Join(dir, "run"), store: filepath.Join(dir, "store"),
		keys: filepath.Join(dir, "keys"), config: filepath.Join(dir, "otok"), prefix: "k" + randHex(2)}
	os.MkdirAll(a.keys, 0o755)
	a.img = testimage.Build(t, t.TempDir())
	a.bridge = "otsec" + randHex(3)
	if out, err := exec.Command("ip", "link", "add", a.bridge, "type", "bridge").CombinedOutput(); err != nil {
		t.Fatalf("ip link add bridge: %v %s", err, out)
	}
	exec.Command("ip", "link", "set", a.bridge, "up").Run()
	t.Cleanup(a.cleanup)
	return a
}

func (a *agentWorld) name(s string) string { return a.prefix + "_" + s }

// configFor writes the UCI file for a set of container roles.
func (a *agentWorld) configFor(roles []string) {
	var b strings.Builder
	b.WriteString("config agent\n\toption stop_timeout 2\n")
	if a.ubusSock != "" {
		fmt.Fprintf(&b, "\toption ubus_socket '%s'\n", a.ubusSock)
	}
	b.WriteString("\n")
	for i, r := range roles {
		fmt.Fprintf(&b, "config container %s\n\toption image '%s'\n", a.name(r), a.img)
		b.WriteString("\tlist command /bin/sh\n\tlist command -c\n\tlist command 'trap \"exit 0\" TERM; while :; do sleep 1; done'\n")
		b.WriteString("\toption restart always\n")
		if strings.HasPrefix(r, "net") {
			fmt.Fprintf(&b, "\toption net 'bridge:%s'\n\tlist ip '10.213.77.%d/24'\n", a.bridge, 10+i)
		}
		b.WriteString("\n")
	}
	if err := os.WriteFile(a.config, []byte(b.String()), 0o644); err != nil {
		a.t.Fatal(err)
	}
}

func (a *agentWorld) otok(args ...string) *exec.Cmd {
	return exec.Command(a.bin, append([]string{"--state", a.state, "--store", a.store, "--keys", a.keys}, args...)...)
}

// start runs the agent and waits until it answers.
func (a *agentWorld) start() error {
	a.log = &bytes.Buffer{}
	a.cmd = a.otok("agent", "--config", a.config)
	a.cmd.Stderr = a.log
	a.cmd.Stdout = a.log
	if err := a.cmd.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if a.otok("agent", "status").Run() == nil {
			return nil
		}
		time.Sleep(30 * time.Millisecond)
	}
	// Where is it stuck? Go prints every goroutine's stack on SIGQUIT.
	a.cmd.Process.Signal(syscall.SIGQUIT)
	done := make(chan struct{})
	go func() { a.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		a.cmd.Process.Kill()
		<-done
	}
	a.cmd = nil
	return fmt.Errorf("agent did not answer within 15s; log (ends with its goroutines at SIGQUIT):\n%s", a.log.String())
}

func (a *agentWorld) kill9() {
	if a.cmd == nil {
		return
	}
	a.cmd.Process.Signal(syscall.SIGKILL)
	a.cmd.Wait()
	a.cmd = nil
}

// runningPid waits up to 10 s for container name to run and returns its
// init's pid; it fails the test with the agent's log if it never does.
func (a *agentWorld) runningPid(name string) int {
	a.t.Helper()
	for i := 0; i < 200; i++ {
		if s := a.ps()[name]; s.Status == "running" {
			return s.Pid
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.t.Fatalf("%s did not start; agent log:\n%s", name, a.log)
	return 0
}

type ctrState struct {
	Status string
	Pid    int
}

func (a *agentWorld) ps() map[string]ctrState {
	out, _ := a.otok("ps", "-a", "--json").Output()
	var list []psEntry
	json.Unmarshal(out, &list)
	m := map[string]ctrState{}
	for _, c := range list {
		m[c.Spec.Name] = ctrState{c.Status, c.Pid}
	}
	return m
}

// leaks lists what is left of containers that are not wanted.
func (a *agentWorld) leaks(unwanted []string) []string {
	var p []string
	links, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, n := range unwanted {
		for _, cg := range cgroupsOf(n) {
			p = append(p, "cgroup "+cg)
		}
		if bytes.Contains(links, []byte("otok:"+n+" ")) || bytes.Contains(links, []byte("otok:"+n+"\n")) {
			p = append(p, "link tagged otok:"+n)
		}
		if _, err := os.Stat(filepath.Join(a.state, n+".netns")); err == nil {
			p = append(p, "netns pin "+n+".netns")
		}
	}
	return p
}

func (a *agentWorld) cleanup() {
	// Empty config, reload through a fresh agent, then stop it: the agent
	// stops what it runs; `otok rm -f` and gc take the rest.
	a.kill9()
	a.configFor(nil)
	if a.start() == nil {
		deadline := time.Now().Add(20 * time.Second)
		for len(a.running()) > 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		a.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { a.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			a.kill9()
		}
		a.cmd = nil
	}
	for n := range a.ps() {
		a.otok("rm", "-f", n).Run()
	}
	a.otok("gc").Run()
	a.otok("net", "prune").Run()
	exec.Command("ip", "link", "del", a.bridge).Run()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left []string
		for _, m := range mountsUnder(a.dir) {
			left = append(left, "mount "+m)
		}
		var all []string
		for _, r := range []string{"sentinel", "c1", "c2", "net1"} {
			all = append(all, a.name(r))
		}
		left = append(left, a.leaks(all)...)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			a.t.Errorf("agent world leftovers (otok did not remove them; removed by the test):\n  %s", strings.Join(left, "\n  "))
			a.forceClean(all)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// forceClean removes what otok left behind so the machine is as it was:
// processes in the containers' cgroups, the cgroups, mounts under the
// installation.
func (a *agentWorld) forceClean(names []string) {
	for _, n := range names {
		for _, cg := range cgroupsOf(n) {
			if b, err := os.ReadFile(filepath.Join(cg, "cgroup.procs")); err == nil {
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil {
						syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			}
		}
	}
	time.Sleep(200 * time.Millisecond)
	for _, n := range names {
		for _, cg := range cgroupsOf(n) {
			os.Remove(cg)
		}
	}
	ms := mountsUnder(a.dir)
	for i := len(ms) - 1; i >= 0; i-- {
		syscall.Unmount(ms[i], syscall.MNT_DETACH)
	}
}

func (a *agentWorld) running() []string {
	var r []string
	for n, s := range a.ps() {
		if s.Status == "running" {
			r = append(r, n)
		}
	}
	sort.Strings(r)
	return r
}

type faultRec struct {
	Fault      string `json:"fault"`
	Trials     int    `json:"trials"`
	Violations int    `json:"violations"`
	Detail     string `json:"detail"`
}

// TestKill9Agent kills the agent with SIGKILL at random moments while it
// starts and stops containers and sets up their network (a reload with a
// new config), restarts it, and checks after each restart: the sentinel
// kept running with the same pid (re-adopted), the agent converges on the
// config (wanted containers run, others are gone), and nothing of the
// unwanted ones remains (cgroups, tagged links, netns pins, mounts).
func TestKill9Agent(t *testing.T) {
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("iproute2 not installed")
	}
	a := newAgentWorld(t)
	n := trials()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	sets := map[string][]string{
		"start":     {"sentinel", "c1", "c2"},
		"stop":      {"sentinel"},
		"net setup": {"sentinel", "net1"},
		"mixed":     {"sentinel", "c1", "net1"},
	}
	ops := []string{"start", "stop", "net setup", "mixed"}
	a.configFor(sets["stop"])
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	sentinel := a.name("sentinel")
	sentPid := a.runningPid(sentinel)
	baseMounts := len(mountsUnder(a.dir))
	maxMounts := baseMounts
	cur := "stop"
	violations := 0
	perOp := map[string]int{}
	var examples []string
	viol := func(i int, op, f string, args ...any) {
		violations++
		msg := fmt.Sprintf("trial %d (%s): %s", i, op, fmt.Sprintf(f, args...))
		if len(examples) < 5 {
			examples = append(examples, msg)
		}
		t.Error(msg)
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		op := ops[rng.Intn(len(ops))]
		if op == cur {
			op = ops[(rng.Intn(len(ops)-1)+1+indexOf(ops, cur))%len(ops)]
		}
		perOp[op]++
		want := sets[op]
		a.configFor(want)
		a.cmd.Process.Signal(syscall.SIGHUP)
		time.Sleep(time.Duration(rng.Int63n(int64(600 * time.Millisecond))))
		a.kill9()
		cur = op
		if err := a.start(); err != nil {
			viol(i, op, "agent restart: %v", err)
			continue
		}
		// Converge: wanted run, unwanted gone.
		wantSet := map[string]bool{}
		for _, r := range want {
			wantSet[a.name(r)] = true
		}
		var unwanted []string
		for _, r := range []string{"c1", "c2", "net1"} {
			if !wantSet[a.name(r)] {
				unwanted = append(unwanted, a.name(r))
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		var problem string
		for {
			ps := a.ps()
			problem = ""
			for w := range wantSet {
				if ps[w].Status != "running" {
					problem = fmt.Sprintf("%s is %q, want running", w, ps[w].Status)
				}
			}
			for _, u := range unwanted {
				if s, ok := ps[u]; ok && s.Status == "running" {
					problem = fmt.Sprintf("%s still running", u)
				}
			}
			if problem == "" {
				if l := a.leaks(unwanted); len(l) > 0 {
					problem = "leftovers: " + strings.Join(l, ", ")
				}
			}
			if problem == "" || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if problem != "" {
			viol(i, op, "%s; agent log tail: %s", problem, tail(a.log.String(), 3))
			// Count each trial once: clear what is stuck (not running)
			// so the next trial starts from a clean slate.
			for nm, s := range a.ps() {
				if s.Status != "running" || !wantSet[nm] {
					a.otok("rm", "-f", nm).Run()
				}
			}
			a.otok("gc").Run()
		}
		if s := a.ps()[sentinel]; s.Status != "running" || s.Pid != sentPid {
			viol(i, op, "sentinel %+v, want running pid %d", s, sentPid)
			if s.Status == "running" {
				sentPid = s.Pid
			}
		}
		m := len(mountsUnder(a.dir))
		if m > maxMounts {
			if m > baseMounts+2 {
				viol(i, op, "mounts under the installation grew to %d (baseline %d)", m, baseMounts)
			}
			maxMounts = m
		}
	}
	var opsDone []string
	for _, o := range ops {
		opsDone = append(opsDone, fmt.Sprintf("%s %d", o, perOp[o]))
	}
	detail := fmt.Sprintf("agent kill -9 during reload to: %s; %v", strings.Join(opsDone, ", "), time.Since(start).Round(time.Second))
	if len(examples) > 0 {
		detail += "; " + strings.Join(examples, "; ")
	}
	record(t, "faults", faultRec{"kill -9 agent during start/stop/net setup (re-adopt, converge, no leaks)", n, violations, detail})
	t.Logf("%d trials, %d violations: %s", n, violations, detail)
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return 0
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

// TestKill9CLI kills otok CLI processes (no agent involved) with SIGKILL
// at random moments of image import, image rm + gc, container stop and
// rm, and otok gc; after each kill the next commands must find a
// consistent store (every image verifies, no temp files, no half image)
// and the sentinel container untouched.
func TestKill9CLI(t *testing.T) {
	w := newWorld(t)
	n := trials()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	// A bigger image so that kills land mid-import.
	noise := filepath.Join(t.TempDir(), "noise")
	os.MkdirAll(filepath.Join(noise, "data"), 0o755)
	blob := make([]byte, 12<<20)
	rng.Read(blob)
	os.WriteFile(filepath.Join(noise, "data", "blob"), blob, 0o644)
	big := filepath.Join(w.dir, "big.otok")
	w.must("image", "build", "--from", noise, "--name", "big", "--version", "1", "--key", w.keyPath, "-o", big, "--comp", "gzip")
	t0 := time.Now()
	w.must("image", "import", big)
	importTime := time.Since(t0)
	w.must("image", "rm", "big")

	violations := 0
	perOp := map[string]int{}
	killed := map[string]int{}
	var examples []string
	viol := func(i int, op, f string, args ...any) {
		violations++
		msg := fmt.Sprintf("trial %d (%s): %s", i, op, fmt.Sprintf(f, args...))
		if len(examples) < 5 {
			examples = append(examples, msg)
		}
		t.Error(msg)
	}
	ops := []string{"import", "image rm+gc", "stop", "rm", "gc"}
	for i := 0; i < n; i++ {
		op := ops[rng.Intn(len(ops))]
		perOp[op]++
		var args []string
		var window time.Duration
		victim := "sec-victim-" + randHex(3)
		switch op {
		case "import":
			args, window = []string{"image", "import", big}, importTime
		case "image rm+gc":
			if _, _, c := w.run(time.Minute, "image", "import", big); c != 0 {
				viol(i, op, "setup import failed")
				continue
			}
			args, window = []string{"image", "rm", "big"}, 50*time.Millisecond
		case "stop", "rm":
			if _, e, c := w.run(time.Minute, "run", "-d", "--name", victim, "base", "sh", "-c", "trap 'sleep 0.3; exit 0' TERM; while :; do sleep 1; done"); c != 0 {
				viol(i, op, "setup run failed: %s", e)
				continue
			}
			args, window = []string{"stop", "-t", "2", victim}, 500*time.Millisecond
			if op == "rm" {
				args = []string{"rm", "-f", victim}
			}
		case "gc":
			args, window = []string{"gc"}, 100*time.Millisecond
		}
		cmd := exec.Command(w.bin, w.args(args...)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int63n(int64(window)*8/10 + 1)))
		cmd.Process.Signal(syscall.SIGKILL)
		if err := cmd.Wait(); err != nil {
			killed[op]++
		}
		// The next commands see a consistent installation.
		out, errOut, code := w.run(time.Minute, "image", "ls", "--json")
		if code != 0 {
			viol(i, op, "image ls after kill: %s", errOut)
			continue
		}
		var imgs []struct{ Name, Digest string }
		json.Unmarshal([]byte(out), &imgs)
		for _, im := range imgs {
			if _, e, c := w.run(time.Minute, "image", "inspect", "--verify", im.Digest); c != 0 {
				viol(i, op, "image %s does not verify: %s", im.Name, lastLine(e))
			}
		}
		if ents, _ := os.ReadDir(filepath.Join(w.store, "tmp")); len(ents) != 0 {
			viol(i, op, "temp files left after the next command: %d", len(ents))
		}
		// Clean up the trial's objects; each must go without force.
		if op == "stop" || op == "rm" {
			if _, e, c := w.run(time.Minute, "rm", "-f", victim); c != 0 && !strings.Contains(e, "no such") && !strings.Contains(e, "not found") {
				viol(i, op, "rm -f %s after kill: %s", victim, lastLine(e))
			}
			w.run(time.Minute, "gc")
			if cg := cgroupsOf(victim); len(cg) > 0 {
				viol(i, op, "cgroups left: %v", cg)
			}
		}
		for _, im := range imgs {
			if im.Name == "big" {
				if _, e, c := w.run(time.Minute, "image", "rm", "big"); c != 0 {
					viol(i, op, "image rm big: %s", lastLine(e))
				}
			}
		}
		if p := w.pidOf(w.sentinel); p != w.sentPid {
			viol(i, op, "sentinel pid %d, want %d", p, w.sentPid)
		}
	}
	var opsDone []string
	for _, o := range ops {
		opsDone = append(opsDone, fmt.Sprintf("%s %d (%d killed midway)", o, perOp[o], killed[o]))
	}
	detail := "CLI kill -9: " + strings.Join(opsDone, ", ")
	if len(examples) > 0 {
		detail += "; " + strings.Join(examples, "; ")
	}
	record(t, "faults", faultRec{"kill -9 otok CLI during import/image rm/stop/rm/gc (store verifies, no temp or half image, no leaks)", n, violations, detail})
	t.Logf("%d trials, %d violations: %s", n, violations, detail)
}

// TestStoreFullMidImport fills the store's filesystem while an import is
// streaming (from a pipe, so the moment is exact): the import must fail
// with a no-space error, remove its temp file and leave the store as it
// was; with the space back, the same import succeeds.
func TestStoreFullMidImport(t *testing.T) {
	w := newWorld(t)
	small := filepath.Join(w.dir, "small")
	os.MkdirAll(small, 0o755)
	if err := syscall.Mount("tmpfs", small, "tmpfs", 0, "size=12m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(small, syscall.MNT_DETACH) })
	noise := filepath.Join(t.TempDir(), "noise")
	os.MkdirAll(filepath.Join(noise, "data"), 0o755)
	blob := make([]byte, 5<<20)
	rand.New(rand.NewSource(2)).Read(blob)
	os.WriteFile(filepath.Join(noise, "data", "blob"), blob, 0o644)
	img := filepath.Join(w.dir, "five.otok")
	w.must("image", "build", "--from", noise, "--name", "five", "--version", "1", "--key", w.keyPath, "-o", img, "--comp", "gzip")
	data, _ := os.ReadFile(img)

	store := filepath.Join(small, "store")
	w.store = store
	w.must("df")
	before := treeDigest(store)
	cmd := exec.Command(w.bin, w.args("image", "import", "-")...)
	stdin, _ := cmd.StdinPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdin.Write(data[:1<<20])
	time.Sleep(300 * time.Millisecond)
	// Fill what is left but 64 KiB.
	var st syscall.Statfs_t
	syscall.Statfs(small, &st)
	free := int64(st.Bavail)*int64(st.Bsize) - 64<<10
	filler := filepath.Join(small, "filler")
	f, _ := os.Create(filler)
	f.Write(make([]byte, free))
	f.Close()
	stdin.Write(data[1<<20:])
	stdin.Close()
	err := cmd.Wait()
	rec := faultRec{Fault: "store fills up mid-import (tmpfs, import from a pipe)", Trials: 1}
	msg := lastLine(stderr.String())
	switch {
	case err == nil:
		rec.Violations, rec.Detail = 1, "import succeeded on a full filesystem"
	case !strings.Contains(stderr.String(), "no space") && !strings.Contains(stderr.String(), "space"):
		rec.Violations, rec.Detail = 1, "error does not say no space: "+msg
	default:
		rec.Detail = msg
	}
	if after := treeDigest(store); after != before {
		rec.Violations++
		rec.Detail += "; store changed: " + lineDiff(before, after)
	}
	if ents, _ := os.ReadDir(filepath.Join(store, "tmp")); len(ents) != 0 {
		rec.Violations++
		rec.Detail += fmt.Sprintf("; %d temp files left", len(ents))
	}
	os.Remove(filler)
	if _, e, c := w.run(time.Minute, "image", "import", img); c != 0 {
		rec.Violations++
		rec.Detail += "; import with space back failed: " + lastLine(e)
	} else {
		w.run(time.Minute, "image", "rm", "five")
	}
	record(t, "faults", rec)
	if rec.Violations > 0 {
		t.Error(rec.Detail)
	}
	t.Logf("store full mid-import: %s", rec.Detail)
}

// TestKill9AgentBetweenCreateAndStart is the deterministic form of what the
// random trials find: the agent is killed while a container it created is
// held before exec (its network being set up). The next agent must get
// that container running (not fail on "name already in use" forever).
func TestKill9AgentBetweenCreateAndStart(t *testing.T) {
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("iproute2 not installed")
	}
	a := newAgentWorld(t)
	a.configFor([]string{"sentinel"})
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	net1 := a.name("net1")
	caught := false
	for attempt := 0; attempt < 10 && !caught; attempt++ {
		a.configFor([]string{"sentinel", "net1"})
		a.cmd.Process.Signal(syscall.SIGHUP)
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			st := a.ps()[net1].Status
			if st == "created" {
				a.kill9()
				caught = true
				break
			}
			if st == "running" {
				break
			}
		}
		if !caught {
			// Too late this time: take it away again and retry.
			a.configFor([]string{"sentinel"})
			a.cmd.Process.Signal(syscall.SIGHUP)
			for i := 0; i < 100 && a.ps()[net1].Status != ""; i++ {
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	if !caught {
		t.Skip("never caught the container between create and start")
	}
	if err := a.start(); err != nil {
		t.Fatal(err)
	}
	ok := false
	for i := 0; i < 100 && !ok; i++ {
		ok = a.ps()[net1].Status == "running"
		time.Sleep(100 * time.Millisecond)
	}
	rec := faultRec{Fault: "kill -9 agent between create and start (deterministic)", Trials: 1}
	if !ok {
		rec.Violations = 1
		rec.Detail = fmt.Sprintf("%s is %q 10s after the agent restarted; agent log: %s", net1, a.ps()[net1].Status, tail(a.log.String(), 3))
		t.Error(rec.Detail)
	} else {
		rec.Detail = net1 + " running after the restart"
	}
	record(t, "faults", rec)
	t.Log(rec.Detail)
}
