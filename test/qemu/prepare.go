package qemu

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// FetchTimeout bounds fetch.sh for the Debian arches (index refresh and
// .deb downloads: ~1 min cold).
const FetchTimeout = 10 * time.Minute

// KernelBuildTimeout bounds the big-endian mips kernel build (cold cache:
// 8 min of CPU, 17-30 min wall on 2 shared cores while the other guests
// run). Default 22 min, so that with the mips guest's own ~3 min of tasks
// a cold `make test-qemu` stays within ~30 min; QEMU_KERNEL_TIMEOUT
// overrides it.
func KernelBuildTimeout() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("QEMU_KERNEL_TIMEOUT")); err == nil && d > 0 {
		return d
	}
	return 22 * time.Minute
}

// InfraError is a problem of the test infrastructure (mirror, download,
// missing host tool, kernel build), not a failure of otok.
type InfraError struct{ Err error }

func (e *InfraError) Error() string { return "infrastructure: " + e.Err.Error() }
func (e *InfraError) Unwrap() error { return e.Err }

// IsInfra reports whether err is an infrastructure error.
func IsInfra(err error) bool { var ie *InfraError; return errors.As(err, &ie) }

// DefaultCache is where downloads and the mips kernel are kept between runs.
func DefaultCache() string {
	if c := os.Getenv("OTOK_QEMU_CACHE"); c != "" {
		return c
	}
	return "/var/cache/otok-qemu"
}

// PrepareOptions says where things are.
type PrepareOptions struct {
	Arch  *Arch
	Repo  string // repository root (test/qemu/*.sh and guestinit live there)
	Dist  string // directory with make cross output (otok-<dist>); "" = no otok in the guest
	Cache string // default DefaultCache()
	Work  string // scratch directory for this run (required)
	// Log receives progress lines (fetching, building); may be nil.
	Log func(format string, args ...any)
}

// Guest is a prepared arch: a kernel and a base initramfs.
type Guest struct {
	Arch    *Arch
	Kernel  string
	KVer    string
	Base    string // gzip'd cpio: /init, modules, busybox, otok
	Busybox string // host path of the arch's busybox ("" on mips)
	Toybox  string // host path of the Go toybox built for the arch
}

