package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at link time: -ldflags '-X main.version=… -X main.commit=…'.
var (
	version = "dev"
	commit  = ""
)

func init() {
	register(&command{
		name:    "version",
		usage:   "",
		summary: "print version, commit, Go version and target",
		run:     runVersion,
	})
}

func runVersion(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["version"])
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	fmt.Fprintf(e.stdout, "otok %s\n", version)
	fmt.Fprintf(e.stdout, "commit:  %s\n", buildCommit())
	fmt.Fprintf(e.stdout, "go:      %s\n", runtime.Version())
	fmt.Fprintf(e.stdout, "target:  %s\n", target())
	return nil
}

// buildCommit prefers the linker-set commit and falls back to the VCS stamp
// Go embeds when building from a git checkout.
func buildCommit() string {
	if commit != "" {
		return commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if dirty {
				rev += "-dirty"
			}
			return rev
		}
	}
	return "unknown"
}

// target names GOOS/GOARCH plus the sub-architecture setting that matters
// on routers (GOMIPS softfloat vs hardfloat, GOARM version).
func target() string {
	t := runtime.GOOS + "/" + runtime.GOARCH
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "GOMIPS", "GOARM", "GOARM64", "GOAMD64", "GOMIPS64":
				t += " " + s.Key + "=" + s.Value
			}
		}
	}
	return t
}
