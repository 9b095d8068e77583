package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/otok/otok/agent"
	"github.com/otok/otok/runtime"
	"golang.org/x/sys/unix"
)

// ctrList is a repeatable string flag.
type ctrList []string

func (l *ctrList) String() string     { return strings.Join(*l, ",") }
func (l *ctrList) Set(v string) error { *l = append(*l, v); return nil }

// containerFlags are the options of `otok run` and `otok create`.
type containerFlags struct {
	name, hostname, workdir, user    string
	env, volumes, devices            ctrList
	capAdd, capDrop                  ctrList
	memory, memorySwap, tmpfsSize    string
	cpus                             string
	cpuShares, cpuWeight, pidsLim    int64
	userns, privileged, readOnly     bool
	init, system                     bool
	stopSignal, restart              string
	interactive, tty, it, rm, detach bool
	net                              *netOpts
}

func addContainerFlags(fs *flag.FlagSet, run bool) *containerFlags {
	f := &containerFlags{}
	fs.StringVar(&f.name, "name", "", "container `NAME` (default: generated)")
	fs.StringVar(&f.hostname, "hostname", "", "container host `NAME` (default: the container name)")
	fs.Var(&f.env, "e", "set environment `K=V` (repeatable)")
	fs.Var(&f.env, "env", "same as -e")
	fs.StringVar(&f.workdir, "w", "", "working `DIR` in the container")
	fs.StringVar(&f.user, "u", "", "run as `UID[:GID]` or user name from the image's /etc/passwd")
	fs.StringVar(&f.memory, "memory", "", "memory limit `SIZE` (e.g. 64M)")
	fs.StringVar(&f.memorySwap, "memory-swap", "", "memory+swap limit `SIZE` (-1 = unlimited swap)")
	fs.StringVar(&f.cpus, "cpus", "", "CPU quota in `CPUS` (e.g. 0.5)")
	fs.Int64Var(&f.cpuShares, "cpu-shares", 0, "relative CPU `SHARES` (v1 scale, 2-262144)")
	fs.Int64Var(&f.cpuWeight, "cpu-weight", 0, "relative CPU `WEIGHT` (v2 scale, 1-10000)")
	fs.Int64Var(&f.pidsLim, "pids-limit", 0, "maximum number of `N` processes")
	fs.Var(&f.capAdd, "cap-add", "add a `CAP`ability (repeatable, ALL)")
	fs.Var(&f.capDrop, "cap-drop", "drop a `CAP`ability (repeatable, ALL)")
	fs.BoolVar(&f.userns, "userns", false, fmt.Sprintf("user namespace: container root is host uid %d (ids %d-%d)", runtime.DefaultUserNSBase, runtime.DefaultUserNSBase, runtime.DefaultUserNSBase+runtime.DefaultUserNSSize-1))
	fs.BoolVar(&f.privileged, "privileged", false, "DANGEROUS: all capabilities, no seccomp, writable /sys — the container owns the host")
	fs.BoolVar(&f.readOnly, "read-only", false, "read-only root filesystem (no writable layer)")
	fs.StringVar(&f.tmpfsSize, "tmpfs-size", "16M", "size cap of the RAM-backed writable layer")
	fs.Var(&f.volumes, "v", "bind mount `HOST:CTR[:ro]` (repeatable)")
	fs.Var(&f.devices, "device", "add host device `PATH[:CTR]` (repeatable)")
	fs.BoolVar(&f.init, "init", false, "run otok's reaper as PID 1 (forwards signals, reaps zombies)")
	fs.BoolVar(&f.system, "system", false, "system container: the image's /sbin/init as PID 1")
	fs.StringVar(&f.stopSignal, "stop-signal", "", "signal for stop (default TERM; PWR for --system)")
	fs.StringVar(&f.restart, "restart", agent.RestartNo, "restart `POLICY`: no, on-failure[:N], always, unless-stopped (applied by the agent: needs 'otok agent' running, and -d for run)")
	fs.BoolVar(&f.interactive, "i", false, "keep stdin open")
	fs.BoolVar(&f.tty, "t", false, "allocate a terminal")
	fs.BoolVar(&f.it, "it", false, "same as -i -t")
	if run {
		fs.BoolVar(&f.rm, "rm", false, "remove the container when it exits")
		fs.BoolVar(&f.detach, "d", false, "run in the background; print the name")
	}
	f.net = addNetFlags(fs)
	return f
}

