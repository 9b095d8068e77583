package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/otok/otok/agent"
	"github.com/otok/otok/agent/fleet"
)

// otok fleet: the operator's controller (host side) and the simulator.
// Every subcommand speaks agent/fleet's protocol through fleet.Controller.

func init() {
	register(&command{
		name:    "fleet",
		usage:   "ls|status|run|start|stop|restart|rm|logs|stats|import|deploy|watch|keys|sim …",
		summary: "control a fleet of devices over MQTT (controller side), or simulate one",
		run:     runFleet,
	})
}

const fleetUsage = `Usage: otok fleet SUBCOMMAND [OPTIONS] [ARGS]

  ls [--group G] [-w]                 devices: online, model, agent, containers, desired vs reached
  status DEV                          one device's full status (--json for all of it)
  run DEV [--name N] [--net M] [--ip A] [-e K=V]… IMAGE [ARG…]
  start|stop|restart|rm|logs|inspect DEV NAME
  ps|stats DEV [NAME]
  images|df|gc|reload DEV;  rmi DEV IMAGE
  import DEV --digest HEX [--name N] URL
  deploy --group G|--device D FILE    publish a signed desired document (JSON or YAML)
  watch --group G|--device D          rollout progress: reached / failed / offline
  keys gen PATH                       controller key pair (PATH.key, PATH.pub for devices)
  sim --devices N                     N simulated devices (real fleet code, fake runtime)

Connection options (every subcommand but keys):
  --broker URL      tcp:// or ssl:// (repeatable; env OTOK_FLEET_BROKER, comma-separated)
  --key FILE        controller signing key (env OTOK_FLEET_KEY); required by devices that trust keys
  --ca FILE, --cert FILE, --cert-key FILE   TLS: broker CA, client certificate and key (mTLS)
  --user NAME, --password PW (env OTOK_FLEET_PASSWORD)
  --timeout D       command deadline / wait limit (default 30s)
`

// fleetConn holds the connection flags shared by the subcommands.
type fleetConn struct {
	brokers        repeatFlag
	key            string
	ca, cert, ckey string
	user, password string
	timeout        time.Duration
	json           bool
}

func fleetFlags(e *env, name string, c *fleetConn) *flag.FlagSet {
	fs := flag.NewFlagSet("otok fleet "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() { fmt.Fprint(e.stdout, fleetUsage) }
	fs.Var(&c.brokers, "broker", "broker `URL` (repeatable)")
	fs.StringVar(&c.key, "key", os.Getenv("OTOK_FLEET_KEY"), "controller signing key `FILE`")
	fs.StringVar(&c.ca, "ca", "", "TLS CA `FILE`")
	fs.StringVar(&c.cert, "cert", "", "TLS client certificate `FILE`")
	fs.StringVar(&c.ckey, "cert-key", "", "TLS client key `FILE`")
	fs.StringVar(&c.user, "user", "", "MQTT user name")
	fs.StringVar(&c.password, "password", os.Getenv("OTOK_FLEET_PASSWORD"), "MQTT password")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "deadline")
	fs.BoolVar(&c.json, "json", false, "JSON output")
	return fs
}

func (c *fleetConn) brokerList() ([]string, error) {
	b := []string(c.brokers)
	if len(b) == 0 {
		for _, s := range strings.Split(os.Getenv("OTOK_FLEET_BROKER"), ",") {
			if s = strings.TrimSpace(s); s != "" {
				b = append(b, s)
			}
		}
	}
	if len(b) == 0 {
		return nil, usagef("no broker: --broker URL or OTOK_FLEET_BROKER")
	}
	return b, nil
}

