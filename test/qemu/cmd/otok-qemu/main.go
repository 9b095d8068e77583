// Command otok-qemu is `make test-qemu`: it boots every emulated router
// (mipsel, mips, armhf, arm64), runs otok's lifecycle scenario in each and
// then the system test packages through the go test -exec wrapper, and
// prints one result line per arch and step:
//
//	qemu armhf check: ok (…)
//	qemu mips import: skip (otok image not implemented yet)
//	qemu arm64 test ./runtime: FAIL (…) + the console tail
//
// followed by timings and the benchmark table. Exit status: 0 all passed,
// 1 an otok step or test failed, 3 only infrastructure problems (download,
// kernel build, qemu missing), reported as such.
//
// Environment (the make variables of the same name):
//
//	QEMU_ARCHES  arches to run (default "mipsel mips armhf arm64")
//	QEMU_PKGS    packages for the -exec wrapper (default: the system test
//	             packages that exist; "none" to skip)
//	QEMU_SCENARIO=0  skip the lifecycle scenario
//	QEMU_JOBS    guests booted at once (default 3 on this 2-core machine:
//	             the guests wait — timeouts, DHCP, sleeps — about half of
//	             the time, measured 43-48% CPU use with 2 at a time)
//	QEMU_TIMEOUT the scenario guest's time limit (default 15m)
//	OTOK_QEMU_CACHE  download and kernel cache (default /var/cache/otok-qemu)
//	OTOK_DIST    make cross output (default dist)
//	QEMU_LOGS    where full console logs go (default $OTOK_DIST/qemu-logs)
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/otok/otok/test/qemu"
)

// defaultPkgs are the packages with root/namespace tests, run in every
// guest: the system test packages and the unit packages whose tests probe
// the kernel. Pure unit packages (codecs, parsers) already run on mips and
// arm under qemu-user in `make unit-qemu`.
var defaultPkgs = []string{"./board/", "./runtime/", "./flash/", "./netcfg/", "./agent/",
	"./test/runtime/", "./test/flash/", "./test/netcfg/", "./test/agent/"}

type archRun struct {
	arch       *qemu.Arch
	guest      *qemu.Guest
	prepErr    error
	prepTime   time.Duration
	scenWall   time.Duration
	pkgWall    time.Duration
	initAt     time.Duration
	guestUp    time.Duration
	guestReady time.Duration
	bench      map[string]string
	lines      []string // result lines (printed as they come, kept for the summary)
}

type driver struct {
	repo, dist, work, logs, cache string
	hostOtok                      string
	mu                            sync.Mutex
	fails, infra                  int
	out                           io.Writer
}

func main() {
	os.Exit(run())
}

func env(k, def string) string {
	if v := strings.TrimSpace(os.Getenv(k)); v != "" {
		return v
	}
	return def
}

