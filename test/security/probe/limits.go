package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func limitProbes() []probe {
	return []probe{
		{"exhaust_memory", func() result {
			if cfg.memMB == 0 {
				return blocked("no -mem-mb given")
			}
			// A child touches twice the limit and reports its peak RSS;
			// the memory cgroup must kill it (or keep it under the limit).
			want := 2 * cfg.memMB
			cmd := exec.Command("/proc/self/exe", "-sub", "hog-mem", strconv.Itoa(want))
			out, err := cmd.Output()
			if err != nil {
				if ee, ok := err.(*exec.ExitError); ok {
					if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
						return blocked("child touching %d MiB killed by signal %d", want, int(ws.Signal()))
					}
				}
				return blocked("child touching %d MiB failed: %v %s", want, err, strings.TrimSpace(string(out)))
			}
			rss, _ := strconv.Atoi(strings.TrimSpace(string(out)))
			if rss > cfg.memMB*1024 {
				return allowed("child holds %d KiB resident, limit %d MiB", rss, cfg.memMB)
			}
			return blocked("child kept at %d KiB resident [limit %d MiB]", rss, cfg.memMB)
		}},
		{"exhaust_pids", func() result {
			if cfg.pidsLimit == 0 {
				return blocked("no -pids-limit given")
			}
			// Start sleepers until fork fails; more than the limit is a
			// hole. This process's own threads count too.
			var kids []*exec.Cmd
			defer func() {
				for _, k := range kids {
					k.Process.Kill()
					k.Wait()
				}
			}()
			var ferr error
			for i := 0; i < 2*cfg.pidsLimit; i++ {
				c := exec.Command("/proc/self/exe", "-sub", "sleep")
				if ferr = c.Start(); ferr != nil {
					break
				}
				kids = append(kids, c)
			}
			if len(kids) >= cfg.pidsLimit {
				return allowed("%d processes started, limit %d", len(kids), cfg.pidsLimit)
			}
			return blocked("fork failed after %d processes [limit %d]: %v", len(kids), cfg.pidsLimit, ferr)
		}},
		{"exhaust_rootfs_tmpfs", func() result {
			if cfg.tmpfsMB == 0 {
				return blocked("no -tmpfs-mb given")
			}
			// Write up to twice the cap into the writable layer.
			// The root (the writable layer) or, where the root is not
			// writable (a user namespace's unmapped root dir), /tmp.
			p := "/probe-fill"
			f, err := os.Create(p)
			if err != nil {
				p = "/tmp/probe-fill"
				if f, err = os.Create(p); err != nil {
					return blocked("create /probe-fill and %s: %v", p, err)
				}
			}
			defer os.Remove(p)
			defer f.Close()
			buf := make([]byte, 1<<20)
			for i := range buf {
				buf[i] = byte(i)
			}
			n := 0
			for n < 2*cfg.tmpfsMB {
				if _, err = f.Write(buf); err != nil {
					break
				}
				n++
			}
			if n > cfg.tmpfsMB {
				return allowed("wrote %d MiB into the writable layer, cap %d MiB", n, cfg.tmpfsMB)
			}
			return blocked("wrote %d MiB to %s, then %v [cap %d MiB]", n, p, errString(err), cfg.tmpfsMB)
		}},
	}
}

// sub runs a helper role in a child process (re-executed probe).
func sub(role string, args []string) int {
	switch role {
	case "pivot_root":
		err := syscall.PivotRoot(".", ".")
		r := denied("pivot_root(., .)", err)
		printSub(r)
	case "setuid":
		// Drop to uid 1000 and exec the setuid-root copy of this probe:
		// under no_new_privs its euid must stay 1000.
		if _, err := os.Stat("/probe-suid"); err != nil {
			printSub(blocked("no /probe-suid in the image: %v", err))
			return 0
		}
		cmd := exec.Command("/probe-suid", "-sub", "euid")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1000, Gid: 1000}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			printSub(blocked("cannot run the setuid binary as uid 1000: %v %s", err, strings.TrimSpace(string(out))))
			return 0
		}
		euid := strings.TrimSpace(string(out))
		if euid == "0" {
			printSub(allowed("setuid-root binary run by uid 1000 got euid 0"))
		} else {
			printSub(blocked("setuid-root binary run by uid 1000 kept euid %s", euid))
		}
	case "euid":
		fmt.Println(os.Geteuid())
	case "caps":
		b, _ := os.ReadFile("/proc/self/status")
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "CapEff:") {
				fmt.Println(l)
			}
		}
	case "hog-mem":
		mb, _ := strconv.Atoi(args[0])
		var keep [][]byte
		for i := 0; i < mb; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		fmt.Println(vmHWM())
		_ = keep
	case "sleep":
		time.Sleep(60 * time.Second)
	default:
		fmt.Fprintln(os.Stderr, "unknown role", role)
		return 2
	}
	return 0
}

func vmHWM() int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "VmHWM:") {
			fs := strings.Fields(sc.Text())
			n, _ := strconv.Atoi(fs[1])
			return n
		}
	}
	return 0
}

func printSub(r result) {
	v := "blocked"
	if r.allowed {
		v = "allowed"
	}
	fmt.Printf("%s %s\n", v, r.detail)
}

// subVerdict runs a role in a child and reads its verdict line.
func subVerdict(role string) result {
	out, err := exec.Command("/proc/self/exe", "-sub", role).CombinedOutput()
	s := strings.TrimSpace(string(out))
	v, d, _ := strings.Cut(s, " ")
	switch v {
	case "allowed":
		return allowed("%s", d)
	case "blocked":
		return blocked("%s", d)
	}
	return blocked("child for %s: %v %s", role, err, s)
}
