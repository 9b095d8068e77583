package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

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