func run() int {
	start := time.Now()
	// Ctrl-C or a CI timeout: stop the guests (Run kills qemu when ctx
	// ends) and still remove the scratch directory.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	repo, _ := os.Getwd()
	d := &driver{repo: repo, out: os.Stdout, cache: qemu.DefaultCache()}
	d.dist, _ = filepath.Abs(env("OTOK_DIST", "dist"))
	d.logs, _ = filepath.Abs(env("QEMU_LOGS", filepath.Join(d.dist, "qemu-logs")))
	arches, err := qemu.ParseArches(os.Getenv("QEMU_ARCHES"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "otok-qemu:", err)
		return 2
	}
	jobs, _ := strconv.Atoi(env("QEMU_JOBS", "3"))
	if jobs < 1 {
		jobs = 1
	}
	work, err := os.MkdirTemp("", "otok-qemu-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "otok-qemu:", err)
		return 2
	}
	defer os.RemoveAll(work)
	d.work = work
	_ = os.MkdirAll(d.logs, 0o755)
	d.hostOtok = filepath.Join(d.dist, "otok-amd64")
	if _, err := os.Stat(d.hostOtok); err != nil {
		d.hostOtok = filepath.Join(d.dist, "otok")
	}
	d.printf("qemu: arches %s, %d at a time, cache %s, logs %s\n", names(arches), jobs, d.cache, d.logs)

	runs := make([]*archRun, len(arches))
	for i, a := range arches {
		runs[i] = &archRun{arch: a, bench: map[string]string{}}
	}
	// Prepare: mips first and on its own (its kernel build, when cold,
	// dominates), the Debian arches one after the other meanwhile.
	var wg sync.WaitGroup
	prep := func(r *archRun) {
		t := time.Now()
		r.guest, r.prepErr = qemu.PrepareOrLoad(ctx, qemu.PrepareOptions{Arch: r.arch, Repo: d.repo, Dist: d.dist, Cache: d.cache, Work: d.work,
			Log: func(f string, a ...any) { d.printf("qemu %s prepare: %s\n", r.arch.Name, fmt.Sprintf(f, a...)) }})
		r.prepTime = time.Since(t)
		if r.prepErr != nil {
			d.result(r, "prepare", "FAIL", r.prepErr.Error(), qemu.IsInfra(r.prepErr))
		} else {
			d.result(r, "prepare", "ok", fmt.Sprintf("kernel %s (%v)", r.guest.KVer, r.prepTime.Round(100*time.Millisecond)), false)
		}
	}
	sem := make(chan struct{}, jobs)
	ready := make([]chan struct{}, len(runs))
	for i := range runs {
		ready[i] = make(chan struct{})
	}
	go func() {
		for i, r := range runs {
			if r.arch.Name == "mips" {
				go func(i int, r *archRun) { prep(r); close(ready[i]) }(i, r)
			}
		}
		for i, r := range runs {
			if r.arch.Name != "mips" {
				prep(r)
				close(ready[i])
			}
		}
	}()
	pkgs := d.packages()
	// Scenario and packages of an arch are separate tasks, so the two
	// slots stay busy (the slowest arch no longer sets the total). Longest
	// first (measured: mipsel, then armhf/arm64 packages); mips last, as
	// its kernel may still be building on a cold cache.
	type task struct {
		i     int
		pkgs  bool
		group []string // packages of this task
		n     int      // group number, for the log name
	}
	// Each system package (test/...) of an arch is a task of its own and
	// the unit packages are one more: mipsel's system packages alone took
	// 9-14 min in one task, the critical path of the whole run. Longest
	// first (measured: test/agent, test/netcfg, test/flash, test/runtime).
	var groups [][]string
	var unitPkgs, sysPkgs []string
	for _, p := range pkgs {
		if strings.Contains(p, "/test/") {
			sysPkgs = append(sysPkgs, p)
		} else {
			unitPkgs = append(unitPkgs, p)
		}
	}
	cost := map[string]int{"agent": 4, "netcfg": 3, "flash": 2, "runtime": 1}
	sort.SliceStable(sysPkgs, func(a, b int) bool {
		return cost[filepath.Base(sysPkgs[a])] > cost[filepath.Base(sysPkgs[b])]
	})
	for _, p := range sysPkgs {
		groups = append(groups, []string{p})
	}
	if len(unitPkgs) > 0 {
		groups = append(groups, unitPkgs)
	}
	var tasks []task
	weight := map[string]int{"mipsel": 0, "armhf": 1, "arm64": 2, "mips": 3}
	for _, pk := range []bool{true, false} {
		for i := range runs {
			if pk && len(pkgs) == 0 || !pk && env("QEMU_SCENARIO", "1") == "0" {
				continue
			}
			if !pk {
				tasks = append(tasks, task{i: i})
				continue
			}
			for n, g := range groups {
				tasks = append(tasks, task{i: i, pkgs: true, group: g, n: n})
			}
		}
	}
	sort.SliceStable(tasks, func(a, b int) bool {
		wa, wb := weight[runs[tasks[a].i].arch.Name], weight[runs[tasks[b].i].arch.Name]
		if wa != wb && (wa == 3 || wb == 3) {
			return wa < wb
		}
		if tasks[a].pkgs != tasks[b].pkgs {
			return tasks[a].pkgs
		}
		if tasks[a].n != tasks[b].n {
			return tasks[a].n < tasks[b].n // the longest package of every arch first
		}
		return wa < wb
	})
	var skipOnce sync.Map
	for _, tk := range tasks {
		wg.Add(1)
		go func(tk task) {
			defer wg.Done()
			r := runs[tk.i]
			<-ready[tk.i]
			if r.prepErr != nil {
				if _, done := skipOnce.LoadOrStore(r, true); !done {
					d.skipAll(r, pkgs, "prepare failed")
				}
				return
			}
			sem <- struct{}{}
			defer func() { <-sem }()
			if tk.pkgs {
				d.packagesIn(ctx, r, tk.group, tk.n)
			} else {
				d.scenario(ctx, r)
			}
		}(tk)
		// Start tasks in order: each takes a slot before the next may.
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	d.summary(runs, time.Since(start))
	switch {
	case d.fails > 0:
		return 1
	case d.infra > 0:
		return 3
	}
	return 0
}

func names(as []*qemu.Arch) string {
	var n []string
	for _, a := range as {
		n = append(n, a.Name)
	}
	return strings.Join(n, " ")
}

func (d *driver) printf(f string, a ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, f, a...)
}

