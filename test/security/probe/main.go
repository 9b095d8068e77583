// Command probe tries, from inside a container, to escape it or to reach
// what it must not reach. Each probe prints one line:
//
//	probe NAME: blocked (detail)
//	probe NAME: allowed (detail)
//
// "allowed" means the attempt got past every permission check (the call
// succeeded, or failed only on its deliberately harmless arguments after
// the kernel's capability check). Probes never do lasting harm when they
// succeed: they open for writing without writing, write back the value
// they read, or use arguments the kernel rejects after its permission
// checks. The test in test/security builds it static for each
// architecture (CGO_ENABLED=0) and runs it with real `otok run`.
//
// Flags name what the host side set up: a process outside (-outside-pid,
// whose argv[0] is -marker), host-only paths and interfaces, volumes and
// the resource limits the container was given.
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
)

type config struct {
	outsidePid   int
	marker       string
	hostMount    string
	hostIfaces   string
	hostAbstract string
	hostSockets  string
	vol, roVol   string
	secret       string
	memMB        int
	pidsLimit    int
	tmpfsMB      int
	only         string
}

var cfg config

// result is one probe's verdict.
type result struct {
	allowed bool
	detail  string
}

func blocked(f string, a ...any) result { return result{false, fmt.Sprintf(f, a...)} }
func allowed(f string, a ...any) result { return result{true, fmt.Sprintf(f, a...)} }

type probe struct {
	name string
	fn   func() result
}

func main() {
	if len(os.Args) > 2 && os.Args[1] == "-sub" {
		os.Exit(sub(os.Args[2], os.Args[3:]))
	}
	flag.IntVar(&cfg.outsidePid, "outside-pid", 0, "pid (host namespace) of a process outside the container")
	flag.StringVar(&cfg.marker, "marker", "otok-sec-sleeper", "argv[0] of the outside process")
	flag.StringVar(&cfg.hostMount, "host-mount", "", "a mount point that exists only on the host")
	flag.StringVar(&cfg.hostIfaces, "host-ifaces", "", "host network interfaces as name=mac;name=mac…")
	flag.StringVar(&cfg.hostAbstract, "host-abstract", "", "an abstract unix socket name the host listens on")
	flag.StringVar(&cfg.hostSockets, "host-sockets", "", "comma-separated host unix socket paths (ubus, agent)")
	flag.StringVar(&cfg.vol, "vol", "", "a read-write volume in the container")
	flag.StringVar(&cfg.roVol, "ro-vol", "", "a read-only volume in the container")
	flag.StringVar(&cfg.secret, "secret", "", "content of a host-only file the volume's symlinks point at")
	flag.IntVar(&cfg.memMB, "mem-mb", 0, "the container's memory limit in MiB (0: skip)")
	flag.IntVar(&cfg.pidsLimit, "pids-limit", 0, "the container's pids limit (0: skip)")
	flag.IntVar(&cfg.tmpfsMB, "tmpfs-mb", 0, "the writable layer's size cap in MiB (0: skip)")
	flag.StringVar(&cfg.only, "only", "", "comma-separated probe names to run (default all)")
	list := flag.Bool("list", false, "print the probe names and exit")
	flag.Parse()

	probes := allProbes()
	if *list {
		for _, p := range probes {
			fmt.Println(p.name)
		}
		return
	}
	want := map[string]bool{}
	for _, n := range strings.Split(cfg.only, ",") {
		if n != "" {
			want[n] = true
		}
	}
	nAllowed := 0
	for _, p := range probes {
		if len(want) > 0 && !want[p.name] {
			continue
		}
		r := run(p)
		verdict := "blocked"
		if r.allowed {
			verdict = "allowed"
			nAllowed++
		}
		fmt.Printf("probe %s: %s (%s)\n", p.name, verdict, oneLine(r.detail))
	}
	fmt.Printf("probes done: %d allowed\n", nAllowed)
}

// run guards a probe against panics (a panic is reported, not hidden).
func run(p probe) (r result) {
	defer func() {
		if e := recover(); e != nil {
			r = allowed("probe panicked: %v", e)
		}
	}()
	return p.fn()
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, ")", "]")
	return strings.ReplaceAll(s, "(", "[")
}

func allProbes() []probe {
	ps := append(syscallProbes(), fileProbes()...)
	ps = append(ps, nsProbes()...)
	ps = append(ps, volumeProbes()...)
	ps = append(ps, limitProbes()...)
	seen := map[string]bool{}
	for _, p := range ps {
		if seen[p.name] {
			panic("duplicate probe " + p.name)
		}
		seen[p.name] = true
	}
	return ps
}

// Names lists every probe (for tests that check coverage).
func Names() []string {
	var n []string
	for _, p := range allProbes() {
		n = append(n, p.name)
	}
	sort.Strings(n)
	return n
}
