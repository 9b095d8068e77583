package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/otok/otok/board"
)

func init() {
	register(&command{
		name:    "check",
		usage:   "[--json]",
		summary: "report whether this kernel and device have what otok needs",
		run:     runCheck,
	})
}

func runCheck(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["check"])
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	r := board.Check(board.CheckOptions{
		StorePath: checkStorePath(e),
		Probe:     os.Geteuid() == 0,
	})
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			return err
		}
	} else {
		printCheck(e, r)
	}
	if !r.OK {
		return &exitError{code: 1}
	}
	return nil
}

func printCheck(e *env, r *board.Report) {
	w := e.stdout
	switch {
	case r.Release != nil && r.Board != nil:
		fmt.Fprintf(w, "device:  %s — %s (%s)\n", r.Board.Model.Name, r.Release.Description, r.Release.Target)
	case r.Release != nil:
		fmt.Fprintf(w, "device:  %s (%s)\n", r.Release.Description, r.Release.Target)
	case r.Board != nil:
		fmt.Fprintf(w, "device:  %s\n", r.Board.Model.Name)
	default:
		fmt.Fprintf(w, "device:  not OpenWrt (no %s)\n", board.ReleasePath)
	}
	if r.Board != nil {
		for _, role := range r.Board.Roles() {
			fmt.Fprintf(w, "  %-6s %s\n", role+":", r.Board.Network[role].Describe())
		}
	}
	fmt.Fprintf(w, "kernel:  %s %s\n", r.Kernel, r.Machine)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note:    %s\n", n)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tFEATURE\tSTATUS\tDETAIL")
	for _, f := range r.Features {
		st := string(f.Status)
		if !f.Required && f.Status != board.OK {
			st += " (optional)"
		}
		detail := f.Detail
		if f.Hint != "" {
			if detail != "" {
				detail += " — "
			}
			detail += "hint: " + f.Hint
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Group, f.Name, st, detail)
	}
	tw.Flush()
	fmt.Fprintln(w)
	if r.OK {
		fmt.Fprintln(w, "result:  ok — everything otok requires is present")
	} else {
		var miss []string
		for _, f := range r.Features {
			if f.Required && f.Status == board.Missing {
				miss = append(miss, f.Name)
			}
		}
		fmt.Fprintf(w, "result:  missing required features: %s\n", strings.Join(miss, ", "))
	}
}

// checkStorePath is the store `otok check` examines: --store/OTOK_STORE, or
// the platform default (the overlay on OpenWrt, /var/lib/otok elsewhere).
func checkStorePath(e *env) string {
	if e.store != "" {
		return e.store
	}
	if _, err := os.Stat(board.ReleasePath); err == nil {
		return "/overlay/otok"
	}
	return "/var/lib/otok"
}
