package main

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type options struct {
	format   string // ipk or apk
	arch     string
	bin      string
	files    string
	dist     string
	version  string
	describe string
	commits  int
	release  int
	epoch    string
	commit   string
	check    bool
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("mkpkg", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.format, "format", "ipk", "package format: ipk (opkg) or apk (apk-tools v3)")
	fs.StringVar(&o.arch, "arch", "", "OpenWrt package architecture, e.g. mipsel_24kc")
	fs.StringVar(&o.bin, "bin", "", "static otok binary (default DIST/otok-<cross arch>)")
	fs.StringVar(&o.files, "files", "openwrt-feed/otok/files", "directory with otok.init, otok.config, otok.uci-defaults")
	fs.StringVar(&o.dist, "dist", "dist", "output directory")
	fs.StringVar(&o.version, "version", "", "package version as is (e.g. 1.2.3-r1); overrides -describe")
	fs.StringVar(&o.describe, "describe", "", "output of git describe --tags --long --always --abbrev=7")
	fs.IntVar(&o.commits, "commits", 0, "git rev-list --count HEAD (versions before the first tag)")
	fs.IntVar(&o.release, "release", 1, "package release, the N of -rN")
	fs.StringVar(&o.epoch, "epoch", os.Getenv("SOURCE_DATE_EPOCH"), "timestamp of every file (default $SOURCE_DATE_EPOCH)")
	fs.StringVar(&o.commit, "commit", "", "git commit (40 hex digits) recorded in the apk's repo-commit")
	fs.BoolVar(&o.check, "check", false, "check every input but the binary, print the `make cross` name for -arch, write nothing")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mkpkg: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if o.check {
		in, err := check(o)
		if err != nil {
			fmt.Fprintf(stderr, "mkpkg: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, in.target.cross)
		return 0
	}
	out, err := build(o)
	if err != nil {
		fmt.Fprintf(stderr, "mkpkg: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, out)
	return 0
}

// inputs are the checked options.
type inputs struct {
	target  target
	version string
	epoch   time.Time
}

// check validates everything but the binary and the package files.
func check(o options) (inputs, error) {
	var in inputs
	if o.format != "ipk" && o.format != "apk" {
		return in, fmt.Errorf("format %q: want ipk or apk", o.format)
	}
	tg, err := lookupTarget(o.arch)
	if err != nil {
		return in, err
	}
	version := o.version
	if version != "" {
		err = validVersion(version)
	} else if o.describe != "" {
		version, err = fromDescribe(o.describe, o.commits, o.release)
	} else {
		err = errors.New("no version: give -version or -describe")
	}
	if err != nil {
		return in, err
	}
	epoch, err := parseEpoch(o.epoch)
	if err != nil {
		return in, err
	}
	if o.commit != "" {
		if c, err := hexBytes(o.commit); err != nil || len(c) != 20 {
			return in, fmt.Errorf("commit %q: want 40 hex digits", o.commit)
		}
	}
	return inputs{target: tg, version: version, epoch: epoch}, nil
}

// build checks every input, renders the package in memory and only then
// writes it (temp file, rename). It returns the package's path.
func build(o options) (string, error) {
	in, err := check(o)
	if err != nil {
		return "", err
	}
	tg, version, epoch := in.target, in.version, in.epoch
	bin := o.bin
	if bin == "" {
		bin = filepath.Join(o.dist, "otok-"+tg.cross)
	}
	if err := checkBinary(bin, tg); err != nil {
		return "", err
	}
	t, err := buildTree(bin, o.files)
	if err != nil {
		return "", err
	}

	var pkg []byte
	var name string
	switch o.format {
	case "ipk":
		name = fmt.Sprintf("%s_%s_%s.ipk", pkgName, version, tg.arch)
		pkg, err = ipk(t, tg, version, epoch)
	case "apk":
		name = fmt.Sprintf("%s-%s_%s.apk", pkgName, version, tg.arch)
		pkg, err = apk(t, tg, version, epoch, o.commit)
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	out := filepath.Join(o.dist, name)
	if err := writeFile(out, pkg); err != nil {
		return "", err
	}
	return out, nil
}

func parseEpoch(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("no timestamp: set SOURCE_DATE_EPOCH or -epoch (e.g. git log -1 --format=%ct)")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > 1<<33 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: want seconds since 1970", s)
	}
	return time.Unix(n, 0).UTC(), nil
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".mkpkg-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.Rename(f.Name(), path)
}

func hexBytes(s string) ([]byte, error) { return hex.DecodeString(s) }

func sortStrings(s []string) { sort.Strings(s) }