// Prepare fetches (or reuses) the arch's kernel and busybox, builds the Go
// /init and toybox for it and writes the base initramfs into o.Work.
func Prepare(ctx context.Context, o PrepareOptions) (*Guest, error) {
	a := o.Arch
	if o.Cache == "" {
		o.Cache = DefaultCache()
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	if _, err := exec.LookPath(a.QEMU); err != nil {
		return nil, &InfraError{fmt.Errorf("%s: %s not installed (make deps)", a.Name, a.QEMU)}
	}
	kv, err := fetch(ctx, o)
	if err != nil {
		return nil, err
	}
	g := &Guest{Arch: a, Kernel: kv["KERNEL"], KVer: kv["KVER"], Busybox: kv["BUSYBOX"]}
	dir := filepath.Join(o.Work, a.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	initBin := filepath.Join(dir, "init")
	if err := GoBuild(ctx, a, o.Repo, "./test/qemu/guestinit", initBin); err != nil {
		return nil, err
	}
	g.Toybox = filepath.Join(dir, "toybox")
	if err := GoBuild(ctx, a, o.Repo, "./test/qemu/toybox", g.Toybox); err != nil {
		return nil, err
	}
	var ar Archive
	baseLayout(&ar, a)
	if err := ar.Copy("/init", initBin, 0o755); err != nil {
		return nil, err
	}
	if err := ar.Copy("/bin/toybox", g.Toybox, 0o755); err != nil {
		return nil, err
	}
	if g.Busybox != "" {
		if err := ar.Copy("/bin/busybox", g.Busybox, 0o755); err != nil {
			return nil, err
		}
	}
	if o.Dist != "" {
		bin := filepath.Join(o.Dist, "otok-"+a.Dist)
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("%s: %s missing (make cross): %w", a.Name, bin, err)
		}
		if err := ar.Copy("/usr/bin/otok", bin, 0o755); err != nil {
			return nil, err
		}
	}
	// The kernel's config, as Debian installs it: otok reads it to learn
	// which squashfs compressors the kernel has (without it, on "OpenWrt",
	// it assumes xz only).
	if c := kv["KCONFIG"]; c != "" {
		if err := ar.Copy("/boot/config-"+g.KVer, c, 0o644); err != nil {
			return nil, err
		}
	}
	if t := kv["TOOLS"]; t != "" {
		if _, err := addTools(&ar, t); err != nil {
			return nil, &InfraError{fmt.Errorf("%s: guest tools: %w", a.Name, err)}
		}
	}
	if moddir := kv["MODDIR"]; moddir != "" {
		mods, err := moduleOrder(ctx, moddir, g.KVer, a.Modules)
		if err != nil {
			return nil, &InfraError{fmt.Errorf("%s: modules: %w", a.Name, err)}
		}
		var list []string
		for _, m := range mods {
			dst := "/lib/modules/" + filepath.Base(m)
			if err := ar.Copy(dst, m, 0o644); err != nil {
				return nil, err
			}
			list = append(list, dst)
		}
		ar.File("/etc/otok-qemu/modules", 0o644, []byte(strings.Join(list, "\n")+"\n"))
	}
	g.Base = filepath.Join(dir, "base.cpio.gz")
	f, err := os.Create(g.Base)
	if err != nil {
		return nil, err
	}
	if err := ar.WriteGzip(f); err != nil {
		f.Close()
		return nil, err
	}
	return g, f.Close()
}

// baseLayout is the skeleton every guest has.
func baseLayout(ar *Archive, a *Arch) {
	for _, d := range []string{"/dev", "/proc", "/sys", "/tmp", "/run", "/overlay", "/etc/otok/keys", "/var", "/root", "/usr/sbin", "/sbin", "/mnt"} {
		ar.Dir(d, 0o755)
	}
	ar.Dir("/tmp", 0o1777)
	ar.Symlink("/var/run", "/run") // as on OpenWrt
	ar.Symlink("/var/lock", "/run/lock")
	ar.CharDev("/dev/console", 0o600, 5, 1)
	ar.CharDev("/dev/null", 0o666, 1, 3)
	ar.File("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/var:/bin/false\n"))
	ar.File("/etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
	ar.File("/etc/hosts", 0o644, []byte("127.0.0.1 localhost\n10.0.2.2 host\n"))
	ar.File("/etc/resolv.conf", 0o644, []byte("nameserver 10.0.2.3\n"))
	ar.File("/etc/otok-qemu/arch", 0o644, []byte(a.Name+"\n"))
	// Looks like OpenWrt to otok check (release and board description).
	ar.File("/etc/openwrt_release", 0o644, []byte(fmt.Sprintf(
		"DISTRIB_ID='OpenWrt'\nDISTRIB_RELEASE='24.10.0'\nDISTRIB_REVISION='r0-otok-qemu'\nDISTRIB_TARGET='qemu/%s'\nDISTRIB_ARCH='%s'\nDISTRIB_DESCRIPTION='OpenWrt 24.10.0 (otok qemu %s)'\n",
		a.Name, a.Name, a.Name)))
}

// fetch runs fetch.sh and parses its KEY=VALUE lines.
//
// The run is bounded (KernelBuildTimeout for mips, whose cold cache means
// a kernel build; FetchTimeout for the downloads), and on timeout the
// whole process group (bash, make, the compilers) is killed: a cold run
// must not exceed ~30 min in CI. The mips build tree is kept, so the next
// run continues the build incrementally.
func fetch(ctx context.Context, o PrepareOptions) (map[string]string, error) {
	limit := FetchTimeout
	if o.Arch.Name == "mips" {
		limit = KernelBuildTimeout()
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(o.Repo, "test/qemu/fetch.sh"), o.Arch.Name, o.Cache)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// SIGTERM first: make then deletes the object it was writing (a
	// truncated .o with a new mtime would break the incremental rebuild).
	cmd.Cancel = func() error {
		pg := -cmd.Process.Pid
		time.AfterFunc(15*time.Second, func() { syscall.Kill(pg, syscall.SIGKILL) })
		return syscall.Kill(pg, syscall.SIGTERM)
	}
	cmd.WaitDelay = 20 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ctx.Err() == context.DeadlineExceeded {
		what := "fetch.sh (downloads)"
		if o.Arch.Name == "mips" {
			what = "the mips kernel build (cold cache; the build tree is kept and the next run continues it; QEMU_KERNEL_TIMEOUT)"
		}
		return nil, &InfraError{fmt.Errorf("%s: %s did not finish within %v: %s", o.Arch.Name, what, limit, lastLines(stderr.String(), 4))}
	}
	if err != nil {
		return nil, &InfraError{fmt.Errorf("%s: fetch.sh: %v: %s", o.Arch.Name, err, lastLines(stderr.String(), 8))}
	}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		for _, l := range strings.Split(s, "\n") {
			o.Log("%s", l)
		}
	}
	kv := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			kv[k] = v
		}
	}
	if kv["KERNEL"] == "" {
		return nil, &InfraError{fmt.Errorf("%s: fetch.sh printed no KERNEL", o.Arch.Name)}
	}
	return kv, nil
}

// moduleOrder resolves modules and their dependencies to .ko paths in load
// order (modprobe --show-depends), skipping built-ins and unknown names.
func moduleOrder(ctx context.Context, moddir, kver string, names []string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		b, err := exec.CommandContext(ctx, "modprobe", "-d", moddir, "-S", kver, "--show-depends", n).CombinedOutput()
		if err != nil {
			if strings.Contains(string(b), "not found") {
				continue
			}
			return nil, fmt.Errorf("modprobe --show-depends %s: %v: %s", n, err, b)
		}
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) < 2 || f[0] != "insmod" {
				continue
			}
			if !seen[f[1]] {
				seen[f[1]] = true
				out = append(out, f[1])
			}
		}
	}
	return out, nil
}

// GoBuild builds a static Go program for the arch.
func GoBuild(ctx context.Context, a *Arch, repo, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), a.Env()...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: go build %s: %v\n%s", a.Name, pkg, err, b)
	}
	return nil
}

// GoTestBuild compiles a package's test binary for the arch ("" if the
// package has no tests).
func GoTestBuild(ctx context.Context, a *Arch, repo, pkg, out string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "test", "-c", "-o", out, pkg)
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), a.Env()...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s: go test -c %s: %v\n%s", a.Name, pkg, err, b)
	}
	if _, err := os.Stat(out); err != nil {
		return "", nil
	}
	return out, nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
