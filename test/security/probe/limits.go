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
		{"exhaust_tmpfs_mounts", exhaustTmpfsMounts},
	}
}

// exhaustTmpfsMounts fills every writable tmpfs the container has (/dev/shm,
// /tmp, /run, …: each has its own size, larger together than the memory
// limit) from a child: their pages are RAM, charged to the container's
// memory cgroup, so all of them together must not hold more than the
// memory limit. The child prints one line per MiB written and is the OOM
// killer's first choice (oom_score_adj 1000) and unlinks each file as soon
// as it has it open, so its death frees them.
func exhaustTmpfsMounts() result {
	if cfg.memMB == 0 {
		return blocked("no -mem-mb given")
	}
	mounts := writableTmpfs()
	if len(mounts) == 0 {
		return blocked("no writable tmpfs mount besides the root")
	}
	cmd := exec.Command("/proc/self/exe", append([]string{"-sub", "fill-tmpfs", strconv.Itoa(cfg.memMB + 8)}, mounts...)...)
	out, err := cmd.Output()
	for _, m := range mounts {
		os.Remove(m + "/probe-fill-tmpfs")
	}
	per := map[string]int{}
	total := 0
	var last string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if m, ok := strings.CutPrefix(l, "M "); ok {
			per[m]++
			total++
		} else if l != "" {
			last = l
		}
	}
	var parts []string
	for _, m := range mounts {
		parts = append(parts, fmt.Sprintf("%s %d", m, per[m]))
	}
	how := "child exited: " + last
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			how = fmt.Sprintf("child killed by signal %d", int(ws.Signal()))
		}
	} else if err != nil {
		how = "child: " + err.Error()
	}
	if total > cfg.memMB {
		return allowed("held %d MiB in tmpfs mounts [%s], memory limit %d MiB; %s", total, strings.Join(parts, ", "), cfg.memMB, how)
	}
	return blocked("%d MiB in tmpfs mounts [%s MiB], then %s [memory limit %d MiB]", total, strings.Join(parts, ", "), how, cfg.memMB)
}

// writableTmpfs lists the container's read-write tmpfs mount points other
// than the root.
func writableTmpfs() []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 6 || len(g) < 1 || g[0] != "tmpfs" || f[4] == "/" || seen[f[4]] {
			continue
		}
		rw := false
		for _, o := range strings.Split(f[5], ",") {
			rw = rw || o == "rw"
		}
		if rw && syscall.Access(f[4], 2) == nil {
			seen[f[4]] = true
			out = append(out, f[4])
		}
	}
	return out
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
	case "fill-tmpfs":
		// args: cap MiB, then the mount points; one "M <mount>" line per
		// MiB written, mount after mount, until cap or every one is full.
		os.WriteFile("/proc/self/oom_score_adj", []byte("1000"), 0)
		capMB, _ := strconv.Atoi(args[0])
		buf := make([]byte, 1<<20)
		for i := range buf {
			buf[i] = byte(i*7 + 1)
		}
		n := 0
		for _, m := range args[1:] {
			f, err := os.OpenFile(m+"/probe-fill-tmpfs", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
			if err != nil {
				fmt.Printf("create %s: %v\n", m, err)
				continue
			}
			// Unlinked at once: the pages stay allocated (and charged)
			// while this process holds the file open and are freed the
			// moment it dies. A linked file would keep the cgroup at its
			// limit after the OOM kill, and the next allocation of the
			// probe itself would be killed too (seen on mips).
			os.Remove(m + "/probe-fill-tmpfs")
			defer f.Close()
			for n < capMB {
				if _, err := f.Write(buf); err != nil {
					fmt.Printf("%s full after its MiB: %v\n", m, err)
					break
				}
				n++
				fmt.Printf("M %s\n", m)
			}
		}
		fmt.Printf("done %d MiB\n", n)
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