func (c *fleetConn) dial(ctx context.Context, events bool) (*fleet.Controller, error) {
	brokers, err := c.brokerList()
	if err != nil {
		return nil, err
	}
	cfg := fleet.ControllerConfig{Brokers: brokers, Username: c.user, Password: c.password, Events: events}
	if c.key != "" {
		if cfg.Key, err = fleet.LoadPrivateKey(c.key); err != nil {
			return nil, err
		}
	}
	if c.ca != "" || c.cert != "" || c.ckey != "" {
		if cfg.TLS, err = fleet.TLSFiles(c.ca, c.cert, c.ckey); err != nil {
			return nil, err
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return fleet.DialController(dctx, cfg)
}

func runFleet(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "--help" || args[0] == "-h" || args[0] == "help" {
		fmt.Fprint(e.stdout, fleetUsage)
		if len(args) == 0 {
			return usagef("missing subcommand")
		}
		return nil
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "ls":
		return fleetLs(ctx, e, args)
	case "status":
		return fleetStatus(ctx, e, args)
	case "run", "start", "stop", "restart", "rm", "logs", "stats", "import", "ps", "inspect", "df", "images", "rmi", "gc", "reload":
		return fleetCmd(ctx, e, sub, args)
	case "deploy":
		return fleetDeploy(ctx, e, args)
	case "watch":
		return fleetWatch(ctx, e, args)
	case "keys":
		return fleetKeys(e, args)
	case "sim":
		return fleetSim(ctx, e, args)
	}
	return usagef("unknown subcommand %q", sub)
}

func parseFleet(fs *flag.FlagSet, args []string) error { return parseFlags(fs, args) }

// --- ls, status ---------------------------------------------------------

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
	if fs.NArg() != 1 {
		return usagef("want DEV")
	}
	k, err := c.dial(ctx, false)
	if err != nil {
		return err
	}
	defer k.Close()
	id := fs.Arg(0)
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
	fmt.Fprintf(w, "board:    %s, %s, OpenWrt %s, kernel %s\n", st.Board.Model, st.Board.Arch, st.Board.Release, st.Board.Kernel)
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

// --- one-shot commands ----------------------------------------------------

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

// --- deploy, watch --------------------------------------------------------

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

// --- keys, sim --------------------------------------------------------------

func fleetKeys(e *env, args []string) error {
	if len(args) != 2 || args[0] != "gen" {
		return usagef("want 'keys gen PATH'")
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	pk, pub, err := fleet.EncodeKeyPair(priv)
	if err != nil {
		return err
	}
	path := args[1]
	for _, f := range []struct {
		name string
		b    []byte
		mode os.FileMode
	}{{path + ".key", pk, 0o600}, {path + ".pub", pub, 0o644}} {
		fh, err := os.OpenFile(f.name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.mode)
		if err != nil {
			return fmt.Errorf("key %s: %w (not overwriting)", f.name, err)
		}
		if _, err := fh.Write(f.b); err != nil {
			fh.Close()
			return err
		}
		if err := fh.Close(); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.stdout, "controller key %x: %s.key (keep secret, --key), %s.pub (list key in devices' config fleet)\n",
		fleet.KeyID(priv.Public().(ed25519.PublicKey)), path, path)
	return nil
}

func fleetSim(ctx context.Context, e *env, args []string) error {
	var c fleetConn
	fs := fleetFlags(e, "sim", &c)
	n := fs.Int("devices", 10, "number of simulated devices")
	prefix := fs.String("prefix", "sim", "device id prefix")
	groups := fs.String("groups", "all", "comma-separated groups of every device; {n%K} adds group gK of n mod K (e.g. all,ring{n%4})")
	var trust repeatFlag
	fs.Var(&trust, "trust", "controller public key `FILE` the devices trust (repeatable)")
	bmax := fs.Duration("backoff-max", 2*time.Second, "reconnect backoff cap (grow with the fleet)")
	hb := fs.Duration("heartbeat", 5*time.Minute, "status heartbeat")
	if err := parseFleet(fs, args); err != nil {
		return err
	}
	brokers, err := c.brokerList()
	if err != nil {
		return err
	}
	sc := fleet.SimConfig{Devices: *n, Prefix: *prefix, Brokers: brokers, Backoff: fleet.Backoff{Base: 250 * time.Millisecond, Max: *bmax},
		Heartbeat: fleet.Config{Heartbeat: *hb}, Username: c.user, Password: c.password,
		Groups: simGroups(*groups)}
	for _, p := range trust {
		k, err := fleet.LoadPublicKey(p)
		if err != nil {
			return err
		}
		sc.Keys = append(sc.Keys, k)
	}
	if c.ca != "" || c.cert != "" {
		if sc.TLS, err = fleet.TLSFiles(c.ca, c.cert, c.ckey); err != nil {
			return err
		}
	}
	start := time.Now()
	sim, err := fleet.StartSim(ctx, sc)
	if err != nil {
		return err
	}
	allAt := time.Duration(0)
	last, lastPrint := -1, time.Time{}
	for ctx.Err() == nil {
		on := sim.Online()
		switch {
		case on == *n && allAt == 0:
			allAt = time.Since(start)
			fmt.Fprintf(e.stdout, "all %d devices online in %s\n", *n, allAt.Round(time.Millisecond))
		case on != last && (on == *n || time.Since(lastPrint) >= time.Second):
			fmt.Fprintf(e.stdout, "%s online %d/%d\n", time.Now().Format("15:04:05.000"), on, *n)
			lastPrint = time.Now()
		default:
			sleepOrDone(ctx, 10*time.Millisecond)
			continue
		}
		last = on
	}
	fmt.Fprintln(e.stdout, "stopping: publishing death for every device")
	sim.Wait()
	return nil
}

func sleepOrDone(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// simGroups turns "all,ring{n%4}" into a per-device group function.
func simGroups(spec string) func(int) []string {
	parts := strings.Split(spec, ",")
	return func(n int) []string {
		var out []string
		for _, p := range parts {
			p = strings.TrimSpace(p)
			if i := strings.Index(p, "{n%"); i >= 0 && strings.HasSuffix(p, "}") {
				var m int
				if _, err := fmt.Sscanf(p[i+3:len(p)-1], "%d", &m); err == nil && m > 0 {
					out = append(out, fmt.Sprintf("%s%d", p[:i], n%m))
					continue
				}
			}
			if p != "" {
				out = append(out, p)
			}
		}
		return out
	}
}
