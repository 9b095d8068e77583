package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/otok/otok/board"
	"github.com/otok/otok/netcfg"
)

func init() {
	register(&command{
		name:    "net",
		usage:   "ls [--json] | prune",
		summary: "container networks: ports, attachments, leases; remove leftovers",
		run:     runNet,
	})
}

func runNet(ctx context.Context, e *env, args []string) error {
	c := commands["net"]
	if len(args) == 0 {
		return usagef("missing subcommand (ls, prune)")
	}
	switch args[0] {
	case "ls", "list":
		fs := newFlags(e, c)
		asJSON := fs.Bool("json", false, "print JSON")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		return netList(e, *asJSON)
	case "prune":
		fs := newFlags(e, c)
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		return netPrune(ctx, e)
	case "--help", "-h", "help":
		return parseFlags(newFlags(e, c), []string{"--help"})
	}
	return usagef("unknown subcommand %q (ls, prune)", args[0])
}

// containerAlive reports whether the runtime knows a live container.
func containerAlive(e *env) func(string) bool {
	r := newRuntime(e)
	return func(name string) bool {
		st, err := r.State(name)
		return err == nil && st.Alive()
	}
}

func netPrune(ctx context.Context, e *env) error {
	return netcfg.Sweep(ctx, netStateDir(e), "", containerAlive(e))
}

type netListing struct {
	Ports      []board.Port     `json:"ports"`
	Bridges    []netcfg.Bridge  `json:"bridges"`
	Containers []*netcfg.Record `json:"containers"`
}

func netList(e *env, asJSON bool) error {
	var out netListing
	b, err := board.ReadBoardJSON(board.BoardJSONPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	links, _ := netcfg.LinkNames("")
	out.Ports = b.Ports(links)
	out.Bridges, _ = netcfg.Bridges("")
	recs, rerr := netcfg.Records(netStateDir(e))
	out.Containers = recs
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(&out); err != nil {
			return err
		}
		return rerr
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	if len(out.Ports) > 0 {
		fmt.Fprintln(w, "PORT\tDEVICE\tROLE")
		for _, p := range out.Ports {
			fmt.Fprintf(w, "%s\t%s\t%s\n", p.Name, p.Device, p.Role)
		}
		fmt.Fprintln(w)
	}
	if len(out.Bridges) > 0 {
		fmt.Fprintln(w, "BRIDGE\tMEMBERS")
		for _, br := range out.Bridges {
			name := br.Name
			if br.Otok {
				name += " (otok, NAT)"
			}
			fmt.Fprintf(w, "%s\t%s\n", name, orDash(strings.Join(br.Members, " ")))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "CONTAINER\tNETWORK\tDEVICE\tMAC\tADDRESSES\tLEASE")
	for _, r := range recs {
		dev := r.Parent
		if dev == "" {
			dev = r.Lower
		}
		var addrs []string
		for _, a := range r.Addrs {
			addrs = append(addrs, a.String())
		}
		lease := "-"
		if r.Lease != nil {
			lease = fmt.Sprintf("%s until %s", r.Lease.Server, r.Lease.Expires().Format(time.RFC3339))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Container, r.Spec, orDash(dev), orDash(r.MAC), orDash(strings.Join(addrs, " ")), lease)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return rerr
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