// result prints and records one line: qemu ARCH STEP: STATUS (DETAIL).
// Multi-line details (console tails) are indented below it.
func (d *driver) result(r *archRun, step, status, detail string, infra bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	first, rest, _ := strings.Cut(strings.TrimSpace(detail), "\n")
	if infra {
		status = "INFRA-ERROR"
		d.infra++
	} else if status == "FAIL" {
		d.fails++
	}
	line := fmt.Sprintf("qemu %s %s: %s", r.arch.Name, step, status)
	if first != "" {
		line += " " + first
	}
	r.lines = append(r.lines, line)
	fmt.Fprintln(d.out, line)
	if rest != "" {
		for _, l := range strings.Split(rest, "\n") {
			fmt.Fprintf(d.out, "    %s| %s\n", r.arch.Name, l)
		}
	}
}

func (d *driver) skipAll(r *archRun, pkgs []string, why string) {
	if env("QEMU_SCENARIO", "1") != "0" {
		d.result(r, "scenario", "skip", "("+why+")", false)
	}
	for _, p := range pkgs {
		d.result(r, "test "+shortPkg(p), "skip", "("+why+")", false)
	}
}

// scenario builds the test image and runs scenario/ in the guest.
func (d *driver) scenario(ctx context.Context, r *archRun) {
	a := r.arch
	dir := filepath.Join(d.work, a.Name, "scenario")
	_ = os.MkdirAll(dir, 0o755)
	bin := filepath.Join(dir, "scenario")
	if err := qemu.GoBuild(ctx, a, d.repo, "./test/qemu/scenario", bin); err != nil {
		d.result(r, "scenario", "FAIL", err.Error(), false)
		return
	}
	job := qemu.Job{Argv: []string{"/job/bin/scenario"}, Files: map[string]string{"/job/bin/scenario": bin}}
	if img, pub, err := r.guest.BuildTestImage(ctx, d.hostOtok, dir); err != nil {
		job.Files["/job/img/missing"] = "\x00" + oneLine(err.Error())
	} else {
		job.Files["/job/img/test.otok"] = img
		job.Files["/job/img/test.pub"] = pub
	}
	device := "qemu-" + a.Name
	fh, why := startFleetHost(d.hostOtok, dir, device)
	if fh == nil {
		job.Files["/job/fleet/missing"] = "\x00" + why
	} else {
		defer fh.stop()
		job.Files["/job/fleet/broker"] = "\x00" + fmt.Sprintf("tcp://10.0.2.2:%d", fh.port)
		job.Files["/job/fleet/done"] = "\x00" + fmt.Sprintf("10.0.2.2:%d", fh.donePort)
		job.Files["/job/fleet/device"] = "\x00" + device
	}
	logf, _ := os.Create(filepath.Join(d.logs, "scenario-"+a.Name+".log"))
	defer logf.Close()
	var since []string // console lines since the last marker
	console := lineWriter(func(l string) {
		fmt.Fprintln(logf, l)
		since = append(since, l)
		if len(since) > 60 {
			since = since[len(since)-60:]
		}
	})
	onMarker := func(m qemu.Marker) {
		fmt.Fprintln(logf, qemu.MarkerPrefix+m.Kind+" "+m.Args)
		switch m.Kind {
		case "init":
			f := append(strings.Fields(m.Args), "?", "?")
			d.result(r, "boot", "ok", fmt.Sprintf("(guest clock: /init at %s ms, ready at %s ms; %.1f s wall since qemu started)", f[0], f[1], time.Since(bootStart(r)).Seconds()), false)
		case "step":
			name, rest, _ := strings.Cut(m.Args, " ")
			status, detail, _ := strings.Cut(rest, " ")
			switch status {
			case "fail":
				d.result(r, name, "FAIL", detail+"\nconsole tail:\n"+strings.Join(since, "\n"), false)
			default:
				d.result(r, name, status, detail, false)
			}
			since = nil
		case "fleet-ready":
			if fh != nil {
				go func() { fmt.Fprintln(logf, "host: fleet verdict:", fh.check(ctx)) }()
			}
		case "bench":
			f := strings.Fields(m.Args)
			if len(f) >= 2 {
				r.bench[f[0]] = strings.Join(f[1:], " ")
			}
		}
	}
	setBootStart(r)
	timeout := 15 * time.Minute
	if t, err := time.ParseDuration(os.Getenv("QEMU_TIMEOUT")); err == nil {
		timeout = t
	}
	res, err := r.guest.Run(ctx, job, qemu.RunOptions{Timeout: timeout, Console: console, OnMarker: onMarker})
	if res != nil {
		r.scenWall, r.initAt, r.guestUp, r.guestReady = res.Wall, res.InitAt, res.GuestUp, res.GuestReady
	}
	switch {
	case err != nil:
		d.result(r, "scenario", "FAIL", err.Error(), qemu.IsInfra(err))
	case res.Exit != 0:
		d.result(r, "scenario", "FAIL", fmt.Sprintf("exit %d (failed steps above) in %v", res.Exit, res.Wall.Round(100*time.Millisecond)), false)
	default:
		d.result(r, "scenario", "ok", fmt.Sprintf("(%v)", res.Wall.Round(100*time.Millisecond)), false)
	}
}