// parseSize parses "512", "64k", "16M", "1g" (binary units).
func parseSize(flagName, s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if s == "-1" {
		return -1, nil
	}
	mult := int64(1)
	num := strings.ToLower(s)
	num = strings.TrimSuffix(num, "b")
	if num != "" {
		switch num[len(num)-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		}
		if mult > 1 {
			num = num[:len(num)-1]
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, usagef("--%s %s: not a size (use e.g. 512k, 64M, 1G)", flagName, s)
	}
	return n * mult, nil
}

// parseSignal accepts "TERM", "SIGTERM", "15", "RTMIN+3".
func parseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return unix.Signal(n), nil
	}
	u := strings.ToUpper(s)
	if !strings.HasPrefix(u, "SIG") {
		u = "SIG" + u
	}
	if strings.HasPrefix(u, "SIGRTMIN+") {
		if n, err := strconv.Atoi(u[len("SIGRTMIN+"):]); err == nil && 34+n < 65 {
			return unix.Signal(34 + n), nil
		}
	}
	if sig := unix.SignalNum(u); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

func randomName(image string) string {
	var b [3]byte
	rand.Read(b[:])
	base := filepath.Base(image)
	base = strings.TrimSuffix(base, filepath.Ext(base))
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 32
		}
		return -1
	}, base)
	if clean == "" || len(clean) > 40 {
		clean = "c"
	}
	return clean + "-" + hex.EncodeToString(b[:])
}

