package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/otok/otok/agent"
	"github.com/otok/otok/runtime"
)

// `otok agent`: the daemon (procd runs it in the foreground), plus
// `otok agent reload|status` and `otok events`, which talk to it.

func init() {
	register(&command{
		name:       "agent",
		usage:      "[--config FILE] [--socket PATH] | reload | status [--json]",
		summary:    "run the agent (foreground), or tell the running agent to reload its config",
		ownSignals: true,
		run:        runAgent,
	})
	register(&command{
		name:    "events",
		usage:   "[-f] [--since SEQ] [--json]",
		summary: "show the agent's recent events (-f: follow)",
		run:     runEvents,
	})
}

// agentSocket is where the CLI finds the agent: OTOK_SOCKET, else
// <state>/otok.sock with --state/OTOK_STATE, else /var/run/otok/otok.sock.
func agentSocket(e *env) string {
	return agent.SocketFor(os.Getenv("OTOK_SOCKET"), e.state, "")
}

// agentError prints an API error and exits with its code.
func agentError(e *env, cmd string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	fmt.Fprintf(e.stderr, "otok %s: %v\n", cmd, err)
	return &exitError{code: agent.CodeOf(err).ExitCode()}
}

func runAgent(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "reload":
			return runAgentReload(ctx, e, args[1:])
		case "status":
			return runAgentStatus(ctx, e, args[1:])
		}
	}
	fs := newFlags(e, commands["agent"])
	config := fs.String("config", agent.DefaultConfigPath, "UCI config `FILE`")
	socket := fs.String("socket", os.Getenv("OTOK_SOCKET"), "command socket `PATH` (default /var/run/otok/otok.sock, or STATE/otok.sock with --state)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	logger := log.New(e.stderr, "otok agent: ", 0)

	// The config says where the state, store and keys are; --state and
	// the environment override it.
	peek := agent.New(agent.Options{ConfigPath: *config, StateDir: e.state, Socket: *socket, Log: log.New(io.Discard, "", 0)})
	cfg := peek.Load()
	state := cfg.Agent.State
	store := firstNonEmpty(e.store, cfg.Agent.Store)
	keys := firstNonEmpty(e.keys, cfg.Agent.Keys, "/etc/otok/keys")

	rtArgs := []string{"otok", "--state", state}
	rt := &runtime.Runtime{Root: state, InitArgs: append(rtArgs[:3:3], "init"), ExecArgs: append(rtArgs[:3:3], "execstage")}
	fst := &agent.FlashStore{Root: store, Keys: keys, RunDir: state, Reserve: cfg.Agent.Reserve}
	if r := os.Getenv("OTOK_RESERVE"); r != "" && !cfg.Agent.ReserveSet {
		res, err := agent.ParseReserve(r)
		if err != nil {
			return usagef("OTOK_RESERVE: %v", err)
		}
		fst.Reserve = res
	}
	netw := &agent.NetAdapter{StateDir: filepath.Join(state, "net"), DeviceID: cfg.Agent.DeviceID}
	defer netw.Close()
	a := agent.New(agent.Options{
		ConfigPath: *config, StateDir: state, Socket: *socket, Version: version,
		Runtime: agent.NewRuntimeAdapter(rt), Store: fst, Images: fst, Network: netw, Log: logger,
	})
	a.Load()

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	ln, err := agent.Listen(a.SocketPath())
	if err != nil {
		return agentError(e, "agent", err)
	}
	sctx, stopServe := context.WithCancel(context.Background())
	defer stopServe()
	served := make(chan error, 1)
	go func() { served <- a.Serve(sctx, ln) }()
	go a.Loop(sctx)
	a.StartUbus(sctx) // object "otok" on ubus when ubusd runs (agent/ubusobj.go)
	// The fleet session when the config has a `config fleet` section. It
	// ends with sctx; waiting for it lets it publish death before we exit.
	waitFleet := startFleet(sctx, a, *config, state, store, keys, cfg.Agent.DeviceID, logger.Printf)
	defer func() { stopServe(); waitFleet() }()

	t0 := time.Now()
	rep, err := a.Init(sctx)
	if err != nil {
		stopServe()
		<-served
		return agentError(e, "agent", err)
	}
	logger.Printf("started (pid %d, config %s, state %s, socket %s) in %s; starting %d containers",
		os.Getpid(), *config, state, a.SocketPath(), time.Since(t0).Round(time.Millisecond), len(rep.Started))

	for {
		select {
		case s := <-sigs:
			if s == syscall.SIGHUP {
				if r, err := a.Reload(sctx); err != nil {
					logger.Printf("reload: %v (keeping the last good config)", err)
				} else {
					logger.Printf("reloaded: %s", reloadSummary(r))
				}
				continue
			}
			logger.Printf("%s: stopping containers", s)
			go func() {
				// a second signal: stop waiting for graceful stops
				<-sigs
				logger.Printf("second signal: exiting now")
				os.Exit(1)
			}()
			a.Shutdown(context.Background())
			stopServe()
			<-served
			logger.Printf("stopped")
			return nil
		case err := <-served:
			a.Close()
			return agentError(e, "agent", err)
		}
	}
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func reloadSummary(r *agent.ReloadReply) string {
	var parts []string
	add := func(what string, names []string) {
		if len(names) > 0 {
			parts = append(parts, what+" "+strings.Join(names, ", "))
		}
	}
	add("started", r.Started)
	add("restarted to apply changes:", r.Restart)
	add("limits updated live:", r.Updated)
	add("removed", r.Removed)
	if len(parts) == 0 {
		return "no changes"
	}
	return strings.Join(parts, "; ")
}

func runAgentReload(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 {
		return usagef("reload takes no arguments")
	}
	c, err := agent.Dial(ctx, agentSocket(e))
	if err != nil {
		return agentError(e, "agent reload", err)
	}
	defer c.Close()
	r, err := c.Reload(ctx)
	if err != nil {
		return agentError(e, "agent reload", err)
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(e.stderr, "warning: %s\n", w)
	}
	fmt.Fprintln(e.stdout, reloadSummary(r))
	if len(r.Errors) > 0 {
		for _, n := range sortedKeys(r.Errors) {
			fmt.Fprintf(e.stderr, "error: %s\n", r.Errors[n])
		}
		return &exitError{code: agent.CodeInvalid.ExitCode()}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := 1; i < len(ks); i++ {
		for j := i; j > 0 && ks[j] < ks[j-1]; j-- {
			ks[j], ks[j-1] = ks[j-1], ks[j]
		}
	}
	return ks
}

func runAgentStatus(ctx context.Context, e *env, args []string) error {
	asJSON := len(args) == 1 && args[0] == "--json"
	if len(args) > 0 && !asJSON {
		return usagef("status takes only --json")
	}
	c, err := agent.Dial(ctx, agentSocket(e))
	if err != nil {
		return agentError(e, "agent status", err)
	}
	defer c.Close()
	s, err := c.Status(ctx)
	if err != nil {
		return agentError(e, "agent status", err)
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	fmt.Fprintf(e.stdout, "agent %s, pid %d, up %s\nconfig %s\ncontainers %d (%d running)\nrss %.1f MiB, %d goroutines, %d events\n",
		s.Version, s.Pid, time.Since(s.Started).Round(time.Second), s.Config, s.Containers, s.Running,
		float64(s.RSS)/(1<<20), s.Goroutines, s.EventSeq)
	if s.ConfigErr != "" {
		fmt.Fprintf(e.stdout, "config error: %s (running on the last good config)\n", s.ConfigErr)
	}
	return nil
}

func runEvents(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["events"])
	follow := fs.Bool("f", false, "follow: print new events as they happen")
	since := fs.Uint64("since", 0, "only events after sequence number `SEQ`")
	asJSON := fs.Bool("json", false, "one JSON object per line")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := agent.Dial(ctx, agentSocket(e))
	if err != nil {
		return agentError(e, "events", err)
	}
	defer c.Close()
	enc := json.NewEncoder(e.stdout)
	err = c.Events(ctx, &agent.EventsRequest{Since: *since, Follow: *follow}, func(ev *agent.Event) error {
		if *asJSON {
			return enc.Encode(ev)
		}
		_, err := fmt.Fprintln(e.stdout, agent.FormatEvent(ev))
		return err
	})
	return agentError(e, "events", err)
}
