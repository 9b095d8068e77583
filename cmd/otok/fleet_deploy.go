package main

// otok fleet deploy and watch: desired documents and rollouts.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/otok/otok/agent/fleet"
)

func scopeFlags(fs *flag.FlagSet) (group, dev *string) {
	return fs.String("group", "", "group `G`"), fs.String("device", "", "device `D`")
}

func scopeOf(group, dev string) (string, error) {
	switch {
	case group != "" && dev == "" && fleet.ValidID(group):
		return "group/" + group, nil
	case dev != "" && group == "" && fleet.ValidID(dev):
		return "dev/" + dev, nil
	}
	return "", usagef("want one of --group G or --device D (1-64 of [A-Za-z0-9_:-])")
}

func fleetDeploy(ctx context.Context, e *env, args []string) error {
	var c fleetConn
	fs := fleetFlags(e, "deploy", &c)
	group, dev := scopeFlags(fs)
	version := fs.Uint64("version", 0, "document version (default: one above the current)")
	wait := fs.Bool("wait", false, "watch the rollout until done or --timeout")
	if err := parseFleet(fs, args); err != nil {
		return err
	}
	scope, err := scopeOf(*group, *dev)
	if err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want FILE")
	}
	b, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	d, err := fleet.ParseDesiredFile(b, scope)
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	if *version != 0 {
		d.Version = *version
	}
	if c.key == "" {
		fmt.Fprintln(e.stderr, "warning: no --key: the document is unsigned; devices that trust controller keys will refuse it")
	}
	k, err := c.dial(ctx, false)
	if err != nil {
		return err
	}
	defer k.Close()
	k.Settle(ctx, 200*time.Millisecond, 3*time.Second) // statuses, for the next version number
	v, err := k.Deploy(ctx, d)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: version %d published (%d images, %d containers)\n", scope, v, len(d.Images), len(d.Containers))
	if !*wait {
		return nil
	}
	return watchRollout(ctx, e, k, scope, v, c.timeout)
}

func fleetWatch(ctx context.Context, e *env, args []string) error {
	var c fleetConn
	fs := fleetFlags(e, "watch", &c)
	group, dev := scopeFlags(fs)
	version := fs.Uint64("version", 0, "version to watch for (default: the retained document's)")
	if err := parseFleet(fs, args); err != nil {
		return err
	}
	scope, err := scopeOf(*group, *dev)
	if err != nil {
		return err
	}
	k, err := c.dial(ctx, false)
	if err != nil {
		return err
	}
	defer k.Close()
	k.Settle(ctx, 300*time.Millisecond, 5*time.Second)
	v := *version
	if v == 0 {
		if v = k.DesiredVersion(scope); v == 0 {
			return fmt.Errorf("%s: no desired document on the broker", scope)
		}
	}
	return watchRollout(ctx, e, k, scope, v, c.timeout)
}

// watchRollout draws reached / failed / offline until every device of the
// scope reached or failed, or timeout.
func watchRollout(ctx context.Context, e *env, k *fleet.Controller, scope string, v uint64, timeout time.Duration) error {
	tty := isTerminalWriter(e.stderr)
	deadline := time.After(timeout)
	start := time.Now()
	var last fleet.Rollout
	draw := func(r fleet.Rollout, final bool) {
		line := fmt.Sprintf("%s v%d %s %d/%d reached · %d failed · %d offline · %d pending · %s",
			scope, v, bar(r, 30), r.Reached, r.Total, r.Failed, r.Offline, r.Pending, time.Since(start).Round(100*time.Millisecond))
		switch {
		case tty:
			fmt.Fprintf(e.stderr, "\r\x1b[K%s", line)
			if final {
				fmt.Fprintln(e.stderr)
			}
		case final || r.Reached != last.Reached || r.Failed != last.Failed || r.Offline != last.Offline:
			fmt.Fprintln(e.stderr, line)
		}
	}
	for {
		r := k.Progress(scope, v)
		done := r.Total > 0 && r.Pending == 0 && r.Offline == 0
		draw(r, done)
		last = r
		if done {
			return rolloutResult(e, r)
		}
		select {
		case <-ctx.Done():
			draw(r, true)
			return ctx.Err()
		case <-deadline:
			draw(r, true)
			rolloutResult(e, r)
			return fmt.Errorf("%s v%d: %d of %d devices not there after %s", scope, v, r.Total-r.Reached, r.Total, timeout)
		case <-k.Changed():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func rolloutResult(e *env, r fleet.Rollout) error {
	ids := make([]string, 0, len(r.Failures))
	for id := range r.Failures {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for i, id := range ids {
		if i == 20 {
			fmt.Fprintf(e.stderr, "… and %d more\n", len(ids)-20)
			break
		}
		fmt.Fprintf(e.stderr, "%s: %s\n", id, r.Failures[id])
	}
	if r.Failed > 0 {
		return fmt.Errorf("%d devices failed", r.Failed)
	}
	return nil
}

func bar(r fleet.Rollout, width int) string {
	if r.Total == 0 {
		return "[" + strings.Repeat(" ", width) + "]"
	}
	ok := r.Reached * width / r.Total
	bad := r.Failed * width / r.Total
	if r.Failed > 0 && bad == 0 {
		bad = 1
	}
	if ok+bad > width {
		ok = width - bad
	}
	return "[" + strings.Repeat("#", ok) + strings.Repeat("x", bad) + strings.Repeat(".", width-ok-bad) + "]"
}