// buildSpec turns the flags into a spec (without the rootfs path, which
// needs the image mounted, and the user, which needs its /etc/passwd).
func (f *containerFlags) buildSpec(src *rootfsSource, cmd []string) (*runtime.Spec, error) {
	if f.it {
		f.interactive, f.tty = true, true
	}
	s := &runtime.Spec{Name: f.name, Hostname: f.hostname}
	if s.Name == "" {
		s.Name = randomName(src.Ref)
	}
	if !runtime.ValidName(s.Name) {
		return nil, usagef("--name %q: use 1-64 of a-z A-Z 0-9 _ . - (starting with a letter or digit)", s.Name)
	}
	var err error
	r := &s.Resources
	if r.Memory, err = parseSize("memory", f.memory); err != nil {
		return nil, err
	}
	if r.Memory < 0 {
		return nil, usagef("--memory -1: not a size")
	}
	if r.MemorySwap, err = parseSize("memory-swap", f.memorySwap); err != nil {
		return nil, err
	}
	if f.cpus != "" {
		if r.CPUs, err = strconv.ParseFloat(f.cpus, 64); err != nil || r.CPUs <= 0 {
			return nil, usagef("--cpus %s: not a positive number", f.cpus)
		}
	}
	r.CPUShares, r.CPUWeight, r.PidsLimit = f.cpuShares, f.cpuWeight, f.pidsLim
	if s.Rootfs.TmpfsSize, err = parseSize("tmpfs-size", f.tmpfsSize); err != nil {
		return nil, err
	}
	s.Rootfs.ReadOnly = f.readOnly
	s.Rootfs.Image = src.Ref
	s.Privileged = f.privileged
	s.System = f.system
	for _, c := range f.capAdd {
		n, err := runtime.ParseCap(c)
		if err != nil {
			return nil, usagef("--cap-add: %v", err)
		}
		s.CapAdd = append(s.CapAdd, n)
	}
	for _, c := range f.capDrop {
		n, err := runtime.ParseCap(c)
		if err != nil {
			return nil, usagef("--cap-drop: %v", err)
		}
		s.CapDrop = append(s.CapDrop, n)
	}
	if f.stopSignal != "" {
		sig, err := parseSignal(f.stopSignal)
		if err != nil {
			return nil, usagef("--stop-signal: %v", err)
		}
		s.StopSignal = int(sig)
	}
	if f.userns {
		s.UserNS = &runtime.UserNS{HostUID: runtime.DefaultUserNSBase, HostGID: runtime.DefaultUserNSBase, Size: runtime.DefaultUserNSSize}
	}
	for _, v := range f.volumes {
		parts := strings.Split(v, ":")
		m := runtime.Mount{}
		switch {
		case len(parts) == 2:
		case len(parts) == 3 && (parts[2] == "ro" || parts[2] == "rw"):
			m.ReadOnly = parts[2] == "ro"
		default:
			return nil, usagef("-v %s: want HOST:CTR[:ro]", v)
		}
		m.Source, m.Target = parts[0], parts[1]
		if !filepath.IsAbs(m.Source) || !filepath.IsAbs(m.Target) {
			return nil, usagef("-v %s: both paths must be absolute", v)
		}
		if _, err := os.Stat(m.Source); err != nil {
			return nil, fmt.Errorf("volume %s: %w", m.Source, unwrapNotExist(err))
		}
		s.Mounts = append(s.Mounts, m)
	}
	for _, d := range f.devices {
		host, ctr, _ := strings.Cut(d, ":")
		var st unix.Stat_t
		if err := unix.Stat(host, &st); err != nil {
			return nil, fmt.Errorf("device %s: %w", host, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFCHR && st.Mode&unix.S_IFMT != unix.S_IFBLK {
			return nil, fmt.Errorf("device %s: not a device node", host)
		}
		s.Devices = append(s.Devices, runtime.Device{Path: host, Target: ctr})
	}
	if f.net.hostNetwork() {
		s.Net.Mode = runtime.NetHost
	}
	p := &s.Process
	p.Terminal = f.tty
	p.Init = f.init
	p.Cwd = f.workdir
	p.Env = append(p.Env, f.env...)
	switch {
	case len(cmd) > 0:
		p.Args = cmd
	case f.system:
		p.Args = []string{"/sbin/init"}
	case src.Process != nil && len(src.Process.Args) > 0:
		p.Args = src.Process.Args
	default:
		p.Args = []string{"/bin/sh"}
	}
	if src.Process != nil {
		p.Env = append(append([]string{}, src.Process.Env...), p.Env...)
		if p.Cwd == "" {
			p.Cwd = src.Process.Cwd
		}
		if f.user == "" {
			f.user = src.Process.User
		}
	}
	for _, kv := range p.Env {
		if !strings.Contains(kv, "=") {
			return nil, usagef("-e %s: want K=V", kv)
		}
	}
	return s, nil
}

// resolveUser maps "UID[:GID]" or "name[:group]" against the mounted
// image's /etc/passwd and /etc/group.
func resolveUser(rootfs, user string) (uid, gid int, err error) {
	if user == "" {
		return 0, 0, nil
	}
	u, g, hasG := strings.Cut(user, ":")
	uid, uerr := strconv.Atoi(u)
	gid = -1
	if uerr != nil || uid < 0 {
		ent, ok := lookupDB(filepath.Join(rootfs, "etc/passwd"), u)
		if !ok {
			return 0, 0, fmt.Errorf("user %s: not found in the image's /etc/passwd", u)
		}
		uid, _ = strconv.Atoi(ent[2])
		gid, _ = strconv.Atoi(ent[3])
	} else if ent, ok := lookupDBByID(filepath.Join(rootfs, "etc/passwd"), u); ok {
		gid, _ = strconv.Atoi(ent[3])
	}
	if hasG {
		n, err := strconv.Atoi(g)
		if err != nil || n < 0 {
			ent, ok := lookupDB(filepath.Join(rootfs, "etc/group"), g)
			if !ok {
				return 0, 0, fmt.Errorf("group %s: not found in the image's /etc/group", g)
			}
			n, _ = strconv.Atoi(ent[2])
		}
		gid = n
	}
	if gid < 0 {
		gid = uid
	}
	return uid, gid, nil
}

func lookupDB(path, name string) ([]string, bool) {
	return scanDB(path, func(f []string) bool { return f[0] == name })
}

func lookupDBByID(path, id string) ([]string, bool) {
	return scanDB(path, func(f []string) bool { return f[2] == id })
}

func scanDB(path string, match func([]string) bool) ([]string, bool) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) >= 4 && match(f) {
			return f, true
		}
	}
	return nil, false
}

func unwrapNotExist(err error) error {
	if os.IsNotExist(err) {
		return fmt.Errorf("no such file or directory")
	}
	return err
}