var (
	bootMu     sync.Mutex
	bootStarts = map[*archRun]time.Time{}
)

func setBootStart(r *archRun) { bootMu.Lock(); bootStarts[r] = time.Now(); bootMu.Unlock() }
func bootStart(r *archRun) time.Time {
	bootMu.Lock()
	defer bootMu.Unlock()
	return bootStarts[r]
}

// packages expands QEMU_PKGS (or the defaults) to the packages that exist
// and have tests.
func (d *driver) packages() []string {
	spec := os.Getenv("QEMU_PKGS")
	if strings.TrimSpace(spec) == "none" {
		return nil
	}
	pats := strings.Fields(spec)
	if len(pats) == 0 {
		pats = defaultPkgs
	}
	var out []string
	seen := map[string]bool{}
	for _, p := range pats {
		cmd := exec.Command("go", "list", "-f", "{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}", p)
		cmd.Dir = d.repo
		b, err := cmd.Output()
		if err != nil {
			continue // not there (yet)
		}
		for _, l := range strings.Fields(string(b)) {
			if !seen[l] && !strings.Contains(l, "/test/qemu") {
				seen[l] = true
				out = append(out, l)
			}
		}
	}
	return out
}

var resultRE = regexp.MustCompile(`^(ok|FAIL|\?)\s+(\S+)\s*(.*)$`)

