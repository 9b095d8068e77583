// Command otok is the multi-call CLI of otok: it runs containers on the
// device, manages the image store, and (on a host) builds and signs images.
//
// This file holds the command table and the dispatcher. Each subcommand lives
// in its own file and registers itself with register() from an init function,
// so commands can be added without touching this file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/otok/otok/runtime"
)

// command is one subcommand of the CLI.
type command struct {
	name    string   // first word after "otok"
	aliases []string // other names accepted for the same command
	usage   string   // argument synopsis, e.g. "[--json]"
	summary string   // one line for "otok help"
	hidden  bool     // internal stages (e.g. the container init) are not listed
	// ownSignals: the command handles SIGINT/SIGTERM itself (forwarding them
	// to a container, or being PID 1); otherwise they cancel ctx.
	ownSignals bool
	// run executes the command. args excludes the command name.
	run func(ctx context.Context, env *env, args []string) error
}

// env carries what every command may need: global options and the standard
// streams (so tests can capture them).
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	store string // --store / OTOK_STORE: image store root ("" = platform default)
	keys  string // --keys / OTOK_KEYS: trusted keys directory ("" = default)
	state string // --state / OTOK_STATE: runtime state dir ("" = /var/run/otok)
}

var commands = map[string]*command{}

// register adds a command to the table; called from init functions.
func register(c *command) {
	for _, n := range append([]string{c.name}, c.aliases...) {
		if _, dup := commands[n]; dup {
			panic("otok: command registered twice: " + n)
		}
		commands[n] = c
	}
}

// usageError is a mistake in how the command was called: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// exitError asks main to exit with a specific code without printing
// anything more (e.g. `otok run` propagating the container's exit code, or
// `otok check` reporting missing features).
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// runMain parses global flags, dispatches to the subcommand and maps its
// error to an exit code: 0 ok, 1 failure, 2 usage error, or what the
// command asked for with exitError.
func runMain(argv []string, stdin io.Reader, stdout, stderr io.Writer) int {
	runtime.Tracef("main")
	e := &env{
		stdin: stdin, stdout: stdout, stderr: stderr,
		store: os.Getenv("OTOK_STORE"),
		keys:  os.Getenv("OTOK_KEYS"),
		state: os.Getenv("OTOK_STATE"),
	}
	gfs := flag.NewFlagSet("otok", flag.ContinueOnError)
	gfs.SetOutput(io.Discard)
	gfs.StringVar(&e.store, "store", e.store, "image store root `DIR` (env OTOK_STORE)")
	gfs.StringVar(&e.keys, "keys", e.keys, "trusted keys `DIR` (env OTOK_KEYS)")
	gfs.StringVar(&e.state, "state", e.state, "runtime state `DIR` on tmpfs (env OTOK_STATE, default /var/run/otok)")
	if err := gfs.Parse(argv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelp(stdout, gfs)
			return 0
		}
		fmt.Fprintf(stderr, "otok: %v (see 'otok help')\n", err)
		return 2
	}
	args := gfs.Args()
	if len(args) == 0 {
		printHelp(stderr, gfs)
		return 2
	}
	name := args[0]
	if name == "help" {
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				return runCommand(c, e, []string{"--help"})
			}
			fmt.Fprintf(stderr, "otok: unknown command %q (see 'otok help')\n", args[1])
			return 2
		}
		printHelp(stdout, gfs)
		return 0
	}
	c, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "otok: unknown command %q (see 'otok help')\n", name)
		return 2
	}
	return runCommand(c, e, args[1:])
}

func runCommand(c *command, e *env, args []string) int {
	ctx := context.Background()
	if !c.ownSignals {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	err := c.run(ctx, e, args)
	var ue *usageError
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "otok %s: %s (see 'otok %s --help')\n", c.name, ue.msg, c.name)
		return 2
	default:
		fmt.Fprintf(e.stderr, "otok %s: %v\n", c.name, err)
		return 1
	}
}

func printHelp(w io.Writer, gfs *flag.FlagSet) {
	fmt.Fprintln(w, "otok — containers for OpenWrt-class routers")
	fmt.Fprintln(w, "\nUsage: otok [--store DIR] [--keys DIR] [--state DIR] COMMAND [ARGS…]")
	fmt.Fprintln(w, "\nCommands:")
	var names []string
	for n, c := range commands {
		if n == c.name && !c.hidden {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-14s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nGlobal options:")
	gfs.SetOutput(w)
	gfs.PrintDefaults()
	gfs.SetOutput(io.Discard)
	fmt.Fprintln(w, "\nRun 'otok COMMAND --help' for a command's options.")
}

// newFlags returns a flag set for a command whose --help prints the
// command's synopsis and options to the command's stdout.
func newFlags(e *env, c *command) *flag.FlagSet {
	fs := flag.NewFlagSet("otok "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		w := e.stdout
		fmt.Fprintf(w, "Usage: otok %s %s\n\n%s\n", c.name, c.usage, c.summary)
		var b strings.Builder
		fs.SetOutput(&b)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
		if b.Len() > 0 {
			fmt.Fprintf(w, "\nOptions:\n%s", b.String())
		}
	}
	return fs
}

// parseFlags parses args into fs, turning flag errors into usage errors and
// printing the usage on --help.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(splitShortFlags(fs, args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp // fs.Parse already printed the usage
		}
		return &usageError{err.Error()}
	}
	return nil
}

// splitShortFlags expands a group of one-letter boolean flags as docker
// users type them (-dit → -d -i -t) when the group itself is not a flag.
// It stops at "--" and at the first argument that is not a flag (the image
// and the container's command follow; their flags are not otok's).
func splitShortFlags(fs *flag.FlagSet, args []string) []string {
	isBool := func(name string) bool {
		f := fs.Lookup(name)
		if f == nil {
			return false
		}
		b, ok := f.Value.(interface{ IsBoolFlag() bool })
		return ok && b.IsBoolFlag()
	}
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || len(a) < 2 || a[0] != '-' {
			return append(out, args[i:]...)
		}
		name := a[1:]
		if len(name) > 1 && name[0] != '-' && !strings.Contains(name, "=") && fs.Lookup(name) == nil {
			all := true
			for _, c := range name {
				all = all && isBool(string(c))
			}
			if all {
				for _, c := range name {
					out = append(out, "-"+string(c))
				}
				continue
			}
		}
		out = append(out, a)
		// A flag that takes a value consumes the next argument.
		if f := fs.Lookup(strings.TrimLeft(name, "-")); f != nil && !isBool(f.Name) && !strings.Contains(name, "=") && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	return out
}
