package main

// otok fleet ls and status: what the retained states and statuses say.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/otok/otok/agent/fleet"
)

func fleetLs(ctx context.Context, e *env, args []string) error {
	var c fleetConn
	fs := fleetFlags(e, "ls", &c)
	group := fs.String("group", "", "only devices in group `G`")
	watch := fs.Bool("w", false, "keep watching (redraw every second)")
	if err := parseFleet(fs, args); err != nil {
		return err
	}
	k, err := c.dial(ctx, false)
	if err != nil {
		return err
	}
	defer k.Close()
	k.Settle(ctx, 300*time.Millisecond, 5*time.Second)
	for {
		devs := filterGroup(k.Devices(), *group)
		if *watch && isTerminalWriter(e.stdout) {
			fmt.Fprint(e.stdout, "\x1b[H\x1b[2J")
		}
		if c.json {
			if err := printJSON(e.stdout, lsJSON(k, devs)); err != nil {
				return err
			}
		} else {
			printLs(e.stdout, k, devs)
		}
		if !*watch {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func filterGroup(devs []fleet.DeviceView, g string) []fleet.DeviceView {
	if g == "" {
		return devs
	}
	var out []fleet.DeviceView
	for _, d := range devs {
		if d.Status == nil {
			continue
		}
		for _, x := range d.Status.Groups {
			if x == g {
				out = append(out, d)
				break
			}
		}
	}
	return out
}

func counts(st *fleet.Status) (running, failed int) {
	if st == nil {
		return 0, 0
	}
	for _, c := range st.Containers {
		switch c.State {
		case "running":
			running++
		case "failed", "error", "restarting":
			failed++
		case "exited":
			if c.Exit != nil && (c.Exit.Code != 0 || c.Exit.OOM) {
				failed++
			}
		}
	}
	return
}

// versions renders "scope reached/desired" for each scope of a device.
func versions(k *fleet.Controller, st *fleet.Status) string {
	if st == nil {
		return "-"
	}
	scopes := make([]string, 0, len(st.Reached))
	for s := range st.Reached {
		scopes = append(scopes, s)
	}
	for _, g := range st.Groups {
		if _, ok := st.Reached["group/"+g]; !ok && k.DesiredVersion("group/"+g) > 0 {
			scopes = append(scopes, "group/"+g)
		}
	}
	if _, ok := st.Reached["dev/"+st.Device]; !ok && k.DesiredVersion("dev/"+st.Device) > 0 {
		scopes = append(scopes, "dev/"+st.Device)
	}
	sort.Strings(scopes)
	var parts []string
	for _, s := range scopes {
		r := st.Reached[s]
		p := fmt.Sprintf("%s %d/%d", strings.TrimPrefix(strings.TrimPrefix(s, "group/"), "dev/"), r.Version, k.DesiredVersion(s))
		if len(r.Errors) > 0 {
			p += "!"
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}

func printLs(w io.Writer, k *fleet.Controller, devs []fleet.DeviceView) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tONLINE\tMODEL\tAGENT\tRUNNING\tFAILED\tREACHED/DESIRED")
	on := 0
	for _, d := range devs {
		model, ver := "-", "-"
		if d.Status != nil {
			model, ver = d.Status.Board.Model, d.Status.Agent.Version
		}
		r, f := counts(d.Status)
		o := "no"
		switch {
		case d.Online():
			o = "yes"
			on++
		case d.State != nil && d.State.Online && d.Stale(time.Now()):
			o = "stale" // retained online, but three heartbeats missed
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", d.ID, o, model, ver, r, f, versions(k, d.Status))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d devices, %d online\n", len(devs), on)
}

type lsRow struct {
	Device   string            `json:"device"`
	Online   bool              `json:"online"`
	Model    string            `json:"model,omitempty"`
	Agent    string            `json:"agent,omitempty"`
	Running  int               `json:"running"`
	Failed   int               `json:"failed"`
	Reached  map[string]uint64 `json:"reached,omitempty"`
	Desired  map[string]uint64 `json:"desired,omitempty"`
	Problems []string          `json:"errors,omitempty"`
}

func lsJSON(k *fleet.Controller, devs []fleet.DeviceView) []lsRow {
	out := []lsRow{}
	for _, d := range devs {
		r := lsRow{Device: d.ID, Online: d.Online()}
		if st := d.Status; st != nil {
			r.Model, r.Agent = st.Board.Model, st.Agent.Version
			r.Running, r.Failed = counts(st)
			r.Reached, r.Desired = map[string]uint64{}, map[string]uint64{}
			for s, x := range st.Reached {
				r.Reached[s] = x.Version
				r.Desired[s] = k.DesiredVersion(s)
				for _, e := range x.Errors {
					r.Problems = append(r.Problems, fmt.Sprintf("%s %s: %s", s, e.Item, e.Msg))
				}
			}
		}
		out = append(out, r)
	}
	return out
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func fleetStatus(ctx context.Context, e *env, args []string) error {
	var c fleetConn
	fs := fleetFlags(e, "status", &c)
	if err := parseFleet(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 1 {
		return usagef("want DEV")
	}
	id := fs.Arg(0)
	// Options may follow DEV too (status DEV --broker …), as with the
	// other per-device subcommands.
	if err := parseFleet(fs, fs.Args()[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("want DEV")
	}
	k, err := c.dial(ctx, false)
	if err != nil {
		return err
	}
	defer k.Close()
	end := time.Now().Add(3 * time.Second)
	for {
		if d, ok := k.Device(id); ok && d.Status != nil && d.State != nil {
			return printStatus(e.stdout, k, d, c.json)
		}
		if time.Now().After(end) {
			return fmt.Errorf("device %s: no status on the broker", id)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func printStatus(w io.Writer, k *fleet.Controller, d fleet.DeviceView, asJSON bool) error {
	st := d.Status
	if asJSON {
		return printJSON(w, struct {
			Online bool          `json:"online"`
			State  *fleet.State  `json:"state"`
			Status *fleet.Status `json:"status"`
		}{d.Online(), d.State, st})
	}
	on := "offline"
	if d.Online() {
		on = "online"
	}
	fmt.Fprintf(w, "device:   %s (%s, bdseq %d)\n", st.Device, on, d.State.BdSeq)
	release := "not OpenWrt"
	if st.Board.Release != "" {
		release = "OpenWrt " + st.Board.Release
	}
	fmt.Fprintf(w, "board:    %s, %s, %s, kernel %s\n", st.Board.Model, st.Board.Arch, release, st.Board.Kernel)
	fmt.Fprintf(w, "agent:    %s, up %s\n", st.Agent.Version, time.Duration(st.Agent.Uptime)*time.Second)
	fmt.Fprintf(w, "status:   %s ago\n", time.Since(time.UnixMilli(int64(st.Time))).Round(time.Second))
	if st.Flash != nil {
		fmt.Fprintf(w, "flash:    %s free, %s reserve, store %s\n", mib(st.Flash.Free), mib(st.Flash.Reserve), mib(st.Flash.Store))
	}
	fmt.Fprintf(w, "groups:   %s\n", strings.Join(st.Groups, ", "))
	fmt.Fprintf(w, "desired:  %s\n", versions(k, st))
	for s, r := range st.Reached {
		for _, e := range r.Errors {
			fmt.Fprintf(w, "  %s: %s %s: %s\n", s, e.Item, e.Code, e.Msg)
		}
	}
	if st.Dropped > 0 {
		fmt.Fprintf(w, "events dropped while offline: %d\n", st.Dropped)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nIMAGE\tVERSION\tDIGEST\tSIZE")
	for _, im := range st.Images {
		fmt.Fprintf(tw, "%s\t%s\t%x\t%s\n", im.Name, im.Version, im.Digest[:6], mib(im.Size))
	}
	fmt.Fprintln(tw, "\nCONTAINER\tIMAGE\tSTATE\tHEALTH\tRESTARTS\tADDRESSES\tMEM\tEXIT")
	for _, c := range st.Containers {
		mem, exit := "-", ""
		if c.Usage != nil {
			mem = mib(c.Usage.Mem)
		}
		if c.Exit != nil {
			exit = fmt.Sprintf("%d", c.Exit.Code)
			if c.Exit.OOM {
				exit += " OOM"
			}
			if c.Exit.Reason != "" {
				exit += " (" + c.Exit.Reason + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", c.Name, c.Image, c.State, c.Health, c.Restarts, strings.Join(c.Addrs, ","), mem, exit)
	}
	return tw.Flush()
}

func mib(b uint64) string { return fmt.Sprintf("%.1fM", float64(b)/(1<<20)) }