// packagesIn runs the packages' tests in the arch's guest with go test -exec.
func (d *driver) packagesIn(ctx context.Context, r *archRun, pkgs []string, n int) {
	t := time.Now()
	defer func() {
		d.mu.Lock()
		r.pkgWall += time.Since(t)
		d.mu.Unlock()
	}()
	wrapper := filepath.Join(d.work, "otok-qemu-exec")
	d.mu.Lock()
	if _, err := os.Stat(wrapper); err != nil {
		cmd := exec.Command("go", "build", "-o", wrapper, "./test/qemu/cmd/otok-qemu-exec")
		cmd.Dir = d.repo
		if out, err := cmd.CombinedOutput(); err != nil {
			d.mu.Unlock()
			d.result(r, "test", "FAIL", fmt.Sprintf("build wrapper: %v: %s", err, out), false)
			return
		}
	}
	d.mu.Unlock()
	args := append([]string{"test", "-count=1", "-p", "1", "-timeout", "15m", "-exec", wrapper}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = d.repo
	cmd.Env = append(os.Environ(), r.arch.Env()...)
	cmd.Env = append(cmd.Env, "OTOK_QEMU_WORK="+d.work, "OTOK_DIST="+d.dist, "OTOK_QEMU_TIMEOUT=12m")
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	name := "unit"
	if len(pkgs) == 1 && strings.Contains(pkgs[0], "/test/") {
		name = "test-" + filepath.Base(pkgs[0])
	}
	logf, _ := os.Create(filepath.Join(d.logs, fmt.Sprintf("test-%s-%s.log", r.arch.Name, name)))
	defer logf.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		var since []string
		for sc.Scan() {
			l := sc.Text()
			fmt.Fprintln(logf, l)
			m := resultRE.FindStringSubmatch(l)
			if m == nil || !strings.HasPrefix(m[2], "github.com/") {
				since = append(since, l)
				if len(since) > 60 {
					since = since[len(since)-60:]
				}
				continue
			}
			pkg := shortPkg(m[2])
			switch m[1] {
			case "ok":
				d.result(r, "test "+pkg, "ok", "("+strings.TrimSpace(m[3])+")", false)
			case "?":
				d.result(r, "test "+pkg, "skip", "(no test files)", false)
			default:
				infra := false
				for _, s := range since {
					if strings.HasPrefix(s, "otok-qemu-exec:") && strings.Contains(s, "infrastructure") {
						infra = true
					}
				}
				d.result(r, "test "+pkg, "FAIL", strings.TrimSpace(m[3])+"\noutput tail:\n"+strings.Join(since, "\n"), infra)
			}
			since = nil
		}
	}()
	err := cmd.Run()
	pw.Close()
	<-done
	if err != nil && ctx.Err() == nil {
		if _, ok := err.(*exec.ExitError); !ok {
			d.result(r, "test", "FAIL", err.Error(), true)
		}
	}
}

func (d *driver) summary(runs []*archRun, total time.Duration) {
	d.printf("\nqemu: timings (prepare includes fetch/kernel build when cold)\n")
	d.printf("  %-7s %10s %10s %10s\n", "arch", "prepare", "scenario", "packages (sum of its tasks)")
	for _, r := range runs {
		d.printf("  %-7s %10s %10s %10s\n", r.arch.Name, dur(r.prepTime), dur(r.scenWall), dur(r.pkgWall))
	}
	d.printf("  total wall %v\n", total.Round(time.Second))
	d.printf("\nqemu: benchmarks (TCG: compare across arches and commits only)\n")
	d.printf("  %-7s %12s %12s %12s %24s %18s\n", "arch", "kernel→init", "init ready", "wall→ready", "run --rm true (mean 20)", "agent RSS, 5 ctrs")
	for _, r := range runs {
		d.printf("  %-7s %12s %12s %12s %24s %18s\n", r.arch.Name, dur(r.guestUp), dur(r.guestReady), dur(r.initAt), orDash(r.bench["run-rm-true"]), orDash(r.bench["agent-rss-5"]))
	}
	d.printf("  kernel→init, init ready: guest clock (uptime) when /init started and when it had switched root,\n  loaded modules and set up the network; wall→ready: host time from starting qemu (load-sensitive)\n")
	var failed []string
	for _, r := range runs {
		for _, l := range r.lines {
			if strings.Contains(l, ": FAIL") || strings.Contains(l, ": INFRA-ERROR") {
				failed = append(failed, l)
			}
		}
	}
	sort.Strings(failed)
	if len(failed) > 0 {
		d.printf("\nqemu: %d failed:\n", len(failed))
		for _, l := range failed {
			d.printf("  %s\n", l)
		}
	} else {
		d.printf("\nqemu: all passed\n")
	}
}

func dur(t time.Duration) string {
	if t == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fs", t.Seconds())
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shortPkg names a package as in the result lines: ./runtime, ./test/flash.
func shortPkg(p string) string {
	return "./" + strings.TrimPrefix(strings.TrimPrefix(p, "github.com/otok/otok"), "/")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// lineWriter calls fn for each line written.
type lineWriter func(string)

func (f lineWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		f(l)
	}
	return len(p), nil
}
