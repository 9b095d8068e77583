// Package agent is otok's daemon: it turns desired state (the UCI file
// /etc/config/otok plus containers created through its API) into running
// containers and keeps them running.
//
// It owns:
//
//   - the config: UCI parsing (agent/uci), typed desired state and its
//     validation (config.go, spec.go), profiles, dependency cycles;
//   - the one command API (api.go, errors.go): typed requests and replies
//     for run, create, start, stop, restart, remove, list, inspect, logs,
//     stats, events, reload, status, update (live limits) and kill
//     (update.go), attach (a duplex op: console.go), image
//     import/list/remove/gc and df, and
//     error codes typed once (Code) and mapped to CLI exit codes, ubus
//     status codes and MQTT reply codes. The CLI socket (server.go,
//     client.go, CBOR frames in frame.go), ubus and MQTT are thin
//     transports over the Ops table;
//   - the reconcile loop (reconcile.go), supervision with restart policies,
//     backoff and health checks (supervise.go), container output files
//     (logs.go), consoles of tty containers (console.go), persistent
//     writable layers on the store's flash (persist.go), events
//     (events.go), stats (stats.go);
//   - its state on tmpfs (state.go) and re-adoption of running containers
//     after its own restart (adopt.go).
//
// It must not know how containers are made, images stored or networks
// wired: it sees the runtime, the image store and networking through small
// interfaces defined here (backend.go: Runtime, Store, ImageStore,
// Network, Clock); adapt_*.go connect them to runtime/, flash/ and
// netcfg/. It knows nothing of MQTT or ubus wire formats (agent/fleet and
// ubus/ map onto Ops).
//
// Usage (what `otok agent` does):
//
//	a := agent.New(agent.Options{ConfigPath: "/etc/config/otok",
//		Runtime: agent.NewRuntimeAdapter(rt), Store: st, Images: st, Network: nw})
//	a.Load()
//	ln, err := agent.Listen(a.SocketPath())
//	go a.Serve(ctx, ln)
//	go a.Loop(ctx)
//	a.Init(ctx)            // re-adopt, reconcile, autostart
//	…                      // SIGHUP: a.Reload(ctx)
//	a.Shutdown(ctx)        // SIGTERM: stop containers in reverse dependency order
//
// A client (the CLI):
//
//	c, err := agent.Dial(ctx, agent.DefaultSocket)
//	st, err := c.Run(ctx, &agent.ContainerSpec{Name: "web", Image: "busybox",
//		Command: []string{"httpd", "-f"}, Restart: agent.RestartPolicy{Mode: "always"}})
//	if err != nil {
//		os.Exit(agent.CodeOf(err).ExitCode())
//	}
package agent
