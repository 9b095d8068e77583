package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/otok/otok/flash"
)

const defaultKeysDir = "/etc/otok/keys"

// keysDir is the trusted keys directory: --keys, OTOK_KEYS, or the default.
func keysDir(e *env) string {
	if e.keys != "" {
		return e.keys
	}
	return defaultKeysDir
}

func init() {
	register(&command{
		name:    "key",
		usage:   "gen PATH | ls",
		summary: "make an Ed25519 signing key pair (PATH.key, PATH.pub), list trusted keys",
		run:     runKey,
	})
}

func runKey(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["key"])
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() == 2 && fs.Arg(0) == "gen" && (fs.Arg(1) == "--help" || fs.Arg(1) == "-h" || fs.Arg(1) == "-help"):
		fs.Usage() // `otok key gen --help` must not make a key named --help
		return flag.ErrHelp
	case fs.NArg() == 2 && fs.Arg(0) == "gen" && strings.HasPrefix(fs.Arg(1), "-"):
		return usagef("key gen: %q looks like an option, not a PATH", fs.Arg(1))
	case fs.NArg() == 2 && fs.Arg(0) == "gen":
		pub, err := flash.GenerateKey(fs.Arg(1))
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "key %x: private %s.key (keep secret), public %s.pub (copy to %s/ on devices)\n",
			flash.KeyID(pub), fs.Arg(1), fs.Arg(1), defaultKeysDir)
		return nil
	case fs.NArg() == 1 && fs.Arg(0) == "ls":
		kr, err := flash.LoadKeyring(keysDir(e))
		if err != nil {
			return err
		}
		if len(kr.Keys) == 0 {
			fmt.Fprintf(e.stderr, "no trusted keys in %s\n", kr.Dir)
		}
		for _, id := range kr.IDs() {
			fmt.Fprintf(e.stdout, "%s  %s\n", id, kr.Keys[id].File)
		}
		return nil
	}
	return usagef("want 'gen PATH' or 'ls'")
}
