package main

// otok fleet run/stop/…: one signed command to one device, its reply.

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/otok/otok/agent"
	"github.com/otok/otok/agent/fleet"
)

func fleetCmd(ctx context.Context, e *env, op string, args []string) error {
	var c fleetConn
	fs := fleetFlags(e, op, &c)
	var a fleet.Args
	var spec fleet.ContainerSpec
	var envs repeatFlag
	var digest string
	var tail uint
	var stopTimeout time.Duration
	switch op {
	case "run":
		fs.StringVar(&spec.Name, "name", "", "container `NAME` (default: the image name)")
		fs.StringVar(&spec.Net, "net", "", "network: none, host, bridge[:BR], macvlan:PORT")
		fs.StringVar(&spec.IP, "ip", "", "address: dhcp or CIDR")
		fs.StringVar(&spec.Restart, "restart", "", "restart policy")
		fs.Var(&envs, "e", "environment K=V (repeatable)")
	case "rm":
		fs.BoolVar(&a.Force, "force", false, "stop it first")
	case "logs":
		fs.UintVar(&tail, "tail", 100, "last `N` lines")
	case "stop", "restart":
		fs.DurationVar(&stopTimeout, "t", 0, "stop timeout")
	case "import":
		fs.StringVar(&digest, "digest", "", "sha256 `HEX` of the image")
		fs.StringVar(&a.Name, "name", "", "image name")
	}
	if err := parseFleet(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) < 1 {
		return usagef("want DEV")
	}
	dev, rest := rest[0], rest[1:]
	// Options may also follow DEV (`run DEV --name N IMAGE ARG…`, as the
	// usage shows); parsing stops again at IMAGE, so its args stay whole.
	if err := parseFleet(fs, rest); err != nil {
		return err
	}
	rest = fs.Args()
	switch op {
	case "run":
		if len(rest) < 1 {
			return usagef("want DEV IMAGE [ARG…]")
		}
		spec.Image, spec.Argv, spec.Env = rest[0], rest[1:], envs
		if spec.Name == "" {
			spec.Name = strings.NewReplacer(":", "-", "/", "-").Replace(rest[0])
		}
		a.Spec = &spec
	case "import":
		if len(rest) != 1 || digest == "" {
			return usagef("want DEV --digest HEX URL")
		}
		a.URL = rest[0]
		d, err := hex.DecodeString(strings.TrimPrefix(digest, "sha256:"))
		if err != nil || len(d) != 32 {
			return usagef("--digest: want 64 hex digits")
		}
		a.Digest = d
	case "stats", "ps":
		if len(rest) > 1 {
			return usagef("want DEV [NAME]")
		}
		if len(rest) == 1 {
			a.Name = rest[0]
		}
	case "images", "df", "gc", "reload":
		if len(rest) != 0 {
			return usagef("want DEV")
		}
	case "rmi":
		if len(rest) != 1 {
			return usagef("want DEV IMAGE")
		}
		a.Image = rest[0]
	default:
		if len(rest) != 1 {
			return usagef("want DEV NAME")
		}
		a.Name = rest[0]
		a.Tail = uint32(tail)
		a.Timeout = uint32(stopTimeout / time.Second)
	}
	k, err := c.dial(ctx, false)
	if err != nil {
		return err
	}
	defer k.Close()
	cmd := fleet.NewCommand(dev, op, a, c.timeout)
	var bar *progress
	r, err := k.Do(ctx, cmd, func(p uint8) {
		if bar == nil {
			bar = newProgress(e, op, 100)
		}
		bar.add(int(p) - int(bar.done))
	})
	if bar != nil {
		bar.finish()
	}
	if err != nil {
		return err
	}
	if r.Code != "" {
		// The agent's exit code for its error codes (not_found 4, …);
		// fleet-only codes (unauthorized, replay, expired…) exit 1.
		fmt.Fprintf(e.stderr, "otok fleet: device %s: %s: %s\n", dev, r.Code, r.Msg)
		return &exitError{code: agent.Code(r.Code).ExitCode()}
	}
	return printResult(e.stdout, op, r.Result, c.json)
}

func printResult(w io.Writer, op string, raw cbor.RawMessage, asJSON bool) error {
	if len(raw) == 0 {
		return nil
	}
	switch op {
	case "logs":
		var b []byte
		if err := cbor.Unmarshal(raw, &b); err != nil {
			return err
		}
		_, err := w.Write(b)
		return err
	case "stats", "ps":
		var cs []fleet.Container
		if err := cbor.Unmarshal(raw, &cs); err != nil {
			return err
		}
		if asJSON {
			return printJSON(w, cs)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tIMAGE\tSTATE\tCPU\tMEM\tPIDS")
		for _, c := range cs {
			u := c.Usage
			if u == nil {
				u = &fleet.Usage{}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", c.Name, c.Image, c.State, time.Duration(u.CPUms)*time.Millisecond, mib(u.Mem), u.Pids)
		}
		return tw.Flush()
	case "images":
		var ims []fleet.Image
		if err := cbor.Unmarshal(raw, &ims); err != nil {
			return err
		}
		if asJSON {
			return printJSON(w, ims)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tVERSION\tDIGEST\tSIZE")
		for _, im := range ims {
			fmt.Fprintf(tw, "%s\t%s\t%x\t%s\n", im.Name, im.Version, im.Digest, mib(im.Size))
		}
		return tw.Flush()
	case "df":
		var f fleet.Flash
		if err := cbor.Unmarshal(raw, &f); err != nil {
			return err
		}
		if asJSON {
			return printJSON(w, f)
		}
		fmt.Fprintf(w, "free %s, reserve %s, images %s\n", mib(f.Free), mib(f.Reserve), mib(f.Store))
		return nil
	case "inspect":
		var c fleet.Container
		if err := cbor.Unmarshal(raw, &c); err != nil {
			return err
		}
		return printJSON(w, c)
	}
	var v any
	if err := cbor.Unmarshal(raw, &v); err != nil {
		return err
	}
	return printJSON(w, v)
}
