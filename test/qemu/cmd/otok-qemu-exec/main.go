// Command otok-qemu-exec is a `go test -exec` wrapper that runs a whole Go
// test binary inside the qemu guest matching its ELF header (mipsel, mips,
// armhf, arm64), as root on a cgroup v2-only kernel with namespaces:
//
//	go build -o /tmp/otok-qemu-exec ./test/qemu/cmd/otok-qemu-exec
//	GOARCH=arm64 go test -exec /tmp/otok-qemu-exec ./runtime/
//
// The module's testdata/ directories go along (the test's cwd in the guest
// is its package directory under /job/src); OTOK_* variables are passed through, OTOK_BIN and OTOK_DIST
// point at the guest's otok. The exit code is the test binary's.
//
// Environment: OTOK_QEMU_WORK (guests prepared by `make test-qemu`; without
// it the wrapper prepares one in a temp dir, which takes longer),
// OTOK_QEMU_CACHE, OTOK_DIST (make cross output, default <repo>/dist),
// OTOK_QEMU_TIMEOUT (Go duration, default 10m), OTOK_QEMU_MEM (MiB).
// Exit status 125 means the guest could not be booted or hung (infra or
// timeout; the reason and console tail are on stderr).
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/otok/otok/test/qemu"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: otok-qemu-exec TESTBINARY [ARGS…]")
		os.Exit(2)
	}
	os.Exit(run(os.Args[1], os.Args[2:]))
}

func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "otok-qemu-exec: "+format+"\n", args...)
	return 125
}

func run(bin string, args []string) int {
	ctx := context.Background()
	a, err := qemu.ArchOfELF(bin)
	if err != nil {
		return fail("%v", err)
	}
	cwd, _ := os.Getwd()
	work := os.Getenv("OTOK_QEMU_WORK")
	if work == "" {
		tmp, err := os.MkdirTemp("", "otok-qemu-exec-")
		if err != nil {
			return fail("%v", err)
		}
		defer os.RemoveAll(tmp)
		work = tmp
	}
	g, ok := qemu.Load(work, a)
	if !ok {
		repo, err := repoRoot(cwd)
		if err != nil {
			return fail("%v", err)
		}
		dist := os.Getenv("OTOK_DIST")
		if dist == "" {
			dist = filepath.Join(repo, "dist")
		}
		if _, err := os.Stat(filepath.Join(dist, "otok-"+a.Dist)); err != nil {
			dist = "" // no otok in the guest; tests that need it skip
		}
		g, err = qemu.PrepareOrLoad(ctx, qemu.PrepareOptions{Arch: a, Repo: repo, Dist: dist, Work: work})
		if err != nil {
			return fail("%s: prepare: %v", a.Name, err)
		}
	}
	timeout := 10 * time.Minute
	if s := os.Getenv("OTOK_QEMU_TIMEOUT"); s != "" {
		if d, err := time.ParseDuration(s); err == nil {
			timeout = d
		}
	}
	mem, _ := strconv.Atoi(os.Getenv("OTOK_QEMU_MEM"))
	// The module's testdata directories go along at their places under
	// /job/src (tests read their own and, e.g. test/flash, other packages'
	// ../../flash/testdata); the test runs in its package's directory.
	pkgDir := "/job/pkg"
	trees := map[string]string{}
	if repo, err := repoRoot(cwd); err == nil {
		if rel, err := filepath.Rel(repo, cwd); err == nil && !strings.HasPrefix(rel, "..") {
			pkgDir = filepath.Join("/job/src", rel)
			_ = filepath.WalkDir(repo, func(p string, de os.DirEntry, err error) error {
				if err != nil || !de.IsDir() {
					return nil
				}
				switch de.Name() {
				case ".git", "dist", "node_modules":
					return filepath.SkipDir
				case "testdata":
					r, _ := filepath.Rel(repo, p)
					trees[filepath.Join("/job/src", r)] = p
					return filepath.SkipDir
				}
				return nil
			})
		}
	}
	job := qemu.Job{
		Argv:  append([]string{"/job/bin/" + filepath.Base(bin)}, guestArgs(args)...),
		Dir:   pkgDir,
		Files: map[string]string{"/job/bin/" + filepath.Base(bin): bin},
		Trees: trees,
		Env:   []string{"OTOK_BIN=/usr/bin/otok", "OTOK_DIST=/usr/bin", "OTOK_QEMU_ARCH=" + a.Name},
	}
	job.Files[pkgDir+"/.keep"] = "\x00"
	if _, ok := trees[pkgDir+"/testdata"]; !ok {
		if st, err := os.Stat(filepath.Join(cwd, "testdata")); err == nil && st.IsDir() {
			job.Trees[pkgDir+"/testdata"] = filepath.Join(cwd, "testdata")
		}
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "OTOK_") && !strings.HasPrefix(k, "OTOK_QEMU") && k != "OTOK_BIN" && k != "OTOK_DIST" {
			job.Env = append(job.Env, kv)
		}
		if k == "GOTRACEBACK" {
			job.Env = append(job.Env, kv)
		}
	}
	res, err := g.Run(ctx, job, qemu.RunOptions{Timeout: timeout, Memory: mem, Console: os.Stdout})
	if err != nil {
		return fail("%v", err)
	}
	return res.Exit
}

// guestArgs drops flags that name host files the guest cannot write.
func guestArgs(args []string) []string {
	var out []string
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "-test.coverprofile"), strings.HasPrefix(a, "-test.outputdir"),
			strings.HasPrefix(a, "-test.testlogfile"), strings.HasPrefix(a, "-test.gocoverdir"):
			continue
		}
		out = append(out, a)
	}
	return out
}

func repoRoot(dir string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("%s: not inside the otok module", dir)
	}
	return filepath.Dir(mod), nil
}
